//! users' HTTP handlers: parse input into domain types, call the store, map errors.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, Router};
use emporium_contracts::auth::{ROLE_ADMIN, ROLE_CUSTOMER};
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, ApiJson, Caller, FieldError, Problem};
use emporium_store::{Db, is_unique_violation, now_ms, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::UsersSettings;
use crate::domain::{Email, Name, Password};
use crate::keys::{self, Keys};
use crate::passwords::Passwords;
use crate::store::{self, UserRow};

/// Longest password input even looked at on login (the policy caps new ones at 128
/// characters); longer input fails like any wrong password, without hashing it.
const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub outbox: emporium_events::Outbox,
    pub keys: Arc<Keys>,
    pub passwords: Arc<Passwords>,
    pub settings: Arc<UsersSettings>,
}

#[derive(OpenApi)]
#[openapi(info(title = "Emporium users", description = "Accounts and access tokens"))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(me))
        .routes(routes!(jwks))
}

/// The service's routes and its OpenAPI document (also served at the spec path).
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (routes, api) = routes().split_for_parts();
    (
        routes.with_state(state).merge(spec_router(api.clone())),
        api,
    )
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 10 to 128 characters; not a common password, not the email.
    #[schema(example = "correct horse battery staple")]
    pub password: String,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// An account as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        let created_at = rfc3339(u.created_at_ms);
        Self {
            id: u.id.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            roles: u.roles(),
            created_at,
        }
    }
}

/// Create an account.
#[utoipa::path(post, path = "/api/users/register", tag = "users",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserView),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 409, description = "The email is already registered", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
    ))]
async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let email = Email::parse(&req.email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let password = Password::parse(&req.password, email.as_ref())
        .map_err(|m| errors.push(FieldError::new("password", m)))
        .ok();
    let name = Name::parse(&req.name)
        .map_err(|m| errors.push(FieldError::new("name", m)))
        .ok();
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        return Err(ApiError::validation(errors));
    };
    let mut roles = vec![ROLE_CUSTOMER.to_string()];
    if state
        .settings
        .admin_emails
        .iter()
        .any(|a| a.trim().eq_ignore_ascii_case(email.as_str()))
    {
        roles.push(ROLE_ADMIN.to_string());
    }
    let password_hash = state
        .passwords
        .hash(password.expose().to_string())
        .await
        .map_err(ApiError::internal)?;
    let user = UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.as_str().to_string(),
        name: name.as_str().to_string(),
        password_hash,
        roles: roles.join(","),
        created_at_ms: now_ms(),
    };
    match store::insert(&state.db, &state.outbox, &user).await {
        Ok(()) => {}
        Err(emporium_events::EventsError::Db(e)) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(
                "an account with this email already exists",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    }
    tracing::info!(user_id = %user.id, "account created");
    let location = HeaderValue::from_static("/api/users/me");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserView::from(&user)),
    ))
}

/// Exchange email and password for an access token.
#[utoipa::path(post, path = "/api/users/login", tag = "users",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = Problem),
    ))]
async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let invalid = || ApiError::unauthorized("invalid email or password");
    let user = match Email::parse(&req.email) {
        Ok(email) => store::by_email(&state.db, email.as_str())
            .await
            .map_err(ApiError::internal)?,
        Err(_) => None,
    };
    if req.password.len() > MAX_LOGIN_PASSWORD_BYTES {
        return Err(invalid());
    }
    let matched = state
        .passwords
        .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| matched) else {
        tracing::info!("login refused");
        return Err(invalid());
    };
    let ttl = state.settings.access_token_ttl_secs;
    let now = (now_ms() / 1000) as u64;
    let token = state
        .keys
        .sign(&keys::claims(&user.id, user.roles(), now, ttl))
        .map_err(ApiError::internal)?;
    tracing::info!(user_id = %user.id, "signed in");
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: ttl,
    }))
}

/// The signed-in user's account.
#[utoipa::path(get, path = "/api/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 401, description = "Not signed in", body = Problem),
    ))]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<UserView>, ApiError> {
    let user = store::by_id(&state.db, &caller.user_id.to_string())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("the account no longer exists"))?;
    Ok(Json(UserView::from(&user)))
}

/// The public keys access tokens are signed with (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "users",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(state.keys.jwks()),
    )
}
