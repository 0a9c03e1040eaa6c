//! users: accounts, credentials and access tokens.
//!
//! Owns accounts (email, name, roles) and their argon2id password hashes, and the
//! Ed25519 key that signs access tokens. Public API, through the gateway:
//!
//! - `POST /api/users/register` `{email, password, name}` → 201 `{id, email, name}`
//!   (409 when the email is taken);
//! - `POST /api/users/login` `{email, password}` → `{access_token, token_type,
//!   expires_in}`; a short-lived EdDSA JWT with a `kid`; a wrong email and a wrong
//!   password get the same answer in about the same time;
//! - `GET /api/users/me` → the caller's account;
//! - `GET /.well-known/jwks.json` → the public keys the gateway verifies tokens with.
//!
//! Users whose email is listed in `admin_emails` get the `admin` role. Publishes
//! `UserRegistered` (with email and name, for notifications) through its outbox.

mod api;
mod domain;
mod keys;
mod passwords;
mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use emporium_config::Settings;
use emporium_runtime::Host;
use serde::Deserialize;
use tokio::net::TcpListener;

pub use api::{LoginRequest, RegisterRequest, TokenResponse, UserView};

pub const NAME: &str = "users";

pub const DEFAULT_LISTEN: SocketAddr = emporium_runtime::LOOPBACK_ANY_PORT;

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[users]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersSettings {
    pub database_url: Option<String>,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Accounts registered with these emails get the admin role.
    pub admin_emails: Vec<String>,
}

impl Default for UsersSettings {
    fn default() -> Self {
        Self {
            database_url: None,
            access_token_ttl_secs: 15 * 60,
            admin_emails: Vec::new(),
        }
    }
}

/// Runs users until `shutdown`.
pub async fn run(
    settings: Settings<UsersSettings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let host = Host::new(NAME, &settings.common);
    let db = host
        .open_db(settings.service.database_url.as_deref(), &MIGRATIONS)
        .await?;
    let keys = keys::Keys::load_or_create(&db, emporium_store::now_ms()).await?;
    let events = emporium_events::Events::open(&host, &db).await?;
    let state = api::AppState {
        outbox: events.outbox(),
        db,
        keys: Arc::new(keys),
        passwords: Arc::new(passwords::Passwords::new()),
        settings: Arc::new(settings.service),
    };
    let (routes, _) = api::router(state);
    events.serve(host, routes, listener, shutdown).await
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
