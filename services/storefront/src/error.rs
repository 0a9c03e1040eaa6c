//! Error pages, and what a failed call to a service becomes.
//!
//! A page that cannot be shown at all answers with an error page: 404, 403, 400,
//! 503 when the service it needs is down ("the cart is unavailable right now"),
//! and 500, opaque, with the request id to quote. Sections of a page that depend on
//! another service (reviews on a product page) do not fail the page: they show
//! their own "unavailable" note ([`Section`]).

use askama::Template;
use axum::response::{Html, IntoResponse, Redirect, Response};
use emporium_client::ClientError;
use http::StatusCode;

use crate::backend::with_query;
use crate::pages::Chrome;

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("not found")]
    NotFound,
    /// Only for signed-in shoppers: sign in, then come back to the path.
    #[error("sign in needed")]
    SignIn(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("too many requests")]
    TooMany,
    /// A service the page needs is down or too slow.
    #[error("{0} unavailable")]
    Unavailable(&'static str, #[source] ClientError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl PageError {
    /// A failed call to `what` (the service, in words: "the cart") as a page error:
    /// 404 stays 404; a refusal (401, 403) is a 403 page and bad input (400, 409,
    /// 422) a 400 page, each with what the service said; 429 asks to wait; a
    /// service that is down or slow is 503; an answer that breaks the contract, 500.
    pub fn from_call(what: &'static str, e: ClientError) -> Self {
        let said = |fallback: &str| e.problem_detail().unwrap_or(fallback).to_string();
        match e.status() {
            Some(StatusCode::NOT_FOUND) => PageError::NotFound,
            Some(StatusCode::UNAUTHORIZED) => PageError::Forbidden("Sign in to do this.".into()),
            Some(StatusCode::FORBIDDEN) => PageError::Forbidden(said("You may not do that.")),
            Some(StatusCode::TOO_MANY_REQUESTS) => PageError::TooMany,
            Some(s) if s.is_client_error() => PageError::BadRequest(said("That was not accepted.")),
            Some(_) => PageError::Unavailable(what, e),
            None => match e {
                ClientError::Decode { .. } => PageError::Internal(e.into()),
                _ => PageError::Unavailable(what, e),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    title: String,
    message: String,
    request_id: Option<String>,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let request_id = emporium_http::context::with(|c| c.request_id.to_string());
        let (status, title, message) = match &self {
            PageError::SignIn(back) => {
                return Redirect::to(&with_query("/signin", [("next", back.as_str())]))
                    .into_response();
            }
            PageError::NotFound => (
                StatusCode::NOT_FOUND,
                "Page not found",
                "We could not find that page. It may have moved, or the link is wrong.".into(),
            ),
            PageError::Forbidden(why) => (StatusCode::FORBIDDEN, "Not allowed", why.clone()),
            PageError::BadRequest(why) => (StatusCode::BAD_REQUEST, "Bad request", why.clone()),
            PageError::TooMany => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "That was a lot at once. Wait a moment and try again.".into(),
            ),
            PageError::Unavailable(what, e) => {
                tracing::warn!(error = %e, "a service the page needs failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    format!(
                        "{} is unavailable right now. Please try again in a moment.",
                        capital(what)
                    ),
                )
            }
            PageError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Something went wrong on our side. Please try again; if it keeps happening, \
                     quote the request id below."
                        .into(),
                )
            }
        };
        let page = ErrorPage {
            chrome: Chrome::plain(title),
            title: title.into(),
            message,
            request_id: request_id.filter(|_| status.is_server_error()),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "error page failed to render");
                status.into_response()
            }
        }
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A section of a page that comes from another service: shown, or replaced by a
/// note that it is unavailable while the rest of the page renders.
#[derive(Debug)]
pub enum Section<T> {
    Shown(T),
    /// The note to show instead ("Reviews are unavailable right now.").
    Unavailable(&'static str),
}

impl<T> Section<T> {
    /// The section from a call's result; a failure logs and shows `note`.
    pub fn from(note: &'static str, result: Result<T, ClientError>) -> Self {
        match result {
            Ok(v) => Section::Shown(v),
            Err(e) => {
                tracing::warn!(error = %e, note, "section unavailable");
                Section::Unavailable(note)
            }
        }
    }

    pub fn shown(&self) -> Option<&T> {
        match self {
            Section::Shown(v) => Some(v),
            Section::Unavailable(_) => None,
        }
    }

    /// The note, empty when shown.
    pub fn note(&self) -> &'static str {
        match self {
            Section::Shown(_) => "",
            Section::Unavailable(note) => note,
        }
    }
}
