//! Header names shared by the gateway, the services and their clients.

/// Correlates every log line of one request across services.
pub const REQUEST_ID: &str = "x-request-id";
/// Remaining time budget of a request in milliseconds, propagated on every hop.
pub const TIMEOUT_MS: &str = "x-request-timeout-ms";
/// W3C trace context, passed through unchanged until tracing lands.
pub const TRACEPARENT: &str = "traceparent";
/// The verified user id, set only by the gateway after it checked the JWT.
pub const USER_ID: &str = "x-user-id";
/// The verified roles (comma separated), set only by the gateway.
pub const USER_ROLES: &str = "x-user-roles";

/// `true` when the verified user's email address is confirmed (the access token's
/// `email_verified` claim), set only by the gateway.
pub const USER_EMAIL_VERIFIED: &str = "x-user-email-verified";
/// The client's address as the gateway determined it (see `gateway.trusted_proxies`),
/// for per-client decisions behind it (login throttling).
pub const CLIENT_IP: &str = "x-client-ip";

/// Identity headers a client must never be able to set: the gateway strips them,
/// and services accept them from the gateway and the storefront only.
pub const IDENTITY_HEADERS: [&str; 4] = [USER_ID, USER_ROLES, USER_EMAIL_VERIFIED, CLIENT_IP];

/// Makes a retried `POST` safe: the same key gives the same result.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The storefront's session cookie: the signed-in shopper's access token, HttpOnly.
/// The gateway verifies it on every page request as it verifies a bearer token.
pub const SESSION_COOKIE: &str = "emporium_session";
/// The storefront's refresh cookie: the shopper's refresh token, HttpOnly, which
/// the storefront exchanges for a new session when the access token expires.
pub const REFRESH_COOKIE: &str = "emporium_refresh";

/// Marks a 503 as load shedding (the server's concurrency limit refused the
/// request before any work), not a failure: the gateway's brownout counts these.
pub const SHED: &str = "x-emporium-shed";
