//! The pages of the account mails' links: confirm an email address, and reset a
//! forgotten password. Each link opens a page with a button (a `POST`), so a mail
//! scanner that follows links does not use up the one-time token.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::Method;
use serde::Deserialize;

use super::{App, Chrome, Field, PageForm, PageQuery, render};
use crate::backend::{self, EmailLink, NewPassword, ResetAsk};
use crate::error::PageError;
use crate::session::{self, Visitor};

#[derive(Template)]
#[template(path = "verify.html")]
struct Verify {
    chrome: Chrome,
    token: String,
    error: String,
    signed_in: bool,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct Reset {
    chrome: Chrome,
    token: String,
    email: Field,
    password: Field,
    error: String,
    sent: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
    /// A notice to show.
    #[serde(default)]
    n: Option<String>,
}

const DEAD_LINK: &str = "This link no longer works: it was used already, a newer mail \
     replaced it, or it expired.";

/// `GET /verify?token=`
pub async fn verify_form(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(q): PageQuery<TokenQuery>,
) -> Result<Response, PageError> {
    render(&Verify {
        chrome: Chrome::new(&app, &visitor, "Confirm your email address", None)
            .with_notice(super::notice(q.n.as_deref())),
        token: q.token,
        error: String::new(),
        signed_in: visitor.user.is_some(),
    })
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    token: String,
}

/// `POST /verify`
pub async fn verify(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<TokenForm>,
) -> Result<Response, PageError> {
    let confirmed = app
        .backend
        .users
        .send_json::<_, serde_json::Value>(
            Method::POST,
            "/api/users/verify",
            &EmailLink { token: &form.token },
        )
        .await;
    match confirmed {
        Ok(_) => {
            let mut response = Redirect::to("/?n=verified").into_response();
            // A signed-in shopper gets an access token that says so at once.
            if let Some(refresh_token) = &visitor.refresh_token
                && let Ok(token) =
                    session::renew(&app, refresh_token, visitor.client_ip.as_deref()).await
            {
                for c in session::session_cookies(&token, visitor.secure) {
                    response.headers_mut().append(http::header::SET_COOKIE, c);
                }
            }
            Ok(response)
        }
        Err(e) if e.status() == Some(http::StatusCode::BAD_REQUEST) => render(&Verify {
            chrome: Chrome::new(&app, &visitor, "Confirm your email address", None),
            token: String::new(),
            error: DEAD_LINK.into(),
            signed_in: visitor.user.is_some(),
        }),
        Err(e) => Err(PageError::from_call("confirming your address", e)),
    }
}

/// `POST /verification`: mail the signed-in shopper a new link.
pub async fn resend(State(app): State<App>, visitor: Visitor) -> Result<Response, PageError> {
    let caller = visitor.require("/verify")?;
    let sent = backend::as_user(&app.backend.users, caller)
        .call_json::<serde_json::Value>(Method::POST, "/api/users/verification")
        .await;
    let code = match sent {
        Ok(_) => "verification-sent",
        Err(e) => match e.status().map(|s| s.as_u16()) {
            Some(409) => "verified",
            Some(429) => "verification-wait",
            _ => return Err(PageError::from_call("sending a new link", e)),
        },
    };
    Ok(Redirect::to(&format!("/?n={code}")).into_response())
}

fn reset_page(app: &App, visitor: &Visitor) -> Reset {
    Reset {
        chrome: Chrome::new(app, visitor, "Reset your password", None),
        token: String::new(),
        email: Field::default(),
        password: Field::default(),
        error: String::new(),
        sent: false,
    }
}

/// `GET /reset` (ask for a link) and `GET /reset?token=` (choose the password).
pub async fn reset_form(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(q): PageQuery<TokenQuery>,
) -> Result<Response, PageError> {
    render(&Reset {
        token: q.token,
        ..reset_page(&app, &visitor)
    })
}

#[derive(Debug, Deserialize)]
pub struct EmailForm {
    email: String,
}

/// `POST /reset`: the same answer whether an account has the email or not.
pub async fn ask_reset(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<EmailForm>,
) -> Result<Response, PageError> {
    let asked = backend::from_client(&app.backend.users, visitor.client_ip.as_deref())
        .send_json::<_, serde_json::Value>(
            Method::POST,
            "/api/users/password-reset",
            &ResetAsk {
                email: form.email.trim(),
            },
        )
        .await;
    match asked {
        Ok(_) => render(&Reset {
            sent: true,
            ..reset_page(&app, &visitor)
        }),
        Err(e) if e.status() == Some(http::StatusCode::UNPROCESSABLE_ENTITY) => render(&Reset {
            email: Field {
                value: form.email,
                error: String::new(),
            },
            error: "That is not an email address.".into(),
            ..reset_page(&app, &visitor)
        }),
        Err(e) => Err(PageError::from_call("asking for a reset link", e)),
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    token: String,
    password: String,
}

/// `POST /reset/confirm`
pub async fn confirm_reset(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<PasswordForm>,
) -> Result<Response, PageError> {
    let done = app
        .backend
        .users
        .send_json::<_, serde_json::Value>(
            Method::POST,
            "/api/users/password-reset/confirm",
            &NewPassword {
                token: &form.token,
                password: &form.password,
            },
        )
        .await;
    match done {
        Ok(_) => Ok(Redirect::to("/signin?n=password-reset").into_response()),
        Err(e) => match e.status().map(|s| s.as_u16()) {
            Some(400) => render(&Reset {
                error: DEAD_LINK.into(),
                ..reset_page(&app, &visitor)
            }),
            Some(422) => render(&Reset {
                token: form.token,
                password: Field {
                    value: String::new(),
                    error: e
                        .field_errors()
                        .first()
                        .map(|f| f.message.clone())
                        .unwrap_or_else(|| "Choose another password.".into()),
                },
                ..reset_page(&app, &visitor)
            }),
            _ => Err(PageError::from_call("setting your new password", e)),
        },
    }
}
