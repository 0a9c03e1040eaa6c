//! The caller's identity as verified by the gateway, and the client's address.
//!
//! The gateway checks the access token and forwards the user id and roles in
//! headers it strips from client requests; services trust those headers because
//! the guard accepts them only from the gateway and the storefront (see
//! [`crate::guard`]).

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use emporium_contracts::headers;
use http::request::Parts;
use uuid::Uuid;

use crate::problem::ApiError;

/// The authenticated user making the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Uuid,
    pub roles: Vec<String>,
    /// The account confirmed its email address.
    pub email_verified: bool,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// 403 unless the caller has `role`.
    pub fn require_role(&self, role: &str) -> Result<(), ApiError> {
        if self.has_role(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!("this needs the {role} role")))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_headers(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("sign in to do this"))
    }
}

impl Caller {
    /// Writes this caller as the identity headers [`Caller::from_headers`] reads
    /// (what the gateway forwards and the storefront sends for a shopper).
    pub fn write_to(&self, map: &mut http::HeaderMap) {
        if let Ok(id) = http::HeaderValue::from_str(&self.user_id.to_string()) {
            map.insert(headers::USER_ID, id);
        }
        if let Ok(roles) = http::HeaderValue::from_str(&self.roles.join(",")) {
            map.insert(headers::USER_ROLES, roles);
        }
        if self.email_verified {
            map.insert(
                headers::USER_EMAIL_VERIFIED,
                http::HeaderValue::from_static("true"),
            );
        } else {
            map.remove(headers::USER_EMAIL_VERIFIED);
        }
    }

    /// The caller the identity headers name, if they name one.
    pub fn from_headers(map: &http::HeaderMap) -> Option<Caller> {
        let user_id = map
            .get(headers::USER_ID)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Uuid::parse_str(v).ok())?;
        let roles = map
            .get(headers::USER_ROLES)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let email_verified = map
            .get(headers::USER_EMAIL_VERIFIED)
            .is_some_and(|v| v.as_bytes() == b"true");
        Some(Caller {
            user_id,
            roles,
            email_verified,
        })
    }
}

/// The end client's address: what the gateway (or the storefront, passing it on)
/// put in `x-client-ip`, else the connection's peer. `None` for a request with
/// neither (in-process calls with no address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let forwarded = parts
            .headers
            .get(headers::CLIENT_IP)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let peer = || crate::guard::peer_addr(&parts.extensions).map(|addr| addr.ip());
        Ok(ClientIp(forwarded.or_else(peer)))
    }
}
