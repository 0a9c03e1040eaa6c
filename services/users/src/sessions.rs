//! Sessions and their refresh tokens (OAuth 2.0 Security BCP, RFC 9700 §4.14).
//!
//! A sign-in starts a session and hands out its first refresh token: 32 random
//! bytes, stored only as their SHA-256. Each refresh token is good once: using it
//! marks it used and issues its successor in the same session. A used token that
//! comes back is a copy someone kept (a thief's or the owner's, whichever came
//! second), so the whole session is revoked and both must sign in again — unless
//! it comes back within a few seconds of its use (`reuse_grace_ms`): two tabs
//! refreshing at once, or an answer that never reached the browser, get another
//! successor (Okta's grace period, Auth0's reuse interval). A session
//! also ends at its absolute age, when its owner signs out of it, or when every
//! session of an account is revoked (a password reset).

use emporium_store::Db;
use sqlx::FromRow;

use crate::opaque::{NoRandomness, hash, new_token};

/// How long tokens and sessions live, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// One refresh token, unused.
    pub refresh_ms: i64,
    /// A session from its sign-in, however often refreshed.
    pub session_ms: i64,
    /// How long after its use a refresh token presented again is taken for a retry
    /// (two tabs refreshing at once, an answer lost on the way) and answered with
    /// another successor, rather than for a stolen copy.
    pub reuse_grace_ms: i64,
}

/// A refresh token just issued.
pub struct Issued {
    pub session_id: String,
    pub token: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
}

/// What presenting a refresh token did.
pub enum Refresh {
    /// The token was good: here is its successor, for `user_id`.
    Rotated { user_id: String, issued: Issued },
    /// Unknown, expired, or its session has ended.
    Invalid,
    /// Used before: its session is now revoked.
    Reused { session_id: String, user_id: String },
}

/// A session as its owner sees it.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Why a session ended, as stored.
pub const REVOKED_SIGN_OUT: &str = "signed out";
pub const REVOKED_REUSE: &str = "refresh token reused";
pub const REVOKED_BY_OWNER: &str = "revoked by its owner";
pub const REVOKED_PASSWORD_RESET: &str = "password reset";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session storage failed")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Random(#[from] NoRandomness),
}

/// Starts a session for `user_id` with its first refresh token.
pub async fn start(
    db: &Db,
    user_id: &str,
    now_ms: i64,
    life: Lifetimes,
) -> Result<Issued, SessionError> {
    let session_id = uuid::Uuid::now_v7().to_string();
    let session_end = now_ms + life.session_ms;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at_ms, last_used_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $3, $4)",
    )
    .bind(&session_id)
    .bind(user_id)
    .bind(now_ms)
    .bind(session_end)
    .execute(&mut *tx)
    .await?;
    let issued = issue(&mut tx, &session_id, now_ms, session_end, life).await?;
    tx.commit().await?;
    Ok(issued)
}

async fn issue(
    tx: &mut emporium_store::Tx,
    session_id: &str,
    now_ms: i64,
    session_end: i64,
    life: Lifetimes,
) -> Result<Issued, SessionError> {
    let token = new_token()?;
    let expires_at_ms = (now_ms + life.refresh_ms).min(session_end);
    sqlx::query(
        "INSERT INTO refresh_tokens (hash, session_id, issued_at_ms, expires_at_ms) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(hash(&token))
    .bind(session_id)
    .bind(now_ms)
    .bind(expires_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(Issued {
        session_id: session_id.to_string(),
        token,
        issued_at_ms: now_ms,
        expires_at_ms,
    })
}

type Presented = (String, Option<i64>, i64, String, Option<i64>, i64);

/// Uses `token` once: its successor, or why not.
pub async fn rotate(
    db: &Db,
    token: &str,
    now_ms: i64,
    life: Lifetimes,
) -> Result<Refresh, SessionError> {
    let hashed = hash(token);
    let mut tx = db.begin().await?;
    let found: Option<Presented> = sqlx::query_as(
        "SELECT t.session_id, t.used_at_ms, t.expires_at_ms, s.user_id, s.revoked_at_ms, \
         s.expires_at_ms FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         WHERE t.hash = $1",
    )
    .bind(&hashed)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((session_id, used_at, token_end, user_id, revoked_at, session_end)) = found else {
        return Ok(Refresh::Invalid);
    };
    if revoked_at.is_some() {
        return Ok(Refresh::Invalid);
    }
    if token_end <= now_ms || session_end <= now_ms {
        return Ok(Refresh::Invalid);
    }
    if let Some(used) = used_at {
        if now_ms - used <= life.reuse_grace_ms {
            let issued = issue(&mut tx, &session_id, now_ms, session_end, life).await?;
            tx.commit().await?;
            return Ok(Refresh::Rotated { user_id, issued });
        }
        end(&mut tx, &session_id, now_ms, REVOKED_REUSE).await?;
        tx.commit().await?;
        return Ok(Refresh::Reused {
            session_id,
            user_id,
        });
    }
    // Two presentations at once: the database lets one mark it used; the other
    // is a retry (within the grace period by definition) and gets a successor too.
    sqlx::query("UPDATE refresh_tokens SET used_at_ms = $2 WHERE hash = $1 AND used_at_ms IS NULL")
        .bind(&hashed)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE sessions SET last_used_at_ms = $2 WHERE id = $1")
        .bind(&session_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    let issued = issue(&mut tx, &session_id, now_ms, session_end, life).await?;
    tx.commit().await?;
    Ok(Refresh::Rotated { user_id, issued })
}

async fn end(
    tx: &mut emporium_store::Tx,
    session_id: &str,
    now_ms: i64,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sessions SET revoked_at_ms = $2, revoked_reason = $3 \
         WHERE id = $1 AND revoked_at_ms IS NULL",
    )
    .bind(session_id)
    .bind(now_ms)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends the session `token` belongs to (used or not); the session's id and owner
/// when the token was known.
pub async fn sign_out(
    db: &Db,
    token: &str,
    now_ms: i64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT s.id, s.user_id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
         WHERE t.hash = $1",
    )
    .bind(hash(token))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((session_id, _)) = &found {
        end(&mut tx, session_id, now_ms, REVOKED_SIGN_OUT).await?;
    }
    tx.commit().await?;
    Ok(found)
}

/// Ends session `id` if it is `user_id`'s and still going; whether it was.
pub async fn revoke(
    db: &Db,
    user_id: &str,
    id: &str,
    now_ms: i64,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at_ms = $3, revoked_reason = $4 \
         WHERE id = $1 AND user_id = $2 AND revoked_at_ms IS NULL AND expires_at_ms > $3",
    )
    .bind(id)
    .bind(user_id)
    .bind(now_ms)
    .bind(reason)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends every session of `user_id`; how many were going.
pub async fn revoke_all(
    db: &Db,
    user_id: &str,
    now_ms: i64,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = revoke_all_in(&mut tx, user_id, now_ms, reason).await?;
    tx.commit().await?;
    Ok(n)
}

/// [`revoke_all`] inside the caller's transaction.
pub async fn revoke_all_in(
    tx: &mut emporium_store::Tx,
    user_id: &str,
    now_ms: i64,
    reason: &str,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at_ms = $2, revoked_reason = $3 \
         WHERE user_id = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2",
    )
    .bind(user_id)
    .bind(now_ms)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// `user_id`'s sessions that are still going, newest first.
pub async fn active(db: &Db, user_id: &str, now_ms: i64) -> Result<Vec<SessionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, created_at_ms, last_used_at_ms, expires_at_ms FROM sessions \
         WHERE user_id = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2 \
         ORDER BY created_at_ms DESC, id",
    )
    .bind(user_id)
    .bind(now_ms)
    .fetch_all(db.pool())
    .await
}

/// Forgets sessions that ended more than `keep_ms` ago, with their tokens (kept
/// until then so that a reused token is still recognised as reuse). How many
/// sessions went.
pub async fn prune(db: &Db, now_ms: i64, keep_ms: i64) -> Result<u64, sqlx::Error> {
    let before = now_ms - keep_ms;
    let mut tx = db.begin().await?;
    sqlx::query(
        "DELETE FROM refresh_tokens WHERE session_id IN \
         (SELECT id FROM sessions WHERE expires_at_ms < $1 OR revoked_at_ms < $1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    let done = sqlx::query("DELETE FROM sessions WHERE expires_at_ms < $1 OR revoked_at_ms < $1")
        .bind(before)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFE: Lifetimes = Lifetimes {
        refresh_ms: 1_000,
        session_ms: 10_000,
        reuse_grace_ms: 50,
    };

    async fn db() -> (tempfile::TempDir, Db) {
        crate::test_db().await
    }

    #[tokio::test]
    async fn tokens_rotate_once_and_a_reused_one_ends_the_session() {
        let (_dir, db) = db().await;
        let first = start(&db, "u-1", 0, LIFE).await.expect("start");
        assert!(!first.token.is_empty());
        let Refresh::Rotated { user_id, issued } =
            rotate(&db, &first.token, 100, LIFE).await.expect("rotate")
        else {
            panic!("a fresh token rotates")
        };
        assert_eq!(user_id, "u-1");
        assert_eq!(issued.session_id, first.session_id);
        assert_ne!(issued.token, first.token);
        assert_eq!(issued.expires_at_ms, 1_100);

        // The first token again, within the grace period: a retry, answered with
        // another successor; the first successor stays good.
        let Refresh::Rotated { issued: retry, .. } =
            rotate(&db, &first.token, 120, LIFE).await.expect("rotate")
        else {
            panic!("a retry within the grace period rotates")
        };
        assert_ne!(retry.token, issued.token);
        // Later: reuse, and every successor dies with the session.
        assert!(matches!(
            rotate(&db, &first.token, 200, LIFE).await.expect("rotate"),
            Refresh::Reused { .. }
        ));
        assert!(matches!(
            rotate(&db, &retry.token, 210, LIFE).await.expect("rotate"),
            Refresh::Invalid
        ));
        assert!(matches!(
            rotate(&db, &issued.token, 300, LIFE).await.expect("rotate"),
            Refresh::Invalid
        ));
        assert!(active(&db, "u-1", 300).await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn tokens_and_sessions_expire_and_sign_out_ends_them() {
        let (_dir, db) = db().await;
        let a = start(&db, "u-1", 0, LIFE).await.expect("start");
        assert!(matches!(
            rotate(&db, &a.token, 1_000, LIFE).await.expect("rotate"),
            Refresh::Invalid
        ));
        // Refreshed often, a session still ends at its absolute age.
        let mut token = start(&db, "u-1", 0, LIFE).await.expect("start").token;
        for at in (900..10_000).step_by(900) {
            match rotate(&db, &token, at, LIFE).await.expect("rotate") {
                Refresh::Rotated { issued, .. } => {
                    assert!(issued.expires_at_ms <= 10_000);
                    token = issued.token;
                }
                _ => panic!("rotation at {at} fails"),
            }
        }
        assert!(matches!(
            rotate(&db, &token, 10_000, LIFE).await.expect("rotate"),
            Refresh::Invalid
        ));

        let b = start(&db, "u-1", 20_000, LIFE).await.expect("start");
        assert!(
            sign_out(&db, &b.token, 20_001)
                .await
                .expect("out")
                .is_some()
        );
        assert!(matches!(
            rotate(&db, &b.token, 20_002, LIFE).await.expect("rotate"),
            Refresh::Invalid
        ));
        assert!(
            sign_out(&db, "unknown", 20_003)
                .await
                .expect("out")
                .is_none()
        );

        // Another user cannot end this one's session; the owner can.
        let c = start(&db, "u-1", 30_000, LIFE).await.expect("start");
        assert!(
            !revoke(&db, "u-2", &c.session_id, 30_001, REVOKED_BY_OWNER)
                .await
                .expect("revoke")
        );
        assert_eq!(active(&db, "u-1", 30_001).await.expect("list").len(), 1);
        assert!(
            revoke(&db, "u-1", &c.session_id, 30_001, REVOKED_BY_OWNER)
                .await
                .expect("revoke")
        );
        assert!(active(&db, "u-1", 30_001).await.expect("list").is_empty());

        // Ended sessions are forgotten after the keep time.
        assert!(prune(&db, 40_000, 5_000).await.expect("prune") >= 3);
        assert!(matches!(
            rotate(&db, &a.token, 40_000, LIFE).await.expect("rotate"),
            Refresh::Invalid
        ));
    }
}
