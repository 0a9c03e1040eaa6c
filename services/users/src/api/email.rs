//! Email links: confirm the address, reset a forgotten password, and the internal
//! route notifications mints each link's token from when it mails it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use emporium_contracts::auth::{LINK_PASSWORD_RESET, LINK_VERIFY_EMAIL, Link, LinkRequest};
use emporium_contracts::events::{EmailVerificationRequested, PasswordResetRequested};
use emporium_http::{ApiError, ApiJson, Caller, FieldError, Problem};
use emporium_store::{now_ms, rfc3339};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::accounts::UserView;
use crate::domain::{Email, Password};
use crate::links;
use crate::opaque::MAX_TOKEN_BYTES;
use crate::sessions;
use crate::store::{self, MailRequest};

/// A link's token, from the mail.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[schema(schema_with = crate::domain::email_schema)]
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirmation {
    /// The token from the reset mail.
    pub token: String,
    /// The new password (the same rules as at registration).
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
}

fn dead_link() -> ApiError {
    ApiError::bad_request(
        "this link is not valid: it was used, replaced by a newer one, or has expired; ask for a new one",
    )
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4)
}

/// Mail the signed-in user a new link to confirm their email address.
#[utoipa::path(post, path = "/api/users/verification", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A mail with a new link is on its way"),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 409, description = "The address is confirmed already", body = Problem),
        (status = 429, description = "A mail was asked for less than a minute ago", body = Problem),
    ))]
pub(super) async fn resend_verification(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    let user = store::by_id(&state.db, &caller.user_id.to_string())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("the account no longer exists"))?;
    if user.email_verified_at_ms.is_some() {
        return Err(ApiError::conflict(
            "this email address is confirmed already",
        ));
    }
    let event = EmailVerificationRequested {
        user_id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
    };
    match store::request_mail(&state.db, &state.outbox, &user.id, false, &event, now_ms())
        .await
        .map_err(ApiError::internal)?
    {
        MailRequest::Queued => Ok(StatusCode::ACCEPTED),
        MailRequest::TooSoon => Err(ApiError::too_many_requests(
            (store::MAIL_INTERVAL_MS / 1000) as u64,
        )),
    }
}

/// Confirm an email address with the link's token.
#[utoipa::path(post, path = "/api/users/verify", tag = "users",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Confirmed; access tokens issued from now on say so", body = UserView),
        (status = 400, description = "The link was used, replaced or has expired", body = Problem),
    ))]
pub(super) async fn verify(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> Result<Json<UserView>, ApiError> {
    if req.token.len() > MAX_TOKEN_BYTES {
        return Err(dead_link());
    }
    let now = now_ms();
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    let user_id = links::consume(&mut tx, &req.token, LINK_VERIFY_EMAIL, now)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(dead_link)?;
    store::mark_verified(&mut tx, &user_id, now)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await.map_err(ApiError::internal)?;
    let user = store::by_id(&state.db, &user_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(dead_link)?;
    tracing::info!(%user_id, "email address confirmed");
    Ok(Json(UserView::from(&user)))
}

/// Ask for a password reset mail.
///
/// The answer is the same whether an account has this email or not, and at most
/// one mail a minute goes to an account.
#[utoipa::path(post, path = "/api/users/password-reset", tag = "users",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "If an account has this email, a reset link is on its way"),
        (status = 422, description = "Not an email address", body = Problem),
    ))]
pub(super) async fn request_reset(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let email = Email::parse(&req.email)
        .map_err(|m| ApiError::validation(vec![FieldError::new("email", m)]))?;
    let Some(user) = store::by_email(&state.db, email.as_str())
        .await
        .map_err(ApiError::internal)?
    else {
        tracing::info!("password reset asked for an unknown email");
        return Ok(StatusCode::ACCEPTED);
    };
    let event = PasswordResetRequested {
        user_id: user.id.clone(),
        email: user.email.clone(),
        name: user.name.clone(),
    };
    let queued = store::request_mail(&state.db, &state.outbox, &user.id, true, &event, now_ms())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(user_id = %user.id, sent = (queued == MailRequest::Queued), "password reset asked for");
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the reset link's token; every session of the account
/// ends.
#[utoipa::path(post, path = "/api/users/password-reset/confirm", tag = "users",
    request_body = ResetConfirmation,
    responses(
        (status = 204, description = "The password is changed; sign in with it"),
        (status = 400, description = "The link was used, replaced or has expired", body = Problem),
        (status = 422, description = "The new password breaks a rule", body = Problem),
    ))]
pub(super) async fn confirm_reset(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ResetConfirmation>,
) -> Result<StatusCode, ApiError> {
    if req.token.len() > MAX_TOKEN_BYTES {
        return Err(dead_link());
    }
    // Checked before the (slow) hashing; used below, in one transaction with the
    // change, so a concurrent use of the same link loses there.
    let user_id = links::peek(&state.db, &req.token, LINK_PASSWORD_RESET, now_ms())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(dead_link)?;
    let user = store::by_id(&state.db, &user_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(dead_link)?;
    let email = Email::parse(&user.email).ok();
    let password = Password::parse(&req.password, email.as_ref())
        .map_err(|m| ApiError::validation(vec![FieldError::new("password", m)]))?;
    let hash = state
        .passwords
        .hash(password.expose().to_string())
        .await
        .map_err(ApiError::internal)?;
    let now = now_ms();
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    links::consume(&mut tx, &req.token, LINK_PASSWORD_RESET, now)
        .await
        .map_err(ApiError::internal)?
        .filter(|used_for| *used_for == user_id)
        .ok_or_else(dead_link)?;
    store::set_password(&mut tx, &user_id, &hash)
        .await
        .map_err(ApiError::internal)?;
    // The link proved the mailbox too.
    store::mark_verified(&mut tx, &user_id, now)
        .await
        .map_err(ApiError::internal)?;
    let ended = sessions::revoke_all_in(&mut tx, &user_id, now, sessions::REVOKED_PASSWORD_RESET)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await.map_err(ApiError::internal)?;
    if let Err(error) = state.throttle.succeeded(&user.email, None).await {
        // The password is already reset; a stale count only delays a sign-in.
        tracing::warn!(%error, "cannot clear the login throttle after a password reset");
    }
    tracing::info!(%user_id, sessions_ended = ended, "password reset");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /internal/users/links` (notifications): a token for a link it is about to
/// mail. 409 for a verification link of an address confirmed since it was asked
/// for, 410 when the account is gone.
pub(super) async fn mint_link(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LinkRequest>,
) -> Result<(StatusCode, Json<Link>), ApiError> {
    let ttl_ms = match req.purpose.as_str() {
        LINK_VERIFY_EMAIL => secs_to_ms(state.settings.verification_link_ttl_secs),
        LINK_PASSWORD_RESET => secs_to_ms(state.settings.reset_link_ttl_secs),
        _ => {
            return Err(ApiError::validation(vec![FieldError::new(
                "purpose",
                "is not a kind of link",
            )]));
        }
    };
    let user = store::by_id(&state.db, &req.user_id)
        .await
        .map_err(ApiError::internal)?
        // 410, not 404: notifications drops the mail for this answer only, never
        // for a route some other instance lacks.
        .ok_or_else(|| ApiError::new(StatusCode::GONE, "account_gone", "no such account"))?;
    if req.purpose == LINK_VERIFY_EMAIL && user.email_verified_at_ms.is_some() {
        return Err(ApiError::conflict(
            "this email address is confirmed already",
        ));
    }
    let (token, expires_at_ms) = links::mint(&state.db, &user.id, &req.purpose, now_ms(), ttl_ms)
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(Link {
            token,
            expires_at: rfc3339(expires_at_ms),
        }),
    ))
}
