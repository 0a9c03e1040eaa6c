//! Who is browsing, and the protections every page gets.
//!
//! - The session is the access token users issued at sign-in, in an HttpOnly,
//!   SameSite=Lax cookie (`Secure` over TLS) that page scripts cannot read, beside
//!   the session's refresh token in another. The gateway verifies the access token
//!   on every page request and forwards the verified identity in the headers
//!   services trust. When it has expired (minutes), [`refresh`] exchanges the
//!   refresh token for a new pair before the page is made; a refresh token users
//!   refuse (signed out elsewhere, reused, expired) clears the cookies.
//! - CSRF: a random token in its own cookie, which every form repeats in a hidden
//!   field (the double-submit pattern: another site can neither read nor set the
//!   cookie); every `POST` must carry the same value, and an `Origin` that is not
//!   this site is refused too. Stateless, so every instance and every restart
//!   accepts the same tokens.
//! - Security headers on every answer: a strict Content-Security-Policy (no inline
//!   script or style), `nosniff`, a referrer policy, and no framing.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use cookie::{Cookie, SameSite};
use emporium_contracts::auth::AccessClaims;
use emporium_contracts::headers;
use emporium_http::Caller;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, header};
use http_body_util::{BodyExt, Limited};

use crate::backend::{self, Token};
use crate::error::PageError;
use crate::pages::App;

/// The cookie holding the CSRF token.
pub const CSRF_COOKIE: &str = "emporium_csrf";
/// The form field that repeats it.
pub const CSRF_FIELD: &str = "csrf";
/// The refresh token [`refresh`] was just given for this request: the cookie the
/// request came with is used up.
#[derive(Debug, Clone)]
struct Renewed(String);

/// Set on a request whose refresh could not be tried (users unreachable): its
/// cookies are kept for when it can.
#[derive(Debug, Clone, Copy)]
struct RefreshUnavailable;

/// The cookie holding the shopper's display name (shown in the header only).
const NAME_COOKIE: &str = "emporium_name";
/// Largest form body read to find the CSRF field.
pub const FORM_LIMIT: usize = 64 * 1024;

/// The Content-Security-Policy of every page: our own scripts, styles and images
/// only, nothing inline, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The CSRF token of this request, found or minted by [`csrf`].
#[derive(Debug, Clone)]
pub struct Csrf(pub String);

/// Whether this request's cookies get `Secure`, decided by [`csrf`].
#[derive(Debug, Clone, Copy)]
struct SecureCookies(bool);

/// The person browsing: signed in or not, and what every page needs to know.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub user: Option<Caller>,
    /// Their display name, when signed in.
    pub name: String,
    pub csrf: String,
    /// A session cookie came with the request but no verified identity: it expired.
    pub expired: bool,
    /// The request came over TLS (cookies get `Secure`).
    pub secure: bool,
    /// Path and query of this page, to come back to after signing in.
    pub here: String,
    /// The session's refresh token, when the browser holds one.
    pub refresh_token: Option<String>,
    /// The shopper's address as the gateway saw it.
    pub client_ip: Option<String>,
}

impl Visitor {
    pub fn is_admin(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|u| u.has_role(emporium_contracts::auth::ROLE_ADMIN))
    }

    /// The signed-in shopper, or a redirect to sign in and come back to `back`.
    pub fn require(&self, back: &str) -> Result<&Caller, PageError> {
        self.user
            .as_ref()
            .ok_or_else(|| PageError::SignIn(back.to_string()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let user = Caller::from_headers(&parts.headers);
        let has_session = cookie(&parts.headers, headers::SESSION_COOKIE).is_some();
        let name = cookie(&parts.headers, NAME_COOKIE).unwrap_or_default();
        let csrf = parts
            .extensions
            .get::<Csrf>()
            .map(|c| c.0.clone())
            .unwrap_or_default();
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        Ok(Visitor {
            expired: has_session && user.is_none(),
            secure: parts
                .extensions
                .get::<SecureCookies>()
                .map_or_else(|| is_tls(&parts.headers), |s| s.0),
            user,
            name,
            csrf,
            here,
            refresh_token: parts
                .extensions
                .get::<Renewed>()
                .map(|r| r.0.clone())
                .or_else(|| cookie(&parts.headers, headers::REFRESH_COOKIE))
                .filter(|t| !t.is_empty()),
            client_ip: parts
                .headers
                .get(headers::CLIENT_IP)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
    }
}

fn is_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

pub use emporium_http::cookies::cookie;

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, path `/`, `Secure` when asked;
/// `max_age` in seconds, 0 to delete.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let c = Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age))
        .build();
    HeaderValue::from_str(&c.encoded().to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The session's cookies: the access token, and the refresh token when users gave one.
pub fn session_cookies(token: &Token, secure: bool) -> Vec<HeaderValue> {
    let age = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX);
    let mut cookies = vec![set_cookie(
        headers::SESSION_COOKIE,
        &token.access_token,
        age(token.expires_in),
        secure,
    )];
    if !token.refresh_token.is_empty() {
        cookies.push(set_cookie(
            headers::REFRESH_COOKIE,
            &token.refresh_token,
            age(token.refresh_expires_in),
            secure,
        ));
    }
    cookies
}

/// The cookies a sign-in sets: the session and the display name (kept as long
/// as the session can be refreshed).
pub fn signed_in(token: &Token, name: &str, secure: bool) -> Vec<HeaderValue> {
    let mut cookies = session_cookies(token, secure);
    let age = token.refresh_expires_in.max(token.expires_in);
    cookies.push(set_cookie(
        NAME_COOKIE,
        name,
        i64::try_from(age).unwrap_or(i64::MAX),
        secure,
    ));
    cookies
}

/// The cookies that sign out.
pub fn signed_out(secure: bool) -> [HeaderValue; 3] {
    [
        set_cookie(headers::SESSION_COOKIE, "", 0, secure),
        set_cookie(headers::REFRESH_COOKIE, "", 0, secure),
        set_cookie(NAME_COOKIE, "", 0, secure),
    ]
}

/// Who a token users just issued names. Read, not verified: it came straight from
/// users over the platform's own call; the gateway verifies it on every later page.
pub fn caller_of(token: &str) -> Option<Caller> {
    let payload = token.split('.').nth(1)?;
    let claims: AccessClaims =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(Caller {
        user_id: uuid::Uuid::parse_str(&claims.sub).ok()?,
        roles: claims.roles,
        email_verified: claims.email_verified,
    })
}

/// A new access token (and refresh token) for the session of `refresh_token`.
pub async fn renew(
    app: &App,
    refresh_token: &str,
    client_ip: Option<&str>,
) -> Result<Token, emporium_client::ClientError> {
    backend::from_client(&app.backend.users, client_ip)
        .send_json(
            Method::POST,
            "/api/users/token",
            &backend::Refresh { refresh_token },
        )
        .await
}

/// Middleware over the pages (not the assets): a visitor whose access token has
/// expired but who holds a refresh token gets a new pair from users, and the page
/// is made for them signed in, with the new cookies on the answer. A refresh token
/// users refuse leaves the visitor signed out, and [`csrf`] clears the cookies;
/// when users cannot be reached the page is made signed out and the cookies stay.
pub async fn refresh(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let asset = path.starts_with("/assets/") || path == "/favicon.ico";
    let refresh_token = cookie(req.headers(), headers::REFRESH_COOKIE).filter(|t| !t.is_empty());
    let (Some(refresh_token), false, None) =
        (refresh_token, asset, Caller::from_headers(req.headers()))
    else {
        return next.run(req).await;
    };
    let ip = req
        .headers()
        .get(headers::CLIENT_IP)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let token = match renew(&app, &refresh_token, ip.as_deref()).await {
        Ok(token) => token,
        Err(e) if e.status() == Some(http::StatusCode::UNAUTHORIZED) => {
            return next.run(req).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot refresh a session; the page is made signed out");
            req.extensions_mut().insert(RefreshUnavailable);
            return next.run(req).await;
        }
    };
    let Some(caller) = caller_of(&token.access_token) else {
        tracing::warn!("users issued an unreadable token");
        return next.run(req).await;
    };
    caller.write_to(req.headers_mut());
    let secure = app.settings.secure_cookies || is_tls(req.headers());
    let name = cookie(req.headers(), NAME_COOKIE).unwrap_or_default();
    req.extensions_mut()
        .insert(Renewed(token.refresh_token.clone()));
    let mut response = next.run(req).await;
    // A page that set the session itself (signed in, out, or renewed it again)
    // has the last word.
    let prefix = format!("{}=", headers::REFRESH_COOKIE);
    let decided = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.as_bytes().starts_with(prefix.as_bytes()));
    if !decided {
        // The name lives as long as the session it belongs to.
        for c in signed_in(&token, &name, secure) {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    response
}

/// A fresh CSRF token: 244 random bits.
fn mint() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Equal in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Middleware over the storefront's routes (not its 404 fallback): the CSRF check
/// of every `POST` (which must be a form), and the CSRF cookie minted when missing
/// (on pages only: never on an asset a shared cache could keep). A `POST` to a path
/// that is no page is a plain 404 rather than a refusal. `always_secure` is
/// `storefront.secure_cookies`; without it cookies are `Secure` when the request
/// came over TLS.
pub async fn csrf(State(always_secure): State<bool>, req: Request, next: Next) -> Response {
    let found = cookie(req.headers(), CSRF_COOKIE).filter(|t| well_formed(t));
    let token = found.clone().unwrap_or_else(mint);
    let secure = always_secure || is_tls(req.headers());
    let mut req = req;
    if req.method() != Method::GET && req.method() != Method::HEAD {
        req = match check(req, found.as_deref()).await {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        };
    }
    // Session cookies nobody vouched for (an access token the gateway refused and
    // no refresh token users accepted) are cleared; the page says so.
    let stale = Caller::from_headers(req.headers()).is_none()
        && req.extensions().get::<RefreshUnavailable>().is_none()
        && (cookie(req.headers(), headers::SESSION_COOKIE).is_some()
            || cookie(req.headers(), headers::REFRESH_COOKIE).is_some());
    req.extensions_mut().insert(Csrf(token.clone()));
    req.extensions_mut().insert(SecureCookies(secure));
    let mut response = next.run(req).await;
    let page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    let redirect = response.status().is_redirection();
    if stale && (page || redirect) && !response.headers().contains_key(header::SET_COOKIE) {
        for c in signed_out(secure) {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
    }
    if !page {
        return response;
    }
    if found.is_none() {
        // A year: the token only proves "this site's page", never who you are.
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(CSRF_COOKIE, &token, 365 * 24 * 3600, secure),
        );
    }
    response
}

/// Middleware over everything the storefront answers: the security headers.
pub async fn secure_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show one shopper's cart and name: never in a shared cache.
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    response
}

/// A state-changing request: from this site, a form, carrying the cookie's token.
async fn check(req: Request, cookie_token: Option<&str>) -> Result<Request, PageError> {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req
            .headers()
            .get("x-forwarded-host")
            .or_else(|| req.headers().get(header::HOST))
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin_host != host {
            return Err(PageError::Forbidden(
                "This form was sent from another site.".into(),
            ));
        }
    }
    let form = req.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    if !form {
        return Err(PageError::BadRequest("Expected a form.".into()));
    }
    let Some(expected) = cookie_token else {
        return Err(PageError::Forbidden(
            "Your browser did not send this shop's cookie. Cookies are needed to sign in \
             and to shop; please allow them and try again."
                .into(),
        ));
    };
    let (parts, body) = req.into_parts();
    let bytes: Bytes = Limited::new(body, FORM_LIMIT)
        .collect()
        .await
        .map_err(|_| PageError::BadRequest("The form is too large.".into()))?
        .to_bytes();
    let sent = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !same(&sent, expected) {
        return Err(PageError::Forbidden(
            "This form has expired. Go back, reload the page and try again.".into(),
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        let t = mint();
        assert!(well_formed(&t));
        assert!(same(&t, &t.clone()));
        assert!(!same(&t, &mint()));
        assert!(!same(&t, &t[..63]));
        assert!(!well_formed("short"));
    }

    #[test]
    fn session_cookies_are_http_only_and_lax() {
        let v = set_cookie("s", "tok", 60, true);
        let v = v.to_str().expect("ascii");
        assert!(v.contains("HttpOnly"), "{v}");
        assert!(v.contains("SameSite=Lax"), "{v}");
        assert!(v.contains("Secure"), "{v}");
        assert!(v.contains("Max-Age=60"), "{v}");
        let plain = set_cookie("s", "tok", 60, false);
        assert!(!plain.to_str().expect("ascii").contains("Secure"));
    }
}
