//! What the gateway relies on from users, as a pact
//! (`crates/contracts/pacts/gateway-users.json`, verified by users' API tests): the
//! public keys access tokens are signed with, as a JWKS.

use std::time::Duration;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emporium_contracts::auth::{AUDIENCE, ISSUER, TOKEN_TYPE};
use emporium_gateway::auth::Verifier;
use emporium_testkit::pact::{Interaction, Pact};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// A fixed key, so the pact's example is the same every run.
const SEED: [u8; 32] = [7; 32];
const USER: &str = "33333333-3333-4333-8333-333333333333";

/// PKCS#8 v1 of an Ed25519 seed (RFC 8410): the fixed prefix, then the seed.
fn pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(seed);
    der
}

#[tokio::test]
async fn access_tokens_are_checked_against_the_keys_users_publishes() {
    let pair = Ed25519KeyPair::from_seed_unchecked(&SEED).expect("key");
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let mut pact = Pact::declare("gateway", "users");
    pact.interaction(
        Interaction::new("the keys that sign access tokens")
            .request("GET", "/.well-known/jwks.json", None)
            .responds(
                200,
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                                 "kid": "k1", "x": x}]}),
                &["/keys/0/kty", "/keys/0/crv", "/keys/0/alg", "/keys/0/use"],
            ),
    );
    let verifier = Verifier::new(pact.client(), Duration::from_secs(60), 0, 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    header.typ = Some(TOKEN_TYPE.into());
    let claims = json!({"sub": USER, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now,
                        "exp": now + 600, "jti": "j", "roles": ["customer"]});
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&pkcs8(&SEED)))
        .expect("sign");
    let verified = verifier
        .verify(&token)
        .await
        .expect("verified with the published key");
    assert_eq!(verified.user_id.to_string(), USER);
    pact.finish();
}
