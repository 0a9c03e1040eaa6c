//! Join tokens: what an instance shows the registry to get a certificate for
//! its service.
//!
//! The operator holds one bootstrap secret; each service's token is an HMAC of
//! its name under that secret, so a token gets certificates for that one
//! service only, and the registry needs nothing but the secret to check it.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const LABEL: &str = "emporium join token v1:";

/// A new bootstrap secret (32 random bytes, base64url).
pub fn new_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The join token of `service` under `secret`.
pub fn join_token(secret: &str, service: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{LABEL}{service}").as_bytes());
    URL_SAFE_NO_PAD.encode(tag.as_ref())
}

/// Whether `token` is `service`'s join token under `secret` (constant time).
pub fn verify_join_token(secret: &str, service: &str, token: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, format!("{LABEL}{service}").as_bytes(), &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_for_its_service_under_its_secret_only() {
        let secret = new_secret().expect("secret");
        let token = join_token(&secret, "orders");
        assert!(verify_join_token(&secret, "orders", &token));
        assert!(!verify_join_token(&secret, "payments", &token));
        assert!(!verify_join_token(
            &new_secret().expect("secret"),
            "orders",
            &token
        ));
        assert!(!verify_join_token(&secret, "orders", "not base64 !"));
    }
}
