//! Access-token claims: issued by users, verified by the gateway.

use serde::{Deserialize, Serialize};

/// The `iss` of every access token.
pub const ISSUER: &str = "emporium-users";
/// The `aud` of every access token.
pub const AUDIENCE: &str = "emporium";
/// The `typ` header of every access token (RFC 9068's explicit type, as RFC 8725
/// asks): a JWT of another kind, signed by the same key, is not an access token.
pub const TOKEN_TYPE: &str = "at+jwt";
/// The role that may change the catalog.
pub const ROLE_ADMIN: &str = "admin";
/// The role every registered user has.
pub const ROLE_CUSTOMER: &str = "customer";

/// Claims of an EdDSA-signed access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id (UUID).
    pub sub: String,
    pub iss: String,
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not valid before, seconds since the epoch.
    pub nbf: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    pub roles: Vec<String>,
}
