//! Accounts: register, sign in, the account itself, and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use emporium_contracts::auth::ROLE_CUSTOMER;
use emporium_http::{ApiError, ApiJson, Caller, ClientIp, FieldError, Problem};
use emporium_store::{is_unique_violation, now_ms, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use crate::domain::{Email, Name, Password};
use crate::keys;
use crate::sessions::{self, Issued};
use crate::store::{self, UserRow};

/// Longest password input even looked at on login (the policy caps new ones at 128
/// characters); longer input fails like any wrong password, without hashing it.
const MAX_LOGIN_PASSWORD_BYTES: usize = 1024;

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(schema_with = crate::domain::email_schema)]
    pub email: String,
    /// 10 to 128 characters; not a common password, not one character repeated,
    /// not the email.
    #[schema(
        example = "correct horse battery staple",
        min_length = 10,
        max_length = 128
    )]
    pub password: String,
    #[schema(example = "Ada Lovelace", schema_with = emporium_contracts::fields::line_schema::<100>)]
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
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Good once, at `POST /api/users/token`, for a new access token and a new
    /// refresh token; presenting it a second time ends the session.
    pub refresh_token: String,
    /// Seconds until the refresh token expires unused.
    pub refresh_expires_in: u64,
}

impl TokenResponse {
    /// An access token for `user` in the session `issued` belongs to.
    pub(super) fn issue(
        state: &AppState,
        user: &UserRow,
        issued: Issued,
    ) -> Result<Self, ApiError> {
        let ttl = state.settings.access_token_ttl_secs;
        let now = issued.issued_at_ms;
        let access_token = state
            .keys
            .sign(&keys::claims(
                &user.id,
                user.roles(),
                user.email_verified_at_ms.is_some(),
                (now / 1000) as u64,
                ttl,
            ))
            .map_err(ApiError::internal)?;
        Ok(Self {
            access_token,
            token_type: "Bearer".into(),
            expires_in: ttl,
            refresh_token: issued.token,
            refresh_expires_in: u64::try_from((issued.expires_at_ms - now) / 1000).unwrap_or(0),
        })
    }
}

/// An account as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
    /// Whether the account confirmed its address (a link mailed to it was used).
    pub email_verified: bool,
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
            email_verified: u.email_verified_at_ms.is_some(),
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
pub(super) async fn register(
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
        roles: ROLE_CUSTOMER.to_string(),
        created_at_ms: now_ms(),
        admin_grants: 0,
        email_verified_at_ms: None,
    };
    let user = match store::insert(&state.db, &state.outbox, &user).await {
        // Read back: the operator may have granted this email the admin role.
        Ok(()) => store::by_id(&state.db, &user.id)
            .await
            .map_err(ApiError::internal)?
            .unwrap_or(user),
        Err(emporium_events::EventsError::Db(e)) if is_unique_violation(&e) => {
            return Err(ApiError::conflict(
                "an account with this email already exists",
            ));
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    tracing::info!(user_id = %user.id, "account created");
    let location = HeaderValue::from_static("/api/users/me");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserView::from(&user)),
    ))
}

/// Exchange email and password for an access token and a refresh token.
///
/// Failed attempts slow down the email tried and the address trying (see
/// `users.login_throttle`): past a few failures, 429 with `Retry-After` until the
/// delay has passed. Unknown emails get the same answers, in the same time.
#[utoipa::path(post, path = "/api/users/login", tag = "users",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = Problem),
        (status = 429, description = "Too many failed attempts for this email or from this address; see Retry-After", body = Problem),
    ))]
pub(super) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let invalid = || ApiError::unauthorized("invalid email or password");
    // Longer than any password can be: refused before it is counted or hashed
    // (so it cannot fill the throttle's table for free).
    if req.password.len() > MAX_LOGIN_PASSWORD_BYTES {
        return Err(invalid());
    }
    let email = Email::parse(&req.email).ok();
    let account = email.as_ref().map(Email::as_str);
    let started_block = match state
        .throttle
        .attempt(account, ip, now_ms())
        .await
        .map_err(ApiError::internal)?
    {
        Ok(started) => started,
        Err(wait) => return Err(ApiError::too_many_requests(wait.as_secs().max(1))),
    };
    let user = match account {
        Some(email) => store::by_email(&state.db, email)
            .await
            .map_err(ApiError::internal)?,
        None => None,
    };
    let matched = state
        .passwords
        .verify(req.password, user.as_ref().map(|u| u.password_hash.clone()))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| matched) else {
        // The attempt was counted as a failure when it came in.
        if started_block {
            tracing::warn!(client_ip = ?ip, "login refused; further attempts slowed down");
        } else {
            tracing::info!("login refused");
        }
        return Err(invalid());
    };
    if let Err(error) = state.throttle.succeeded(&user.email, ip).await {
        // The password matched: a stale count only delays a later sign-in.
        tracing::warn!(%error, "cannot clear the login throttle after a sign-in");
    }
    let issued = sessions::start(&state.db, &user.id, now_ms(), state.lifetimes())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(user_id = %user.id, session_id = %issued.session_id, "signed in");
    Ok(Json(TokenResponse::issue(&state, &user, issued)?))
}

/// The signed-in user's account.
#[utoipa::path(get, path = "/api/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 401, description = "Not signed in", body = Problem),
    ))]
pub(super) async fn me(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserView>, ApiError> {
    let user = store::by_id(&state.db, &caller.user_id.to_string())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("the account no longer exists"))?;
    Ok(Json(UserView::from(&user)))
}

/// The public keys access tokens are signed with (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "users",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
pub(super) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        )],
        Json(state.keys.jwks()),
    )
}
