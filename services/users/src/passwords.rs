//! Password hashing: argon2id with the crate's recommended parameters (19 MiB, t=2).
//!
//! Hashing is CPU- and memory-hard on purpose, so it runs on the blocking pool and a
//! semaphore bounds how many run at once: a login flood queues instead of eating the
//! machine's memory. Verifying a login for an unknown email still verifies against a
//! dummy hash, so the answer takes as long as for a known one.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::Arc;

use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

pub struct Passwords {
    permits: Arc<Semaphore>,
    dummy: OnceCell<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl Passwords {
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores)),
            dummy: OnceCell::new(),
        }
    }

    async fn permit(&self) -> Result<OwnedSemaphorePermit, HashError> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| HashError(e.to_string()))
    }

    /// A PHC string (`$argon2id$v=19$...`) for `password`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let permit = self.permit().await?;
        tokio::task::spawn_blocking(move || {
            // The permit lives as long as the hashing, not as the request: a caller
            // that gives up does not free a slot while its hash still runs.
            let _permit = permit;
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError(e.to_string()))
        })
        .await
        .map_err(|e| HashError(e.to_string()))?
    }

    /// Whether `password` matches `hash`; with no hash (unknown account), checks a
    /// dummy hash and answers false, in the same time.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = match hash {
            Some(h) => h,
            None => self
                .dummy
                .get_or_try_init(|| self.hash(uuid::Uuid::new_v4().to_string()))
                .await?
                .clone(),
        };
        let permit = self.permit().await?;
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let parsed = PasswordHash::new(&hash).map_err(|e| HashError(e.to_string()))?;
            Ok::<_, HashError>(
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok(),
            )
        })
        .await
        .map_err(|e| HashError(e.to_string()))??;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_never_match() {
        let p = Passwords::new();
        let h = p.hash("correct horse battery".into()).await.expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(!h.contains("correct horse"));
        assert!(
            p.verify("correct horse battery".into(), Some(h.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !p.verify("wrong horse battery".into(), Some(h))
                .await
                .expect("verify")
        );
        assert!(
            !p.verify("anything at all".into(), None)
                .await
                .expect("verify")
        );
    }
}
