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
    /// Whether the account confirmed its email address (OpenID Connect's claim);
    /// checking out needs it.
    #[serde(default)]
    pub email_verified: bool,
}

/// What a one-time link mailed to an account is for: the message kind in
/// notifications and the purpose users checks when the link is used.
pub const LINK_VERIFY_EMAIL: &str = "verify_email";
/// See [`LINK_VERIFY_EMAIL`].
pub const LINK_PASSWORD_RESET: &str = "password_reset";

/// users: `POST` mints a one-time link's token ([`LinkRequest`] → [`Link`]).
pub const LINKS_PATH: &str = "/internal/users/links";

/// notifications asks users for a one-time link's token just before it mails it
/// (`POST` [`LINKS_PATH`]), so the token is never in an event or a stored
/// message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRequest {
    pub user_id: String,
    /// [`LINK_VERIFY_EMAIL`] or [`LINK_PASSWORD_RESET`].
    pub purpose: String,
}

/// A one-time token, good once until `expires_at` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub token: String,
    pub expires_at: String,
}
