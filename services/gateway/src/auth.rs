//! Verifying access tokens against users' JWKS.
//!
//! Keys are cached by `kid`. A token with an unknown `kid` triggers a refetch (users
//! rotated its key), at most once per `refetch_interval` after a successful fetch, so a
//! flood of forged key ids cannot turn into a flood of JWKS requests. Concurrent
//! misses wait for one fetch instead of each failing; until a first fetch succeeds,
//! tokens get 503 (we cannot tell), not 401. Each fetch replaces the key set: the JWKS
//! is the truth, so a key users withdrew stops verifying. Only EdDSA is accepted: a token with
//! `alg: none`, an HMAC algorithm or anything else fails before any key is looked at.
//!
//! A token that verified is remembered, by its exact text, until it expires
//! (Envoy's `jwt_cache_config` does the same): a shopper sends the same token with
//! every request, and checking an Ed25519 signature was a fifth of the gateway's
//! CPU under overload (`docs/benchmarks.md`). Remembering changes no answer: the
//! entry is used only while the token's `exp` has not passed (and for at most
//! [`REMEMBER_AT_MOST`]), when checking it again would pass too (its signature,
//! its key and its other claims do not change), and every entry is forgotten when
//! the key set is fetched again, so a withdrawn key stops verifying then. A check
//! that was under way while the keys changed is not remembered (a generation
//! count, compared under the table's lock), nor is a token that failed. The
//! table is bounded (`gateway.token_cache_entries`): when full, expired entries
//! go, and if that leaves it more than three quarters full, all of them (only
//! verified tokens get in, so nobody fills it with junk).

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// Tokens that verified, by their text, with when they expire.
    remembered: RwLock<HashMap<Box<str>, Remembered>>,
    /// The most tokens remembered (0: none).
    capacity: usize,
    /// How many times the key set was fetched: a check that began under an
    /// older key set is not remembered. Changed with `remembered` locked.
    generation: AtomicU64,
}

/// The longest a token is remembered, whatever its `exp` (one signed with a far
/// expiry is checked again now and then all the same).
const REMEMBER_AT_MOST: u64 = 300;

/// A token that verified: who it names, and its `exp` (seconds since the epoch).
struct Remembered {
    caller: Verified,
    expires: u64,
}

/// Seconds since the epoch now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// A verifier fetching keys through `users`, remembering up to `capacity`
    /// verified tokens.
    pub fn new(
        users: ServiceClient,
        refetch_interval: Duration,
        leeway_secs: u64,
        capacity: usize,
    ) -> Self {
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
            remembered: RwLock::new(HashMap::new()),
            capacity,
            generation: AtomicU64::new(0),
        }
    }

    /// Verifies a bearer token: the signature, `alg`, `typ`, `iss`, `aud`, `exp`,
    /// `nbf`, `sub` (RFC 8725).
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let now = unix_now();
        if let Some(caller) = self.recall(token, now) {
            return Ok(caller);
        }
        // Read before the keys are looked up: a refresh after this point
        // makes `remember` drop what these keys verify.
        let generation = self.generation.load(Ordering::Acquire);
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
        let caller = Verified {
            user_id,
            roles: data.claims.roles,
            email_verified: data.claims.email_verified,
        };
        self.remember(token, &caller, data.claims.exp, now, generation);
        Ok(caller)
    }

    /// Who `token` names, if it verified before and has not expired.
    fn recall(&self, token: &str, now: u64) -> Option<Verified> {
        let remembered = self.remembered.read().ok()?;
        remembered
            .get(token)
            .filter(|r| now < r.expires)
            .map(|r| r.caller.clone())
    }

    /// Remembers a token that verified with the keys of `generation`, until
    /// `expires` (at most [`REMEMBER_AT_MOST`] from `now`), unless the keys
    /// were fetched again since.
    fn remember(&self, token: &str, caller: &Verified, expires: u64, now: u64, generation: u64) {
        if self.capacity == 0 || expires <= now {
            return;
        }
        let Ok(mut remembered) = self.remembered.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if remembered.len() >= self.capacity {
            remembered.retain(|_, r| now < r.expires);
            if remembered.len() > self.capacity - self.capacity.div_ceil(4) {
                remembered.clear();
            }
        }
        remembered.insert(
            token.into(),
            Remembered {
                caller: caller.clone(),
                expires: expires.min(now.saturating_add(REMEMBER_AT_MOST)),
            },
        );
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
        // A token remembered may have been signed with a key withdrawn now, and
        // one being checked with the old keys is not remembered after this.
        if let Ok(mut remembered) = self.remembered.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            remembered.clear();
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
        remembering(0)
    }

    /// The same, remembering up to `capacity` tokens, its users serving a JWKS
    /// without any key (users withdrew them all).
    fn remembering(capacity: usize) -> (Verifier, EncodingKey) {
        with_jwks(capacity, false)
    }

    /// A verifier remembering up to `capacity` tokens and a signer with key
    /// "k1": known from the start and withdrawn from users' JWKS, or (`served`)
    /// unknown until the JWKS is fetched, which has it.
    fn with_jwks(capacity: usize, served: bool) -> (Verifier, EncodingKey) {
        use base64::Engine as _;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key());
        let set = if served {
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA", "use": "sig"}]})
        } else {
            json!({"keys": []})
        };
        let jwks = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || async move { axum::Json(set) }),
        );
        let users = ServiceClient::new(
            "users",
            Arc::new(emporium_client::LocalTransport::new().with("users", jwks)),
            Duration::from_secs(1),
        );
        let v = Verifier::new(users, Duration::from_secs(60), 0, capacity);
        if !served {
            v.keys.write().expect("keys").insert(
                "k1".into(),
                DecodingKey::from_ed_der(pair.public_key().as_ref()),
            );
        }
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

    #[tokio::test]
    async fn a_verified_token_is_remembered_until_it_expires_or_the_keys_change() {
        let (v, key) = remembering(16);
        // Expiring sooner than a token is remembered at most.
        let mut claims = claims();
        claims["exp"] = json!(claims["iat"].as_u64().expect("iat") + 120);
        let good = sign(&key, Some(TOKEN_TYPE), &claims);
        let expired = sign(&key, Some(TOKEN_TYPE), &{
            let mut c = claims.clone();
            c["exp"] = json!(1_000);
            c
        });
        assert!(v.verify(&expired).await.is_err());
        assert!(v.verify(&good).await.is_ok());
        // Its key gone from the table (not through a refresh), the token is
        // still known: its signature is not checked again.
        v.keys.write().expect("keys").clear();
        let again = v.verify(&good).await.expect("remembered");
        assert_eq!(again.user_id, Uuid::nil());
        assert_eq!(again.roles, ["customer"]);
        assert_eq!(
            v.remembered.read().expect("remembered").len(),
            1,
            "a token that failed is not remembered"
        );
        // Not past its expiry, though.
        let exp = claims["exp"].as_u64().expect("exp");
        assert!(v.recall(&good, exp - 1).is_some());
        assert!(v.recall(&good, exp).is_none());
        // A check that began before the keys were fetched again is not
        // remembered after it.
        let before = v.generation.load(Ordering::Acquire);
        v.refresh().await.expect("jwks");
        let caller = again.clone();
        v.remember(&good, &caller, exp, exp - 600, before);
        assert!(
            v.recall(&good, exp - 600).is_none(),
            "remembered after a refresh"
        );
        v.remember(&good, &caller, exp, exp - 600, before + 1);
        assert!(v.recall(&good, exp - 600).is_some());
        // Nor for longer than the most, whatever the expiry.
        v.remember("far", &caller, u64::MAX, 1_000, before + 1);
        assert!(v.recall("far", 1_000 + REMEMBER_AT_MOST - 1).is_some());
        assert!(v.recall("far", 1_000 + REMEMBER_AT_MOST).is_none());
        // The key set fetched again (without its key): forgotten, and refused.
        v.refresh().await.expect("jwks");
        let e = v.verify(&good).await.expect_err("withdrawn key");
        assert_eq!(e.status(), http::StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_check_that_fetched_the_keys_is_not_remembered_but_the_next_is() {
        let (v, key) = with_jwks(16, true);
        let good = sign(&key, Some(TOKEN_TYPE), &claims());
        let held = || v.remembered.read().expect("remembered").len();
        // Its unknown key id fetched the JWKS while it was checked: the key set
        // it began under is gone, so it is not remembered.
        assert!(v.verify(&good).await.is_ok());
        assert_eq!(held(), 0);
        assert!(v.verify(&good).await.is_ok());
        assert_eq!(held(), 1);
    }

    #[tokio::test]
    async fn remembering_is_bounded_and_can_be_off() {
        let (v, key) = remembering(2);
        for n in 0..5 {
            let mut c = claims();
            c["jti"] = json!(format!("j{n}"));
            let token = sign(&key, Some(TOKEN_TYPE), &c);
            assert!(v.verify(&token).await.is_ok());
            let held = v.remembered.read().expect("remembered").len();
            assert!((1..=2).contains(&held), "{held} remembered");
        }
        // Full with one expired entry: clearing that one would leave the table
        // as full at the next insert, so everything goes.
        let (v, _) = remembering(8);
        let caller = Verified {
            user_id: Uuid::nil(),
            roles: Vec::new(),
            email_verified: false,
        };
        v.remember("expiring", &caller, 1_001, 1_000, 0);
        for n in 0..7 {
            v.remember(&format!("t{n}"), &caller, 2_000, 1_000, 0);
        }
        assert_eq!(v.remembered.read().expect("remembered").len(), 8);
        v.remember("next", &caller, 2_000, 1_001, 0);
        assert_eq!(v.remembered.read().expect("remembered").len(), 1);
        let (off, key) = remembering(0);
        let good = sign(&key, Some(TOKEN_TYPE), &claims());
        assert!(off.verify(&good).await.is_ok());
        off.keys.write().expect("keys").clear();
        assert!(off.verify(&good).await.is_err(), "nothing remembered");
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
