//! One-time links mailed to an account: confirm its email address, reset its
//! password (OWASP Forgot Password Cheat Sheet).
//!
//! notifications asks for a link's token just before it sends the mail, so the
//! token exists only in the mail (stored here as its SHA-256). Each is good once,
//! for one purpose, until it expires (a day to confirm an address, an hour to reset
//! a password); minting a new one retires the account's earlier ones for the same
//! purpose, so only the latest mail works. Using a link is checked and applied in
//! one transaction with what it does.

use emporium_store::{Db, Tx};

use crate::opaque::{NoRandomness, hash, new_token};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("link storage failed")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Random(#[from] NoRandomness),
}

/// A token for `user_id` and `purpose`, good until the returned time.
pub async fn mint(
    db: &Db,
    user_id: &str,
    purpose: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<(String, i64), LinkError> {
    let token = new_token()?;
    let expires_at_ms = now_ms + ttl_ms;
    let mut tx = db.begin().await?;
    // The account's row, locked (PostgreSQL; SQLite's transactions are serial):
    // two mints at once then retire each other's links in turn, not neither.
    sqlx::query("UPDATE users SET id = id WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE email_tokens SET used_at_ms = $3 \
         WHERE user_id = $1 AND purpose = $2 AND used_at_ms IS NULL",
    )
    .bind(user_id)
    .bind(purpose)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO email_tokens (hash, user_id, purpose, created_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash(&token))
    .bind(user_id)
    .bind(purpose)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((token, expires_at_ms))
}

/// The account `token` is a live link of `purpose` for, without using it.
pub async fn peek(
    db: &Db,
    token: &str,
    purpose: &str,
    now_ms: i64,
) -> Result<Option<String>, sqlx::Error> {
    let found: Option<(String,)> = sqlx::query_as(
        "SELECT user_id FROM email_tokens \
         WHERE hash = $1 AND purpose = $2 AND used_at_ms IS NULL AND expires_at_ms > $3",
    )
    .bind(hash(token))
    .bind(purpose)
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?;
    Ok(found.map(|(user,)| user))
}

/// Uses `token` in `tx`: the account it was for, if it was a live link of
/// `purpose`. Used or not, the caller's transaction decides.
pub async fn consume(
    tx: &mut Tx,
    token: &str,
    purpose: &str,
    now_ms: i64,
) -> Result<Option<String>, sqlx::Error> {
    let used: Option<(String,)> = sqlx::query_as(
        "UPDATE email_tokens SET used_at_ms = $3 \
         WHERE hash = $1 AND purpose = $2 AND used_at_ms IS NULL AND expires_at_ms > $3 \
         RETURNING user_id",
    )
    .bind(hash(token))
    .bind(purpose)
    .bind(now_ms)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(used.map(|(user,)| user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn links_work_once_for_their_purpose_until_they_expire() {
        let (_dir, db) = crate::test_db().await;
        let (first, at) = mint(&db, "u-1", "verify_email", 0, 1_000)
            .await
            .expect("mint");
        assert_eq!(at, 1_000);
        assert_eq!(
            peek(&db, &first, "verify_email", 10)
                .await
                .expect("peek")
                .as_deref(),
            Some("u-1")
        );
        assert_eq!(
            peek(&db, &first, "password_reset", 10).await.expect("peek"),
            None,
            "another purpose"
        );
        assert_eq!(
            peek(&db, &first, "verify_email", 1_000)
                .await
                .expect("peek"),
            None,
            "expired"
        );

        // A newer link retires the older one.
        let (second, _) = mint(&db, "u-1", "verify_email", 20, 1_000)
            .await
            .expect("mint");
        assert_eq!(
            peek(&db, &first, "verify_email", 30).await.expect("peek"),
            None
        );

        let mut tx = db.begin().await.expect("tx");
        assert_eq!(
            consume(&mut tx, &second, "verify_email", 40)
                .await
                .expect("use")
                .as_deref(),
            Some("u-1")
        );
        assert_eq!(
            consume(&mut tx, &second, "verify_email", 41)
                .await
                .expect("use"),
            None,
            "once"
        );
        tx.commit().await.expect("commit");

        // A use rolled back leaves the link good.
        let (third, _) = mint(&db, "u-1", "password_reset", 50, 1_000)
            .await
            .expect("mint");
        let mut tx = db.begin().await.expect("tx");
        assert!(
            consume(&mut tx, &third, "password_reset", 60)
                .await
                .expect("use")
                .is_some()
        );
        drop(tx);
        assert!(
            peek(&db, &third, "password_reset", 70)
                .await
                .expect("peek")
                .is_some()
        );
    }
}
