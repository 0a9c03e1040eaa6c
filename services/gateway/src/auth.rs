//! Verifying access tokens against users' JWKS.
//!
//! Keys are cached by `kid`. A token with an unknown `kid` triggers a refetch (users
//! rotated its key), at most once per `refetch_interval` after a successful fetch, so a
//! flood of forged key ids cannot turn into a flood of JWKS requests. Concurrent
//! misses wait for one fetch instead of each failing; until a first fetch succeeds,
//! tokens get 503 (we cannot tell), not 401. Each fetch replaces the key set: the JWKS
//! is the truth, so a key users withdrew stops verifying. Only EdDSA is accepted: a token with
//! `alg: none`, an HMAC algorithm or anything else fails before any key is looked at.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use emporium_client::ServiceClient;
use emporium_contracts::auth::{AUDIENCE, AccessClaims, ISSUER, TOKEN_TYPE};
use emporium_http::ApiError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use uuid::Uuid;

/// A verified caller: the user the token names, as services receive it.
pub type Verified = emporium_http::Caller;

pub struct Verifier {
    users: ServiceClient,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the JWKS was last fetched successfully; held while fetching.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    refetch_interval: Duration,
    validation: Validation,
}

impl Verifier {
    pub fn new(users: ServiceClient, refetch_interval: Duration, leeway_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = leeway_secs;
        Self {
            users,
            keys: RwLock::new(HashMap::new()),
            last_fetch: tokio::sync::Mutex::new(None),
            refetch_interval,
            validation,
        }
    }

    /// Verifies a bearer token: the signature, `alg`, `typ`, `iss`, `aud`, `exp`,
    /// `nbf`, `sub` (RFC 8725).
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let invalid = |why: &str| ApiError::unauthorized(format!("invalid access token: {why}"));
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("unsupported algorithm"));
        }
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(invalid("not an access token"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no key id"))?;
        let key = self
            .key(&kid)
            .await?
            .ok_or_else(|| invalid("unknown key id"))?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => invalid("expired"),
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => invalid("not yet valid"),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid("bad signature"),
                _ => invalid("rejected"),
            },
        )?;
        let user_id = Uuid::parse_str(&data.claims.sub).map_err(|_| invalid("bad subject"))?;
        Ok(Verified {
            user_id,
            roles: data.claims.roles,
            email_verified: data.claims.email_verified,
        })
    }

    /// The key for `kid`, fetching the JWKS when it is unknown (rate-limited).
    async fn key(&self, kid: &str) -> Result<Option<DecodingKey>, ApiError> {
        if let Some(key) = self.cached(kid) {
            return Ok(Some(key));
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        if let Some(key) = self.cached(kid) {
            return Ok(Some(key));
        }
        if last.is_none_or(|t| t.elapsed() >= self.refetch_interval) {
            self.refresh().await?;
            *last = Some(Instant::now());
        }
        Ok(self.cached(kid))
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok().and_then(|k| k.get(kid).cloned())
    }

    async fn refresh(&self) -> Result<(), ApiError> {
        let set: JwkSet = self
            .users
            .get_json("/.well-known/jwks.json")
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot fetch the JWKS");
                ApiError::unavailable("tokens cannot be verified right now; retry shortly")
                    .with_source(e)
            })?;
        let mut fresh = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) {
                fresh.insert(kid.clone(), key);
            }
        }
        tracing::info!(keys = fresh.len(), "fetched the JWKS");
        if let Ok(mut keys) = self.keys.write() {
            *keys = fresh;
        }
        Ok(())
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    const NOW: u64 = 2_000_000_000;

    /// A verifier that knows one key, `kid` "k1", and a signer with it.
    fn verifier() -> (Verifier, EncodingKey) {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let users = ServiceClient::new(
            "users",
            Arc::new(emporium_client::LocalTransport::new()),
            Duration::from_secs(1),
        );
        let v = Verifier::new(users, Duration::from_secs(60), 0);
        v.keys.write().expect("keys").insert(
            "k1".into(),
            DecodingKey::from_ed_der(pair.public_key().as_ref()),
        );
        (v, EncodingKey::from_ed_der(pkcs8.as_ref()))
    }

    fn claims() -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        json!({"sub": Uuid::nil().to_string(), "iss": ISSUER, "aud": AUDIENCE, "iat": now,
               "nbf": now, "exp": now + 600, "jti": "j", "roles": ["customer"]})
    }

    fn sign(key: &EncodingKey, typ: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        header.typ = typ.map(str::to_string);
        jsonwebtoken::encode(&header, claims, key).expect("sign")
    }

    #[tokio::test]
    async fn every_claim_and_the_type_are_checked_with_a_valid_signature() {
        let (v, key) = verifier();
        let good = sign(&key, Some(TOKEN_TYPE), &claims());
        assert_eq!(v.verify(&good).await.expect("valid").user_id, Uuid::nil());
        let with = |field: &str, value: Value| {
            let mut c = claims();
            c[field] = value;
            c
        };
        let without = |field: &str| {
            let mut c = claims();
            c.as_object_mut().expect("object").remove(field);
            c
        };
        let cases = [
            (
                "wrong aud",
                sign(&key, Some(TOKEN_TYPE), &with("aud", json!("elsewhere"))),
            ),
            (
                "wrong iss",
                sign(&key, Some(TOKEN_TYPE), &with("iss", json!("mallory"))),
            ),
            (
                "expired",
                sign(&key, Some(TOKEN_TYPE), &with("exp", json!(1_000))),
            ),
            (
                "not yet valid",
                sign(&key, Some(TOKEN_TYPE), &with("nbf", json!(NOW * 2))),
            ),
            ("no nbf", sign(&key, Some(TOKEN_TYPE), &without("nbf"))),
            ("no aud", sign(&key, Some(TOKEN_TYPE), &without("aud"))),
            ("typ JWT", sign(&key, Some("JWT"), &claims())),
            ("no typ", sign(&key, None, &claims())),
        ];
        for (what, token) in cases {
            let e = v.verify(&token).await.expect_err(what);
            assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED, "{what}");
        }
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
