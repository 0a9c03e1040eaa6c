//! SQL for the users table.

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
    pub roles: String,
    pub created_at_ms: i64,
}

impl UserRow {
    pub fn roles(&self) -> Vec<String> {
        self.roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(String::from)
            .collect()
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

pub async fn by_email(db: &Db, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, name, password_hash, roles, created_at_ms FROM users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(db.pool())
    .await
}

pub async fn by_id(db: &Db, id: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, name, password_hash, roles, created_at_ms FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await
}
