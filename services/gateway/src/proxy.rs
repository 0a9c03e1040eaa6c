//! Forwarding a request to the service that owns it.

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use emporium_contracts::headers;
use emporium_http::middleware::label_route;
use emporium_http::{ApiError, names};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::auth::{self, Verified};
use crate::routes::Route;
use crate::{GatewayState, Shared};

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Longest request target (path and query) the gateway forwards; a longer one
/// gets 414 here (nginx's default is 8 KiB). The gateway calls the services
/// over HTTP/2, whose servers take 16 KiB of headers (hyper's default), the path
/// among them: this leaves the rest 4 KiB, and a request whose headers take more
/// gets 431 from the service's HTTP/2 layer.
const MAX_TARGET: usize = 12 * 1024;

/// Exchanging a refresh token, and signing out with one.
const REFRESH: &str = "/api/users/token";
const SIGN_OUT: &str = "/api/users/logout";

/// Rate limiting per client address, the chassis's admission rule for every
/// gateway route (health probes are not limited): the refusal, if any.
pub fn rate_limit(gw: &GatewayState, req: &Request) -> Option<Response> {
    let limiter = gw.limits.ip.as_ref()?;
    let retry_after = limiter.check(gw.proxies.client_ip(req)?).err()?;
    Some(ApiError::too_many_requests(retry_after).into_response())
}

/// `/api/...`: route, authenticate, forward. Metrics see the area
/// (`/api/orders`) as the route: one of the route table's few entries.
pub async fn proxy(State(gw): State<Shared>, req: Request) -> Response {
    let routed = gw.table.route(req.method(), req.uri().path());
    if let Route::Service { label, .. } = routed {
        label_route(label.clone());
    }
    route(&gw, routed, req).await.into_response()
}

async fn route(gw: &Shared, routed: Route<'_>, req: Request) -> Result<Response, ApiError> {
    let (service, public) = match routed {
        Route::Service {
            service, public, ..
        } => (service, public),
        Route::NotFound => return Err(ApiError::not_found("no such resource")),
        Route::Malformed => return Err(ApiError::bad_request("malformed path")),
    };
    // Refused at the edge under overload before anything is spent on it, the
    // token's signature included (a request refused here gets 503 whether or
    // not it would have been authorized).
    if let Some(brownout) = &gw.brownout
        && !brownout.admits(req.method(), req.uri().path())
    {
        return Err(
            ApiError::unavailable("the shop is busy finishing orders; try again shortly")
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
                .with_header(names::SHED, HeaderValue::from_static("1"))
                .quiet(),
        );
    }
    // Where a refresh token is the credential, an access token sent along (a client
    // that adds its last one, expired, to every call) is ignored, not refused:
    // else that client could never refresh.
    let bearer = match req.uri().path() {
        REFRESH | SIGN_OUT if req.method() == Method::POST => None,
        _ => req.headers().get(header::AUTHORIZATION),
    };
    let verified = match bearer {
        Some(value) => {
            let token = value
                .to_str()
                .ok()
                .and_then(auth::bearer)
                .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))?;
            Some(gw.verifier.verify(token).await?)
        }
        None if public => None,
        None => return Err(ApiError::unauthorized("sign in to do this")),
    };
    limit_user(gw, verified.as_ref())?;
    let Some(brownout) = gw
        .brownout
        .as_ref()
        .filter(|b| b.protects(req.method(), req.uri().path()))
    else {
        return forward(gw, service, req, verified.as_ref()).await;
    };
    let answered = forward(gw, service, req, verified.as_ref()).await;
    // Only answers of the service count as answered or shed: the gateway's own
    // failures (no instance, an open circuit, a body too large, a timeout, its
    // bulkhead full) are not the service's shedding, though the last two may
    // come with its load.
    if let Ok(response) = &answered {
        brownout.answered(response.status(), response.headers());
    }
    answered
}

/// 429 when the signed-in user is over their own rate.
fn limit_user(gw: &Shared, verified: Option<&Verified>) -> Result<(), ApiError> {
    match (&gw.limits.user, verified) {
        (Some(limiter), Some(v)) => limiter
            .check(v.user_id)
            .map_err(ApiError::too_many_requests),
        _ => Ok(()),
    }
}

/// Every path outside `/api`: the storefront's pages. A session cookie is verified
/// as a bearer token would be, and the identity it proves is forwarded; one that
/// fails verification (expired) is forwarded without an identity, and the
/// storefront treats the visitor as signed out. When tokens cannot be checked at
/// all (users' keys unreachable), the page says the shop is unavailable rather
/// than signing everyone out. A browser that cannot reach the storefront gets an
/// HTML page, not JSON.
pub async fn storefront(State(gw): State<Shared>, req: Request) -> Response {
    if !crate::routes::is_page(req.uri().path()) {
        return ApiError::not_found("no such resource").into_response();
    }
    let request_id = || emporium_http::context::with(|c| c.request_id.to_string());
    let verified = match session_token(req.headers()) {
        Some(token) => match gw.verifier.verify(&token).await {
            Ok(verified) => Some(verified),
            Err(e) if e.status() == http::StatusCode::UNAUTHORIZED => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot verify a session");
                return crate::pages::shop_unavailable(e.status(), request_id().as_deref());
            }
        },
        None => None,
    };
    if let Err(e) = limit_user(&gw, verified.as_ref()) {
        return e.into_response();
    }
    static PAGES: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("/storefront"));
    label_route(PAGES.clone());
    match forward(&gw, crate::STOREFRONT, req, verified.as_ref()).await {
        Ok(response) => response,
        Err(e) if e.status().is_server_error() => {
            tracing::warn!(error = %e, "the storefront cannot be reached");
            crate::pages::shop_unavailable(e.status(), request_id().as_deref())
        }
        // The gateway's own refusals (a body too large, a malformed request).
        Err(e) => e.into_response(),
    }
}

/// The storefront's session cookie, if the request carries one.
fn session_token(h: &HeaderMap) -> Option<String> {
    emporium_http::cookies::cookie(h, headers::SESSION_COOKIE).filter(|v| !v.is_empty())
}

/// `/.well-known/jwks.json`: users' public keys, for anyone.
pub async fn jwks(State(gw): State<Shared>, req: Request) -> Result<Response, ApiError> {
    forward(&gw, crate::USERS, req, None).await
}

async fn forward(
    gw: &Shared,
    service: &str,
    req: Request,
    verified: Option<&Verified>,
) -> Result<Response, ApiError> {
    if req.uri().path_and_query().map_or(0, |p| p.as_str().len()) > MAX_TARGET {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the path and query are longer than {MAX_TARGET} bytes"),
        ));
    }
    let peer = crate::forwarded::peer(&req);
    let client_ip = gw.proxies.client_ip(&req);
    let tls = crate::edge::over_tls(&req);
    let (mut parts, body) = req.into_parts();
    // An HTTP/2 client names the host in the URI, not in a header.
    if !parts.headers.contains_key(header::HOST)
        && let Some(host) = parts
            .uri
            .authority()
            .map(|a| HeaderValue::from_str(a.as_str()))
        && let Ok(host) = host
    {
        parts.headers.insert(header::HOST, host);
    }
    // X-Forwarded-For/-Host/-Proto: kept and extended behind a trusted proxy,
    // replaced from anyone else (the storefront checks form origins against the
    // host, so a client must not pick it for a victim's requests either way).
    gw.proxies.rewrite(&mut parts.headers, peer, tls);
    if service != crate::STOREFRONT {
        // The session cookie is the storefront's: no API service needs the token.
        strip_session_cookie(&mut parts.headers);
    }
    let bytes = read_body(body, gw.body_limit).await?;
    let routed_keyed = gw.table.keyed(&parts.method, parts.uri.path());
    // The client's method and URI (the transport takes its path and query) go
    // upstream as they are, shared rather than copied; the headers are rewritten.
    let mut upstream = http::Request::new(bytes);
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = parts
        .uri
        .path_and_query()
        .cloned()
        .map_or_else(|| Uri::from_static("/"), Uri::from);
    *upstream.headers_mut() =
        forwarded_headers(std::mem::take(&mut parts.headers), verified, client_ip);
    // A shopper's key makes the request safe to send again only where the
    // service behind the route dedupes by it, and only if the key is still on
    // what goes upstream (a `Connection:` header may have named it hop-by-hop).
    if routed_keyed && upstream.headers().contains_key(names::IDEMPOTENCY_KEY) {
        upstream
            .extensions_mut()
            .insert(emporium_client::resilience::retry::Keyed);
    }
    let client = gw.client(service);
    let mut response = client.send(upstream).await.map_err(ApiError::from)?;
    strip_hop_by_hop(response.headers_mut());
    Ok(response.map(Body::new))
}

/// Removes the storefront's session and refresh cookies from the `Cookie` headers,
/// keeping the others.
fn strip_session_cookie(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            !pair.is_empty() && name != headers::SESSION_COOKIE && name != headers::REFRESH_COOKIE
        })
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(_) => Err(ApiError::bad_request("the request body could not be read")),
    }
}

/// The client's headers minus hop-by-hop and identity headers, plus the verified
/// identity and the client's address. `Authorization` stays at the gateway:
/// services trust the identity headers, and tokens do not spread into their logs.
fn forwarded_headers(
    mut out: HeaderMap,
    verified: Option<&Verified>,
    client_ip: Option<std::net::IpAddr>,
) -> HeaderMap {
    strip_hop_by_hop(&mut out);
    out.remove(header::HOST);
    out.remove(header::AUTHORIZATION);
    // The caller's trace context stops here; the client sends the gateway's own.
    out.remove(names::TRACEPARENT);
    out.remove(names::TRACESTATE);
    for name in &names::IDENTITY {
        out.remove(name);
    }
    if let Some(v) = verified {
        v.write_to(&mut out);
    }
    if let Some(ip) = client_ip
        && let Ok(ip) = HeaderValue::try_from(ip.to_string())
    {
        out.insert(names::CLIENT_IP, ip);
    }
    out
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_from_clients_are_replaced() {
        let mut h = HeaderMap::new();
        h.insert(
            headers::USER_ID,
            HeaderValue::from_static("00000000-0000-0000-0000-000000000001"),
        );
        h.insert(headers::USER_ROLES, HeaderValue::from_static("admin"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        h.insert(header::CONNECTION, HeaderValue::from_static("x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        h.insert(headers::CLIENT_IP, HeaderValue::from_static("6.6.6.6"));
        h.insert(
            headers::USER_EMAIL_VERIFIED,
            HeaderValue::from_static("true"),
        );
        let out = forwarded_headers(h.clone(), None, None);
        assert!(out.get(headers::USER_ID).is_none());
        assert!(
            out.get(headers::CLIENT_IP).is_none(),
            "a client names its own address"
        );
        assert!(out.get(headers::USER_ROLES).is_none());
        assert!(out.get(headers::USER_EMAIL_VERIFIED).is_none());
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert!(out.get("x-secret-hop").is_none());
        assert_eq!(out["accept"], "application/json");

        let v = Verified {
            user_id: uuid::Uuid::nil(),
            roles: vec!["customer".into()],
            email_verified: true,
        };
        let out = forwarded_headers(h, Some(&v), "203.0.113.9".parse().ok());
        assert_eq!(out[headers::USER_ID], uuid::Uuid::nil().to_string());
        assert_eq!(out[headers::CLIENT_IP], "203.0.113.9");
        assert_eq!(out[headers::USER_EMAIL_VERIFIED], "true");
        assert_eq!(out[headers::USER_ROLES], "customer");
    }

    #[test]
    fn the_session_cookie_stays_out_of_api_calls() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; emporium_session=tok.en; b=2; emporium_refresh=r"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("emporium_session=x"),
        );
        strip_session_cookie(&mut h);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
        let mut only = HeaderMap::new();
        only.insert(
            header::COOKIE,
            HeaderValue::from_static("emporium_session=x"),
        );
        strip_session_cookie(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }
}
