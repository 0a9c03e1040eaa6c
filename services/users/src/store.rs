//! SQL for accounts and the operator's admin grants.

use emporium_contracts::auth::ROLE_ADMIN;
use emporium_contracts::events::{EmailVerificationRequested, UserRegistered};
use emporium_events::{EventsError, Outbox};
use emporium_store::{Db, Tx};
use sqlx::FromRow;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    /// The roles every account has (`customer`); `admin` comes from a grant, once
    /// the account has confirmed it owns the address granted.
    pub roles: String,
    pub created_at_ms: i64,
    /// Grants of the admin role to this account's email (0 or 1).
    pub admin_grants: i64,
    /// When the account proved it receives mail at its address.
    pub email_verified_at_ms: Option<i64>,
}

impl UserRow {
    pub fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self
            .roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect();
        // A grant names an address: whoever registered it holds the role only after
        // proving they receive its mail (else the first to register a granted
        // address would be admin).
        let granted = self.admin_grants > 0 && self.email_verified_at_ms.is_some();
        if granted && !roles.iter().any(|r| r == ROLE_ADMIN) {
            roles.push(ROLE_ADMIN.to_string());
        }
        roles
    }
}

/// Inserts a user and publishes `UserRegistered` and `EmailVerificationRequested`,
/// in one transaction; a duplicate email is a unique violation.
pub async fn insert(db: &Db, outbox: &Outbox, user: &UserRow) -> Result<(), EventsError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO users (id, email, name, password_hash, roles, created_at_ms, \
         verification_mailed_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $6)",
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
    let verify = EmailVerificationRequested {
        user_id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
    };
    outbox.publish(&mut tx, &verify).await?;
    outbox.commit(tx).await?;
    Ok(())
}

/// What asking for a mail did.
#[derive(Debug, PartialEq, Eq)]
pub enum MailRequest {
    Queued,
    /// One was asked for less than `MAIL_INTERVAL_MS` ago.
    TooSoon,
}

/// At most one verification mail and one reset mail per account per minute.
pub const MAIL_INTERVAL_MS: i64 = 60_000;

/// Publishes `event` (a verification or reset mail for `user_id`: `reset` says
/// which) unless the account asked for one of its kind within the last minute.
pub async fn request_mail<E: emporium_contracts::events::EventData>(
    db: &Db,
    outbox: &Outbox,
    user_id: &str,
    reset: bool,
    event: &E,
    now_ms: i64,
) -> Result<MailRequest, EventsError> {
    let claim = if reset {
        "UPDATE users SET reset_mailed_at_ms = $2 WHERE id = $1 \
         AND (reset_mailed_at_ms IS NULL OR reset_mailed_at_ms <= $3)"
    } else {
        "UPDATE users SET verification_mailed_at_ms = $2 WHERE id = $1 \
         AND (verification_mailed_at_ms IS NULL OR verification_mailed_at_ms <= $3)"
    };
    let mut tx = db.begin().await?;
    let claimed = sqlx::query(claim)
        .bind(user_id)
        .bind(now_ms)
        .bind(now_ms - MAIL_INTERVAL_MS)
        .execute(&mut *tx)
        .await?;
    if claimed.rows_affected() != 1 {
        return Ok(MailRequest::TooSoon);
    }
    outbox.publish(&mut tx, event).await?;
    outbox.commit(tx).await?;
    Ok(MailRequest::Queued)
}

/// Marks `user_id`'s address verified (if it was not already), in `tx`.
pub async fn mark_verified(tx: &mut Tx, user_id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET email_verified_at_ms = $2 WHERE id = $1 AND email_verified_at_ms IS NULL",
    )
    .bind(user_id)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces `user_id`'s password hash, in `tx`.
pub async fn set_password(tx: &mut Tx, user_id: &str, hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user_id)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The account columns, with the count of admin grants to its email.
macro_rules! select_user {
    ($filter:literal) => {
        concat!(
            "SELECT id, email, name, password_hash, roles, created_at_ms, email_verified_at_ms, ",
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
