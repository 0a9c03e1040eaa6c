//! The Ed25519 key that signs access tokens, and the JWKS that publishes it.
//!
//! Generated on first start and kept in this service's own database; the private half
//! lives only in memory behind [`emporium_config::Secret`] and is never logged. The
//! key id is the RFC 7638 thumbprint of the public JWK.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use emporium_config::Secret;
use emporium_contracts::auth::{AUDIENCE, AccessClaims, ISSUER, TOKEN_TYPE};
use emporium_store::Db;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Signs tokens with the current key; knows every published key.
pub struct Keys {
    kid: String,
    encoding: Secret<EncodingKey>,
    published: Vec<(String, String)>,
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

impl Keys {
    /// Loads the signing key, generating and storing one on first start.
    pub async fn load_or_create(db: &Db, now_ms: i64) -> Result<Self, KeyError> {
        let mut rows = stored(db).await?;
        if rows.is_empty() {
            create_first(db, now_ms).await?;
            // Whoever created it: every instance signs with what is stored.
            rows = stored(db).await?;
        }
        let Some((kid, private_b64, _)) = rows.first() else {
            return Err(KeyError::Invalid("no signing key was stored".into()));
        };
        let pkcs8 = Secret::new(
            STANDARD
                .decode(private_b64)
                .map_err(|e| KeyError::Invalid(e.to_string()))?,
        );
        let encoding = EncodingKey::from_ed_der(pkcs8.expose());
        Ok(Self {
            kid: kid.clone(),
            encoding: Secret::new(encoding),
            published: rows.into_iter().map(|(kid, _, x)| (kid, x)).collect(),
        })
    }

    #[cfg(test)]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Signs `claims` as an EdDSA JWT carrying the current key id.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(TOKEN_TYPE.to_string());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            self.encoding.expose(),
        )?)
    }

    /// The JWKS document.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .published
            .iter()
            .map(|(kid, x)| {
                json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
            })
            .collect();
        json!({ "keys": keys })
    }
}

/// Every stored key, the signing one (the newest) first: (kid, PKCS#8 base64, x).
async fn stored(db: &Db) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kid, private_pkcs8, public_x FROM signing_keys ORDER BY created_at_ms DESC, kid",
    )
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
        let (kid, pkcs8, x) = generate()?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pkcs8, public_x, created_at_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&kid)
        .bind(STANDARD.encode(pkcs8.expose()))
        .bind(&x)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tracing::info!(%kid, "generated a new token signing key");
    }
    sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
        .bind(FIRST_KEY_GUARD)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Claims for a token of `user_id` with `roles`, valid for `ttl_secs` from `now_secs`.
pub fn claims(user_id: &str, roles: Vec<String>, now_secs: u64, ttl_secs: u64) -> AccessClaims {
    AccessClaims {
        sub: user_id.to_string(),
        iss: ISSUER.to_string(),
        aud: AUDIENCE.to_string(),
        iat: now_secs,
        nbf: now_secs,
        exp: now_secs + ttl_secs,
        jti: uuid::Uuid::now_v7().to_string(),
        roles,
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
        let dir = tempfile::tempdir().expect("dir");
        let db = Db::open_service("users", dir.path(), None)
            .await
            .expect("db");
        db.migrate_all(&crate::MIGRATIONS).await.expect("migrate");
        let keys = Keys::load_or_create(&db, 1).await.expect("create");
        let again = Keys::load_or_create(&db, 2).await.expect("load");
        assert_eq!(keys.kid(), again.kid(), "the key survives a restart");

        let token = keys
            .sign(&claims(
                "u-1",
                vec!["customer".into()],
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
        assert!(!format!("{:?}", keys.encoding).contains("PRIVATE"));
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
