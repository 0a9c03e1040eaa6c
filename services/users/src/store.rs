//! SQL for accounts and the operator's admin grants.

use emporium_contracts::auth::ROLE_ADMIN;
use emporium_contracts::events::UserRegistered;
use emporium_events::{EventsError, Outbox};
use emporium_store::Db;
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    /// The roles every account has (`customer`); `admin` comes from a grant.
    pub roles: String,
    pub created_at_ms: i64,
    /// Grants of the admin role to this account's email (0 or 1).
    pub admin_grants: i64,
}

impl UserRow {
    pub fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self
            .roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect();
        if self.admin_grants > 0 && !roles.iter().any(|r| r == ROLE_ADMIN) {
            roles.push(ROLE_ADMIN.to_string());
        }
        roles
    }
}

/// Inserts a user and publishes `UserRegistered`, in one transaction; a duplicate
/// email is a unique violation.
pub async fn insert(db: &Db, outbox: &Outbox, user: &UserRow) -> Result<(), EventsError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, roles, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(&user.roles)
    .bind(user.created_at_ms)
    .execute(&mut *tx)
    .await?;
    let registered = UserRegistered {
        user_id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
    };
    outbox.publish(&mut tx, &registered).await?;
    outbox.commit(tx).await?;
    Ok(())
}

/// The account columns, with the count of admin grants to its email.
macro_rules! select_user {
    ($filter:literal) => {
        concat!(
            "SELECT id, email, name, password_hash, roles, created_at_ms, ",
            "(SELECT COUNT(*) FROM admins a WHERE a.email = users.email) AS admin_grants ",
            "FROM users WHERE ",
            $filter
        )
    };
}

pub async fn by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(select_user!("email = $1"))
        .bind(email)
        .fetch_optional(db.pool())
        .await
}

pub async fn by_id(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(select_user!("id = $1"))
        .bind(id)
        .fetch_optional(db.pool())
        .await
}

/// One admin grant, and whether an account has its email yet.
#[derive(Debug, Clone, FromRow)]
pub struct GrantRow {
    pub email: String,
    pub granted_at_ms: i64,
    pub accounts: i64,
}

/// Grants the admin role to `email`; false when it already had it.
pub async fn grant_admin(db: &Db, email: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO admins (email, granted_at_ms) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING",
    )
    .bind(email)
    .bind(now_ms)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Withdraws the admin role from `email`; false when it had none.
pub async fn revoke_admin(db: &Db, email: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM admins WHERE email = $1")
        .bind(email)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Every grant, oldest first.
pub async fn admins(db: &Db) -> Result<Vec<GrantRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT email, granted_at_ms, \
         (SELECT COUNT(*) FROM users u WHERE u.email = admins.email) AS accounts \
         FROM admins ORDER BY granted_at_ms, email",
    )
    .fetch_all(db.pool())
    .await
}
