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

use std::sync::Arc;

use axum::Router;
use emporium_runtime::{Build, Service};
use serde::Deserialize;

pub use api::{LoginRequest, RegisterRequest, TokenResponse, UserView};

pub const NAME: &str = "users";

static MIGRATIONS: emporium_store::Migrations = emporium_store::migrations!();

/// The `[users]` settings table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersSettings {
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Accounts registered with these emails get the admin role.
    pub admin_emails: Vec<String>,
}

impl Default for UsersSettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            admin_emails: Vec::new(),
        }
    }
}

/// The users service, as the runtime hosts it.
pub struct Users;

impl Service for Users {
    type Settings = UsersSettings;
    const NAME: &'static str = NAME;
    const MIGRATIONS: Option<&'static emporium_store::Migrations> = Some(&MIGRATIONS);

    async fn build(&self, cx: &mut Build<UsersSettings>) -> anyhow::Result<Router> {
        let keys = keys::Keys::load_or_create(cx.db(), emporium_store::now_ms()).await?;
        let state = api::AppState {
            outbox: cx.outbox(),
            db: cx.db().clone(),
            keys: Arc::new(keys),
            passwords: Arc::new(passwords::Passwords::new()),
            settings: Arc::new(cx.settings.clone()),
        };
        let (routes, _) = api::router(state);
        Ok(routes)
    }
}

/// The OpenAPI document of the public API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::openapi()
}
