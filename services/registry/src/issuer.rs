//! The platform's CA at work: certificates for instances that show their
//! service's join token.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use emporium_config::Secret;
use emporium_contracts::registry::{CertificateGrant, CertificateRequest};
use emporium_http::{ApiError, ApiJson, FieldError};
use emporium_identity::{Ca, Principal, names, token};

/// Signs certificates for instances with a valid join token.
pub struct Issuer {
    ca: Ca,
    secret: Secret<String>,
    lifetime: Duration,
}

impl Issuer {
    pub fn new(ca: Ca, secret: Secret<String>, lifetime: Duration) -> Self {
        Self {
            ca,
            secret,
            lifetime,
        }
    }
}

/// `POST /internal/registry/certificates`: reachable over TLS without a
/// certificate (the caller has none yet); the join token is the credential.
pub async fn issue(
    State(issuer): State<Option<Arc<Issuer>>>,
    ApiJson(request): ApiJson<CertificateRequest>,
) -> Result<Json<CertificateGrant>, ApiError> {
    let issuer = issuer.ok_or_else(|| {
        ApiError::unavailable("this registry issues no certificates: it was started without the CA key or the bootstrap secret")
    })?;
    if !names::valid_service_name(&request.service) {
        return Err(ApiError::validation(vec![FieldError::new(
            "service",
            "1-64 lowercase letters, digits or '-'",
        )]));
    }
    if !token::verify_join_token(issuer.secret.expose(), &request.service, &request.token) {
        tracing::warn!(service = %request.service, "certificate refused: wrong join token");
        return Err(ApiError::forbidden(format!(
            "that is not {}'s join token",
            request.service
        )));
    }
    let key = base64::engine::general_purpose::STANDARD
        .decode(&request.public_key)
        .map_err(|_| {
            ApiError::validation(vec![FieldError::new("public_key", "must be base64 DER")])
        })?;
    let certificate = issuer
        .ca
        .issue_for_spki(&Principal::service(&request.service), &key, issuer.lifetime)
        .map_err(|e| {
            ApiError::validation(vec![FieldError::new(
                "public_key",
                format!("not a usable public key: {e}"),
            )])
        })?;
    tracing::info!(service = %request.service, "certificate issued");
    Ok(Json(CertificateGrant { certificate }))
}
