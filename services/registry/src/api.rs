//! The registry's HTTP handlers.

use std::time::Duration;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use emporium_contracts::registry::{
    BASE, CERTIFICATES, ConfigValue, Heartbeat, Registration, USAGE,
};
use emporium_http::{ApiError, ApiJson, ApiPath, ApiQuery, FieldError};
use emporium_identity::Peer;
use serde::Deserialize;

use crate::issuer::{Issuer, issue};
use crate::state::{Beat, Registry};
use crate::usage::UsageLog;

/// Longest a long poll may hold a request.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Time left before a long poll's deadline to answer in.
const DEADLINE_MARGIN: Duration = Duration::from_millis(500);
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 64 * 1024;

pub fn router(registry: Registry, issuer: Option<Arc<Issuer>>) -> Router {
    let certificates = Router::new()
        .route(CERTIFICATES, axum::routing::post(issue))
        .with_state(issuer);
    let usage = Router::new()
        .route(USAGE, axum::routing::post(crate::usage::exchange))
        .layer(axum::extract::DefaultBodyLimit::max(crate::usage::MAX_BODY))
        .with_state(UsageLog::new(registry.epoch()));
    Router::new()
        .route(&format!("{BASE}/instances"), get(all))
        .route(
            &format!("{BASE}/instances/{{id}}"),
            put(register).delete(deregister),
        )
        .route(
            &format!("{BASE}/instances/{{id}}/heartbeat"),
            put(heartbeat),
        )
        .route(&format!("{BASE}/services/{{name}}"), get(resolve))
        .route(&format!("{BASE}/config"), get(config_list))
        .route(
            &format!("{BASE}/config/{{*key}}"),
            get(config_get).put(config_put).delete(config_delete),
        )
        .with_state(registry)
        .merge(certificates)
        .merge(usage)
}

/// 403 unless `peer` may act for instances of `service` (that service itself,
/// or the operator, or anyone with identity off), logged.
pub(crate) fn must_act_for(peer: &Peer, service: &str, what: &str) -> Result<(), ApiError> {
    if peer.is_one_of(&[service]) {
        return Ok(());
    }
    tracing::warn!(%peer, service, "refused: {what} an instance of another service");
    Err(ApiError::forbidden(format!(
        "{peer} may not {what} an instance of {service}"
    )))
}

/// 403 unless `peer` is the operator (or identity is off).
fn must_be_operator(peer: &Peer) -> Result<(), ApiError> {
    if peer.is_one_of(&[]) {
        return Ok(());
    }
    tracing::warn!(%peer, "refused: config write by someone other than the operator");
    Err(ApiError::forbidden("only the operator may change config"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Watch {
    epoch: Option<String>,
    index: Option<u64>,
    wait_ms: Option<u64>,
    prefix: Option<String>,
}

impl Watch {
    /// `(epoch, index, wait)` when this is a long poll. The wait ends before the
    /// request's own deadline, so a long poll answers "no change" rather than 504.
    fn poll(&self) -> Option<(&str, u64, Duration)> {
        let budget = emporium_http::context::current()
            .map_or(MAX_WAIT, |c| c.remaining().saturating_sub(DEADLINE_MARGIN));
        match (&self.epoch, self.index) {
            (Some(epoch), Some(index)) => Some((
                epoch,
                index,
                Duration::from_millis(self.wait_ms.unwrap_or(30_000))
                    .min(MAX_WAIT)
                    .min(budget),
            )),
            _ => None,
        }
    }
}

pub(crate) fn check_name(field: &str, value: &str) -> Result<(), FieldError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            "1-64 characters of letters, digits, '-', '_' or '.'",
        ))
    }
}

async fn register(
    State(registry): State<Registry>,
    Extension(peer): Extension<Peer>,
    ApiPath(id): ApiPath<String>,
    ApiJson(registration): ApiJson<Registration>,
) -> Result<impl IntoResponse, ApiError> {
    must_act_for(&peer, &registration.service, "register")?;
    if let Some(holder) = registry.service_of(&id) {
        must_act_for(&peer, &holder, "replace")?;
    }
    let mut errors = Vec::new();
    if registration.instance_id != id {
        errors.push(FieldError::new("instance_id", "must match the path"));
    }
    errors.extend(check_name("service", &registration.service).err());
    errors.extend(check_name("instance_id", &registration.instance_id).err());
    if registration
        .address
        .parse::<std::net::SocketAddr>()
        .is_err()
        && !registration.address.contains(':')
    {
        errors.push(FieldError::new("address", "must be host:port"));
    }
    if !(100..=600_000).contains(&registration.ttl_ms) {
        errors.push(FieldError::new("ttl_ms", "must be between 100 and 600000"));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let index = registry.register(registration);
    Ok(Json(serde_json::json!({ "index": index })))
}

async fn heartbeat(
    State(registry): State<Registry>,
    Extension(peer): Extension<Peer>,
    ApiPath(id): ApiPath<String>,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(holder) = registry.service_of(&id) {
        must_act_for(&peer, &holder, "heartbeat for")?;
    }
    match registry.heartbeat(&id, beat.ready) {
        Beat::Ok => Ok(Json(serde_json::json!({ "ok": true }))),
        Beat::Unknown => Err(ApiError::not_found("unknown instance; register again")),
    }
}

async fn deregister(
    State(registry): State<Registry>,
    Extension(peer): Extension<Peer>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if let Some(holder) = registry.service_of(&id) {
        must_act_for(&peer, &holder, "deregister")?;
    }
    if registry.deregister(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("unknown instance"))
    }
}

async fn all(State(registry): State<Registry>) -> impl IntoResponse {
    Json(registry.all())
}

async fn resolve(
    State(registry): State<Registry>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(watch): ApiQuery<Watch>,
) -> Result<impl IntoResponse, ApiError> {
    check_name("name", &name).map_err(|e| ApiError::invalid_query(vec![e]))?;
    let snapshot = match watch.poll() {
        Some((epoch, index, wait)) => {
            registry
                .wait_for(
                    epoch,
                    wait,
                    |r| {
                        let s = r.healthy(&name);
                        (s.index, s)
                    },
                    index,
                )
                .await
        }
        None => registry.healthy(&name),
    };
    Ok(Json(snapshot))
}

fn check_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(vec![FieldError::new(
            "key",
            "1-256 characters of letters, digits, '-', '_', '.' or '/'",
        )]))
    }
}

async fn config_list(
    State(registry): State<Registry>,
    ApiQuery(watch): ApiQuery<Watch>,
) -> Result<impl IntoResponse, ApiError> {
    let prefix = watch.prefix.clone().unwrap_or_default();
    if let Some((epoch, index, wait)) = watch.poll() {
        registry
            .wait_for(epoch, wait, |r| (r.config_index(), ()), index)
            .await;
    }
    let snapshot = registry
        .config_list(&prefix)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(snapshot))
}

async fn config_get(
    State(registry): State<Registry>,
    ApiPath(key): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    check_key(&key)?;
    match registry
        .config_get(&key)
        .await
        .map_err(ApiError::internal)?
    {
        Some(entry) => Ok(Json(entry)),
        None => Err(ApiError::not_found("no such config key")),
    }
}

async fn config_put(
    State(registry): State<Registry>,
    Extension(peer): Extension<Peer>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<ConfigValue>,
) -> Result<impl IntoResponse, ApiError> {
    must_be_operator(&peer)?;
    check_key(&key)?;
    if body.value.len() > MAX_VALUE_LEN {
        return Err(ApiError::validation(vec![FieldError::new(
            "value",
            format!("at most {MAX_VALUE_LEN} bytes"),
        )]));
    }
    let entry = registry
        .config_put(&key, &body.value)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(entry))
}

async fn config_delete(
    State(registry): State<Registry>,
    Extension(peer): Extension<Peer>,
    ApiPath(key): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    must_be_operator(&peer)?;
    check_key(&key)?;
    if registry
        .config_delete(&key)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("no such config key"))
    }
}
