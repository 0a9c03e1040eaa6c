//! The operator's routes (`emporium admin`, `emporium keys`): admin grants and
//! signing-key rotation. Only the operator's certificate reaches them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use emporium_http::{ApiError, ApiPath, FieldError};
use emporium_store::{now_ms, rfc3339};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::domain::Email;
use crate::store::{self, GrantRow};

/// An admin grant.
#[derive(Debug, Serialize, Deserialize)]
pub struct Grant {
    pub email: String,
    pub granted_at: String,
    /// Whether an account has this email yet (else the grant waits for it).
    pub account: bool,
}

impl From<GrantRow> for Grant {
    fn from(g: GrantRow) -> Self {
        Self {
            email: g.email,
            granted_at: rfc3339(g.granted_at_ms),
            account: g.accounts > 0,
        }
    }
}

fn email(raw: &str) -> Result<Email, ApiError> {
    Email::parse(raw).map_err(|m| ApiError::validation(vec![FieldError::new("email", m)]))
}

/// `GET /internal/users/admins`
pub(super) async fn admins(State(state): State<AppState>) -> Result<Json<Vec<Grant>>, ApiError> {
    let rows = store::admins(&state.db).await.map_err(ApiError::internal)?;
    Ok(Json(rows.into_iter().map(Grant::from).collect()))
}

/// `PUT /internal/users/admins/{email}`: 201 when granted, 200 when it was.
pub(super) async fn grant(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    let email = email(&raw)?;
    let new = store::grant_admin(&state.db, email.as_str(), now_ms())
        .await
        .map_err(ApiError::internal)?;
    let grant = store::admins(&state.db)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find(|g| g.email == email.as_str())
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the grant just made is gone")))?;
    if new {
        tracing::info!(account = grant.accounts > 0, "admin role granted");
    }
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(grant.into())))
}

/// `DELETE /internal/users/admins/{email}`: the role goes with the account's next
/// access token (those in hand keep it until they expire, minutes).
pub(super) async fn revoke(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let email = email(&raw)?;
    if !store::revoke_admin(&state.db, email.as_str())
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("this email has no admin grant"));
    }
    tracing::info!("admin role revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /internal/users/verified/{email}`: the operator vouches for the address
/// (support confirmed it another way; a load test's shoppers). 204, or 404 when no
/// account has it.
pub(super) async fn vouch(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let email = email(&raw)?;
    let user = store::by_email(&state.db, email.as_str())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no account has this email"))?;
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    store::mark_verified(&mut tx, &user.id, now_ms())
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await.map_err(ApiError::internal)?;
    tracing::info!(user_id = %user.id, "email address confirmed by the operator");
    Ok(StatusCode::NO_CONTENT)
}

/// A signing key as the operator sees it.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyView {
    pub kid: String,
    pub created_at: String,
    /// Whether new tokens are signed with it.
    pub signing: bool,
    /// When it starts signing, if it was rotated in (published before then).
    pub activates_at: Option<String>,
    /// When it stopped signing.
    pub retired_at: Option<String>,
    /// When it leaves the JWKS (every token it signed has expired by then).
    pub withdrawn_at: Option<String>,
}

/// `GET /internal/users/keys`: the published keys, the signing one first.
pub(super) async fn keys(State(state): State<AppState>) -> Json<Vec<KeyView>> {
    let keys = &state.keys;
    let signing = keys.signing_kid();
    Json(
        keys.published()
            .into_iter()
            .map(|k| KeyView {
                signing: k.kid == signing,
                activates_at: k.activates_at_ms.map(rfc3339),
                withdrawn_at: keys.withdrawn_at(&k).map(rfc3339),
                retired_at: k.retired_at_ms.map(rfc3339),
                created_at: rfc3339(k.created_at_ms),
                kid: k.kid,
            })
            .collect(),
    )
}

/// `POST /internal/users/keys`: a new signing key; the others retire.
pub(super) async fn rotate(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Vec<KeyView>>), ApiError> {
    state
        .keys
        .rotate(&state.db, now_ms())
        .await
        .map_err(ApiError::internal)?;
    Ok((StatusCode::CREATED, keys(State(state)).await))
}
