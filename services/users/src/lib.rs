//! users: accounts, sessions and access tokens.
//!
//! Owns accounts (email, name, roles) and their argon2id password hashes, their
//! sessions with rotating refresh tokens, the operator's admin grants, and the
//! Ed25519 keys that sign access tokens. Public API, through the gateway:
//!
//! - `POST /api/users/register` `{email, password, name}` → 201 `{id, email, name}`
//!   (409 when the email is taken);
//! - `POST /api/users/login` `{email, password}` → `{access_token, token_type,
//!   expires_in, refresh_token, refresh_expires_in}`: a short-lived EdDSA JWT with a
//!   `kid`, and the session's first refresh token; a wrong email and a wrong
//!   password get the same answer in about the same time, and repeated failures are
//!   slowed down per email and per client address (429);
//! - `POST /api/users/token` `{refresh_token}` → a new pair (each refresh token is
//!   good once; a reused one ends its session); `POST /api/users/logout` ends one;
//! - `GET /api/users/me`, `GET|DELETE /api/users/me/sessions[/{id}]`;
//! - `POST /api/users/verify` `{token}` confirms the address with the mailed link
//!   (`POST /api/users/verification` mails a new one); `POST
//!   /api/users/password-reset` `{email}` mails a reset link, and `.../confirm`
//!   `{token, password}` sets the new password and ends every session;
//! - `GET /.well-known/jwks.json` → the public keys the gateway verifies tokens with.
//!
//! The operator's routes (`/internal/users/admins`, `/internal/users/keys`) grant
//! and revoke the admin role by email and rotate the signing key;
//! `/internal/users/links` gives notifications the token of a link it mails.
//! Publishes `UserRegistered`, `EmailVerificationRequested` and
//! `PasswordResetRequested` (with email and name, for notifications) through its
//! outbox; no event carries a link's token.

mod api;
mod domain;
mod keys;
mod links;
mod opaque;
mod passwords;
mod sessions;
mod store;
mod throttle;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use emporium_runtime::{Build, Service};
use emporium_store::now_ms;
use serde::Deserialize;

pub use api::{
    LoginRequest, RefreshRequest, RegisterRequest, ResetConfirmation, ResetRequest, SessionView,
    TokenResponse, UserView, VerifyRequest,
};
pub use throttle::ThrottleSettings;

pub const NAME: &str = "users";

/// A migrated users database in a temporary folder, for unit tests.
#[cfg(test)]
pub(crate) async fn test_db() -> (tempfile::TempDir, emporium_store::Db) {
    let dir = tempfile::tempdir().expect("dir");
    let db = emporium_store::Db::open_service("users", dir.path(), None)
        .await
        .expect("db");
    db.migrate_all(&MIGRATIONS).await.expect("migrate");
    (dir, db)
}

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[users]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersSettings {
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token not used (each use issues a new one).
    pub refresh_token_ttl_secs: u64,
    /// Longest a session lasts from its sign-in, however often refreshed.
    pub session_max_age_secs: u64,
    /// A used refresh token presented again this soon after its use is a retry
    /// (two tabs, a lost answer) and gets another successor; later, it ends the
    /// session as a stolen copy. 0: every second use ends it.
    pub refresh_reuse_grace_secs: u64,
    /// How failed sign-ins slow down further attempts.
    pub login_throttle: ThrottleSettings,
    /// How long a link to confirm an email address works.
    pub verification_link_ttl_secs: u64,
    /// How long a password reset link works.
    pub reset_link_ttl_secs: u64,
    /// How long a key `emporium keys rotate` adds is published before it signs
    /// (every instance and gateway has it by then).
    pub key_activation_delay_secs: u64,
}

impl Default for UsersSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 14 * 24 * 3600,
            session_max_age_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 30,
            login_throttle: ThrottleSettings::default(),
            verification_link_ttl_secs: 24 * 3600,
            reset_link_ttl_secs: 3600,
            key_activation_delay_secs: 30,
        }
    }
}

/// How long sessions that ended are remembered (a reused refresh token of an ended
/// session is still recognised), and how often they are pruned.
const KEEP_ENDED_SESSIONS_MS: i64 = 7 * 24 * 3600 * 1000;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The users service, as the runtime hosts it.
pub struct Users;

impl Service for Users {
    type Settings = UsersSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<UsersSettings>) -> anyhow::Result<Router> {
        let settings = cx.settings.clone();
        let access_ttl_ms = i64::try_from(settings.access_token_ttl_secs.saturating_mul(1000))?;
        let activation_ms = i64::try_from(settings.key_activation_delay_secs.saturating_mul(1000))?;
        let keys = Arc::new(
            keys::Keys::load_or_create(cx.db(), now_ms(), access_ttl_ms, activation_ms).await?,
        );
        let db = cx.db().clone();
        let reloading = keys.clone();
        cx.every(keys::RELOAD_EVERY, move || {
            let (reloading, db) = (reloading.clone(), db.clone());
            async move {
                if let Err(e) = reloading.reload(&db, now_ms()).await {
                    tracing::warn!(error = %e, "cannot reload the signing keys");
                }
            }
        });
        let db = cx.db().clone();
        cx.every(PRUNE_EVERY, move || {
            let db = db.clone();
            async move {
                match sessions::prune(&db, now_ms(), KEEP_ENDED_SESSIONS_MS).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "forgot sessions that ended"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune sessions"),
                }
            }
        });
        let throttle = Arc::new(throttle::LoginThrottle::new(
            settings.login_throttle.clone(),
            cx.db().clone(),
        ));
        let pruned = throttle.clone();
        cx.every(PRUNE_EVERY, move || {
            let pruned = pruned.clone();
            async move {
                match pruned.prune(now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(keys = n, "forgot quiet login failures"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the login throttle"),
                }
            }
        });
        let state = api::AppState {
            outbox: cx.outbox(),
            db: cx.db().clone(),
            keys,
            passwords: Arc::new(passwords::Passwords::new()),
            throttle: throttle.clone(),
            settings: Arc::new(settings),
        };
        let (routes, _) = api::router(state);
        Ok(routes)
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
