//! users' HTTP API: the routes, the state they share, and the operator's routes.

mod accounts;
mod email;
mod operator;
mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use emporium_http::Callers;
use emporium_http::openapi::spec_router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::UsersSettings;
use crate::keys::Keys;
use crate::passwords::Passwords;
use crate::sessions::Lifetimes;
use crate::throttle::LoginThrottle;

pub use accounts::{LoginRequest, RegisterRequest, TokenResponse, UserView};
pub use email::{ResetConfirmation, ResetRequest, VerifyRequest};
pub use sessions::{RefreshRequest, SessionView};

#[derive(Clone)]
pub struct AppState {
    pub db: emporium_store::Db,
    pub outbox: emporium_events::Outbox,
    pub keys: Arc<Keys>,
    pub passwords: Arc<Passwords>,
    pub throttle: Arc<LoginThrottle>,
    pub settings: Arc<UsersSettings>,
}

impl AppState {
    pub fn lifetimes(&self) -> Lifetimes {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
        Lifetimes {
            refresh_ms: ms(self.settings.refresh_token_ttl_secs),
            session_ms: ms(self.settings.session_max_age_secs),
            reuse_grace_ms: ms(self.settings.refresh_reuse_grace_secs),
        }
    }
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Emporium users",
    description = "Accounts, sessions and access tokens"
))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::register))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::jwks))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::list, sessions::revoke_all))
        .routes(routes!(sessions::revoke))
        .routes(routes!(email::resend_verification))
        .routes(routes!(email::verify))
        .routes(routes!(email::request_reset))
        .routes(routes!(email::confirm_reset))
}

/// The service's routes (public and the operator's) and its public OpenAPI
/// document (also served at the spec path).
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (routes, api) = routes().split_for_parts();
    let internal = Router::new()
        .route("/internal/users/admins", get(operator::admins))
        .route(
            "/internal/users/admins/{email}",
            put(operator::grant).delete(operator::revoke),
        )
        .route("/internal/users/verified/{email}", put(operator::vouch))
        .route(
            "/internal/users/keys",
            get(operator::keys).post(operator::rotate),
        )
        // `emporium admin` and `emporium keys`: the operator's.
        .callers(&[]);
    let links = Router::new()
        .route(emporium_contracts::auth::LINKS_PATH, post(email::mint_link))
        .callers(&["notifications"]);
    (
        routes
            .merge(internal)
            .merge(links)
            .with_state(state)
            .merge(spec_router(api.clone())),
        api,
    )
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}
