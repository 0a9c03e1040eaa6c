//! The Ed25519 keys that sign access tokens, and the JWKS that publishes them.
//!
//! The first is generated on first start and kept in this service's own database;
//! the private half lives only in memory behind [`emporium_config::Secret`] and is
//! never logged. The key id is the RFC 7638 thumbprint of the public JWK.
//! `emporium keys rotate` adds a key that signs from then on; the one it replaces
//! is retired: published until every token it signed has expired, then deleted.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use emporium_config::Secret;
use emporium_contracts::auth::{AUDIENCE, AccessClaims, ISSUER, TOKEN_TYPE};
use emporium_store::Db;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// Signs tokens with the current key; knows every published key. Reloaded from
/// the database (every instance shares it) so that a rotation made through one
/// instance reaches the others.
pub struct Keys {
    current: ArcSwap<KeySet>,
    /// How long a retired key stays published: longer than any token it signed lives.
    publish_retired_ms: i64,
    /// How long a rotated-in key is published before it signs.
    activation_delay_ms: i64,
}

struct KeySet {
    kid: String,
    encoding: Secret<EncodingKey>,
    published: Vec<StoredKey>,
}

/// A key as the operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub public_x: String,
    pub created_at_ms: i64,
    /// When it starts signing (None: since its creation).
    pub activates_at_ms: Option<i64>,
    pub retired_at_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key storage failed")]
    Store(#[from] sqlx::Error),
    #[error("key material is invalid")]
    Invalid(String),
    #[error("token signing failed")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// The key of a row that exists only inside the transaction creating the first key,
/// never committed: a lock both engines take the same way (see `create_first`).
const FIRST_KEY_GUARD: &str = "first-key-guard";

/// How often every instance rereads the keys.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl Keys {
    /// Loads the signing key, generating and storing one on first start. A retired
    /// key stays published `access_ttl_ms` (plus the time instances take to notice
    /// a rotation, plus a minute of clock skew) after it stopped signing.
    ///
    /// A rotated-in key is published `activation_delay_ms` before it signs: long
    /// enough for every instance to reload (`RELOAD_EVERY`) and every gateway to
    /// fetch the JWKS again, so no token carries a kid a verifier cannot find.
    pub async fn load_or_create(
        db: &Db,
        now_ms: i64,
        access_ttl_ms: i64,
        activation_delay_ms: i64,
    ) -> Result<Self, KeyError> {
        if stored(db).await?.is_empty() {
            create_first(db, now_ms).await?;
        }
        let publish_retired_ms = access_ttl_ms + RELOAD_EVERY.as_millis() as i64 * 2 + 60_000;
        let set = load(db, now_ms, publish_retired_ms).await?;
        Ok(Self {
            current: ArcSwap::from_pointee(set),
            publish_retired_ms,
            activation_delay_ms,
        })
    }

    /// Rereads the keys: a rotation made elsewhere signs here too, and keys whose
    /// tokens have all expired are withdrawn (deleted).
    pub async fn reload(&self, db: &Db, now_ms: i64) -> Result<(), KeyError> {
        sqlx::query(
            "DELETE FROM signing_keys WHERE retired_at_ms IS NOT NULL AND retired_at_ms < $1",
        )
        .bind(now_ms - self.publish_retired_ms)
        .execute(db.pool())
        .await?;
        let set = load(db, now_ms, self.publish_retired_ms).await?;
        if set.kid != self.current.load().kid {
            tracing::info!(kid = %set.kid, "signing with a new key");
        }
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// Adds a new key, published now, that signs once its activation delay has
    /// passed; the others retire then (and verify until their tokens expire). The
    /// new key's id.
    pub async fn rotate(&self, db: &Db, now_ms: i64) -> Result<String, KeyError> {
        let activates_at = now_ms + self.activation_delay_ms;
        let mut tx = db.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at_ms = $1 WHERE retired_at_ms IS NULL")
            .bind(activates_at)
            .execute(&mut *tx)
            .await?;
        let kid = store_new(&mut tx, now_ms).await?;
        sqlx::query("UPDATE signing_keys SET activates_at_ms = $2 WHERE kid = $1")
            .bind(&kid)
            .bind(activates_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(%kid, activates_at = %emporium_store::rfc3339(activates_at), "rotated the token signing key");
        self.reload(db, now_ms).await?;
        Ok(kid)
    }

    /// The id of the key that signs now.
    pub fn signing_kid(&self) -> String {
        self.current.load().kid.clone()
    }

    /// The keys published now, the signing one first.
    pub fn published(&self) -> Vec<StoredKey> {
        self.current.load().published.clone()
    }

    /// When a retired key is withdrawn.
    pub fn withdrawn_at(&self, key: &StoredKey) -> Option<i64> {
        key.retired_at_ms.map(|r| r + self.publish_retired_ms)
    }

    /// Signs `claims` as an EdDSA JWT carrying the current key id.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let set = self.current.load();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(set.kid.clone());
        header.typ = Some(TOKEN_TYPE.to_string());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            set.encoding.expose(),
        )?)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .current
            .load()
            .published
            .iter()
            .map(|k| {
                json!({"kty": "OKP", "crv": "Ed25519", "x": k.public_x, "kid": k.kid, "alg": "EdDSA", "use": "sig"})
            })
            .collect();
        json!({ "keys": keys })
    }
}

/// The signing key (the newest unretired one) and every key still published.
async fn load(db: &Db, now_ms: i64, publish_retired_ms: i64) -> Result<KeySet, KeyError> {
    let rows = stored(db).await?;
    // The newest key that is active and not retired (rows are newest first).
    let Some(signing) = rows.iter().find(|r| {
        r.activates_at_ms.is_none_or(|at| at <= now_ms)
            && r.retired_at_ms.is_none_or(|at| at > now_ms)
    }) else {
        return Err(KeyError::Invalid("no signing key is stored".into()));
    };
    let (private_b64,): (String,) =
        sqlx::query_as("SELECT private_pkcs8 FROM signing_keys WHERE kid = $1")
            .bind(&signing.kid)
            .fetch_one(db.pool())
            .await?;
    let pkcs8 = Secret::new(
        STANDARD
            .decode(private_b64)
            .map_err(|e| KeyError::Invalid(e.to_string()))?,
    );
    let encoding = EncodingKey::from_ed_der(pkcs8.expose());
    let kid = signing.kid.clone();
    let mut published: Vec<StoredKey> = rows
        .into_iter()
        .filter(|r| {
            r.retired_at_ms
                .is_none_or(|at| at + publish_retired_ms > now_ms)
        })
        .collect();
    // The signing key first.
    published.sort_by_key(|r| r.kid != kid);
    Ok(KeySet {
        kid,
        encoding: Secret::new(encoding),
        published,
    })
}

/// Every stored key, the newest first.
async fn stored(db: &Db) -> Result<Vec<StoredKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, public_x, created_at_ms, activates_at_ms, retired_at_ms FROM signing_keys \
         WHERE kid <> $1 ORDER BY created_at_ms DESC, kid",
    )
    .bind(FIRST_KEY_GUARD)
    .fetch_all(db.pool())
    .await
}

/// Stores a first key unless another instance, starting at the same time, already
/// did. Several instances may share one database, and with PostgreSQL's plain `BEGIN`
/// (READ COMMITTED) each would see no key and store its own, then sign with a key
/// the others neither use nor publish. So the transaction first inserts a guard row
/// under a fixed kid: a second instance's insert of the same kid waits until the
/// first commits (SQLite's `BEGIN IMMEDIATE` serialises them anyway), and then reads
/// the key the first stored. The guard is deleted before commit, so it is never seen
/// outside its transaction; the table's contents are unchanged.
async fn create_first(db: &Db, now_ms: i64) -> Result<(), KeyError> {
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_pkcs8, public_x, created_at_ms) \
         VALUES ($1, '', '', 0) ON CONFLICT (kid) DO NOTHING",
    )
    .bind(FIRST_KEY_GUARD)
    .execute(&mut *tx)
    .await?;
    let (existing,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM signing_keys WHERE kid <> $1")
        .bind(FIRST_KEY_GUARD)
        .fetch_one(&mut *tx)
        .await?;
    if existing == 0 {
        let kid = store_new(&mut tx, now_ms).await?;
        tracing::info!(%kid, "generated a new token signing key");
    }
    sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
        .bind(FIRST_KEY_GUARD)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Generates a key and stores it in `tx`; its id.
async fn store_new(tx: &mut emporium_store::Tx, now_ms: i64) -> Result<String, KeyError> {
    let (kid, pkcs8, x) = generate()?;
    sqlx::query(
        "INSERT INTO signing_keys (kid, private_pkcs8, public_x, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(&kid)
    .bind(STANDARD.encode(pkcs8.expose()))
    .bind(&x)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(kid)
}

/// Claims for a token of `user_id` with `roles` (and its address confirmed or not),
/// valid for `ttl_secs` from `now_secs`.
pub fn claims(
    user_id: &str,
    roles: Vec<String>,
    email_verified: bool,
    now_secs: u64,
    ttl_secs: u64,
) -> AccessClaims {
    AccessClaims {
        sub: user_id.to_string(),
        iss: ISSUER.to_string(),
        aud: AUDIENCE.to_string(),
        iat: now_secs,
        nbf: now_secs,
        exp: now_secs + ttl_secs,
        jti: uuid::Uuid::now_v7().to_string(),
        roles,
        email_verified,
    }
}

/// A fresh key pair: (kid, PKCS#8 private key, base64url public key).
fn generate() -> Result<(String, Secret<Vec<u8>>, String), KeyError> {
    let rng = SystemRandom::new();
    let document =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
        .map_err(|e| KeyError::Invalid(e.to_string()))?;
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    Ok((thumbprint(&x), Secret::new(document.as_ref().to_vec()), x))
}

/// RFC 7638 thumbprint of an Ed25519 public JWK.
fn thumbprint(x: &str) -> String {
    // Members in lexicographic order, no whitespace, as the RFC requires.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};

    #[tokio::test]
    async fn keys_persist_and_tokens_verify_against_the_jwks() {
        let (_dir, db) = crate::test_db().await;
        let keys = Keys::load_or_create(&db, 1, 900_000, 0)
            .await
            .expect("create");
        let again = Keys::load_or_create(&db, 2, 900_000, 0)
            .await
            .expect("load");
        assert_eq!(
            keys.signing_kid(),
            again.signing_kid(),
            "the key survives a restart"
        );

        let token = keys
            .sign(&claims(
                "u-1",
                vec!["customer".into()],
                false,
                4_000_000_000 - 100,
                900,
            ))
            .expect("sign");
        let jwks: JwkSet = serde_json::from_value(again.jwks()).expect("jwks parses");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.alg, Algorithm::EdDSA);
        let jwk = jwks
            .find(header.kid.as_deref().expect("kid"))
            .expect("published");
        let key = DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[ISSUER]);
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<AccessClaims>(&token, &key, &v).expect("valid");
        assert_eq!(data.claims.sub, "u-1");
        assert!(!format!("{:?}", keys.current.load().encoding).contains("PRIVATE"));
    }

    #[tokio::test]
    async fn a_rotated_key_is_published_before_it_signs_and_withdrawn_after_its_tokens() {
        let (_dir, db) = crate::test_db().await;
        let keys = Keys::load_or_create(&db, 1_000, 900_000, 30_000)
            .await
            .expect("create");
        let other = Keys::load_or_create(&db, 1_000, 900_000, 30_000)
            .await
            .expect("load");
        let old = keys.signing_kid();
        let new = keys.rotate(&db, 2_000).await.expect("rotate");
        assert_ne!(old, new);
        let kids = |k: &Keys| k.published().into_iter().map(|k| k.kid).collect::<Vec<_>>();
        // Published at once, everywhere after a reload; the old key still signs.
        assert_eq!(keys.signing_kid(), old, "not active yet");
        other.reload(&db, 3_000).await.expect("reload");
        assert_eq!(kids(&other), [old.clone(), new.clone()]);
        assert_eq!(other.signing_kid(), old);
        // From its activation (30 s on), the new key signs on every instance.
        other.reload(&db, 32_000).await.expect("reload");
        keys.reload(&db, 32_000).await.expect("reload");
        assert_eq!(other.signing_kid(), new);
        assert_eq!(keys.signing_kid(), new);
        assert_eq!(kids(&keys), [new.clone(), old.clone()]);
        // The old key, retired at that moment, stays published until its last
        // tokens have expired (900 s + 80 s).
        let withdrawn = keys.withdrawn_at(&keys.published()[1]).expect("retired");
        assert_eq!(withdrawn, 32_000 + 980_000);
        keys.reload(&db, withdrawn - 1).await.expect("reload");
        assert_eq!(kids(&keys), [new.clone(), old.clone()]);
        keys.reload(&db, withdrawn + 1).await.expect("reload");
        assert_eq!(kids(&keys), [new]);
        let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM signing_keys")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(left, 1, "the withdrawn private key is deleted");
    }

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
