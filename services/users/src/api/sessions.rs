//! Sessions: refresh, sign out, and the signed-in user's list of sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use emporium_http::{ApiError, ApiJson, ApiPath, Caller, Problem};
use emporium_store::{now_ms, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::accounts::TokenResponse;
use crate::opaque::MAX_TOKEN_BYTES;
use crate::sessions::{self, Refresh, SessionRow};
use crate::store;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A session as its owner sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    /// RFC 3339: when it was signed in.
    pub created_at: String,
    /// RFC 3339: its last refresh.
    pub last_used_at: String,
    /// RFC 3339: when it ends, however often refreshed.
    pub expires_at: String,
}

impl From<SessionRow> for SessionView {
    fn from(s: SessionRow) -> Self {
        Self {
            id: s.id,
            created_at: rfc3339(s.created_at_ms),
            last_used_at: rfc3339(s.last_used_at_ms),
            expires_at: rfc3339(s.expires_at_ms),
        }
    }
}

/// Sessions ended, as counted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Exchange a refresh token for a new access token and a new refresh token.
///
/// Each refresh token is good once. A used one presented again ends its session
/// (someone kept a copy): 401, and the session's newest refresh token stops
/// working too.
#[utoipa::path(post, path = "/api/users/token", tag = "users",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Refreshed", body = TokenResponse),
        (status = 401, description = "Unknown, expired, used or revoked refresh token", body = Problem),
    ))]
pub(super) async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let invalid = || ApiError::unauthorized("the refresh token is not valid; sign in again");
    if req.refresh_token.len() > MAX_TOKEN_BYTES {
        return Err(invalid());
    }
    let refreshed = sessions::rotate(&state.db, &req.refresh_token, now_ms(), state.lifetimes())
        .await
        .map_err(ApiError::internal)?;
    match refreshed {
        Refresh::Rotated { user_id, issued } => {
            let user = store::by_id(&state.db, &user_id)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(invalid)?;
            Ok(Json(TokenResponse::issue(&state, &user, issued)?))
        }
        Refresh::Invalid => Err(invalid()),
        Refresh::Reused {
            session_id,
            user_id,
        } => {
            tracing::warn!(%user_id, %session_id, "a used refresh token came back; the session is revoked");
            Err(ApiError::unauthorized(
                "this refresh token was already used, so its session has been ended; sign in again",
            ))
        }
    }
}

/// Sign out: end the session the refresh token belongs to.
///
/// The access tokens already issued in it stay valid until they expire (minutes);
/// no new ones are issued. Unknown tokens get the same answer.
#[utoipa::path(post, path = "/api/users/logout", tag = "users",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 400, description = "Malformed JSON", body = Problem),
    ))]
pub(super) async fn logout(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    if req.refresh_token.len() <= MAX_TOKEN_BYTES
        && let Some((session_id, user_id)) =
            sessions::sign_out(&state.db, &req.refresh_token, now_ms())
                .await
                .map_err(ApiError::internal)?
    {
        tracing::info!(%user_id, %session_id, "signed out");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's sessions that are still going, newest first.
#[utoipa::path(get, path = "/api/users/me/sessions", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions", body = [SessionView]),
        (status = 401, description = "Not signed in", body = Problem),
    ))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let rows = sessions::active(&state.db, &caller.user_id.to_string(), now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(rows.into_iter().map(SessionView::from).collect()))
}

/// Sign out everywhere: end every session of the signed-in user.
#[utoipa::path(delete, path = "/api/users/me/sessions", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions ended", body = Revoked),
        (status = 401, description = "Not signed in", body = Problem),
    ))]
pub(super) async fn revoke_all(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Revoked>, ApiError> {
    let user_id = caller.user_id.to_string();
    let revoked = sessions::revoke_all(&state.db, &user_id, now_ms(), sessions::REVOKED_BY_OWNER)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(%user_id, revoked, "signed out everywhere");
    Ok(Json(Revoked { revoked }))
}

/// End one of the signed-in user's sessions.
#[utoipa::path(delete, path = "/api/users/me/sessions/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The session")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 404, description = "No such session of yours that is still going", body = Problem),
    ))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<uuid::Uuid>,
) -> Result<StatusCode, ApiError> {
    let user_id = caller.user_id.to_string();
    let id = id.to_string();
    let ended = sessions::revoke(
        &state.db,
        &user_id,
        &id,
        now_ms(),
        sessions::REVOKED_BY_OWNER,
    )
    .await
    .map_err(ApiError::internal)?;
    if !ended {
        return Err(ApiError::not_found("no such session"));
    }
    tracing::info!(%user_id, session_id = %id, "session ended by its owner");
    Ok(StatusCode::NO_CONTENT)
}
