//! Opaque tokens (refresh tokens, one-time mail links): 32 random bytes, base64url,
//! stored only as their SHA-256 — a stolen table holds nothing usable, and with 256
//! bits of entropy a fast hash is enough (no password to guess).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The system's random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the system's random source failed")]
pub struct NoRandomness;

/// A fresh token.
pub fn new_token() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| NoRandomness)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of `token`.
pub fn hash(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Longest token input looked at (ours are 43 characters); longer input is refused
/// as unknown without hashing it.
pub const MAX_TOKEN_BYTES: usize = 512;
