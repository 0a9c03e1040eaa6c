//! Signing up, in and out. Signing in sets the session cookie and goes back where
//! the shopper was (`next`), finishing what sent them here: an "add to cart" made
//! while signed out is carried through as `add` and `quantity`.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::{Method, header};
use serde::Deserialize;

use super::{App, Chrome, Field, PageForm, PageQuery, cart, render, safe_next};
use crate::backend::{self, Account, Credentials, Registration, Token};
use crate::error::PageError;
use crate::session::{self, Visitor};

#[derive(Debug, Default, Deserialize)]
pub struct Return {
    #[serde(default)]
    next: String,
    #[serde(default)]
    add: String,
    #[serde(default)]
    quantity: String,
    /// A notice to show (after a password reset).
    #[serde(default)]
    n: Option<String>,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn {
    chrome: Chrome,
    back: Return,
    email: Field,
    error: String,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUp {
    chrome: Chrome,
    back: Return,
    name: Field,
    email: Field,
    password: Field,
    error: String,
}

/// `GET /signin?next=&add=&quantity=`
pub async fn signin_form(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(back): PageQuery<Return>,
) -> Result<Response, PageError> {
    let error = if back.add.is_empty() {
        String::new()
    } else {
        "Sign in to add this to your cart.".into()
    };
    render(&SignIn {
        chrome: Chrome::new(&app, &visitor, "Sign in", None)
            .with_notice(super::notice(back.n.as_deref())),
        back,
        email: Field::default(),
        error,
    })
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(flatten)]
    back: Return,
}

/// `POST /signin`
pub async fn signin(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<SignInForm>,
) -> Result<Response, PageError> {
    match login(&app, &visitor, form.email.trim(), &form.password).await {
        Ok(token) => start(&app, &visitor, token, form.back).await,
        Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
            let error = match e.status().map(|s| s.as_u16()) {
                Some(429) => "Too many attempts; wait a minute and try again.".to_string(),
                _ => "That email and password do not match an account.".to_string(),
            };
            render(&SignIn {
                chrome: Chrome::new(&app, &visitor, "Sign in", None),
                back: form.back,
                email: Field::of(&form.email),
                error,
            })
        }
        Err(e) => Err(PageError::from_call("signing in", e)),
    }
}

/// `GET /signup`
pub async fn signup_form(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(back): PageQuery<Return>,
) -> Result<Response, PageError> {
    render(&SignUp {
        chrome: Chrome::new(&app, &visitor, "Create an account", None),
        back,
        name: Field::default(),
        email: Field::default(),
        password: Field::default(),
        error: String::new(),
    })
}

#[derive(Debug, Deserialize)]
pub struct SignUpForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(flatten)]
    back: Return,
}

/// `POST /signup`: create the account, sign in, go on.
pub async fn signup(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<SignUpForm>,
) -> Result<Response, PageError> {
    let users = &app.backend.users;
    let email = form.email.trim();
    let registered = users
        .send_json::<_, serde_json::Value>(
            Method::POST,
            "/api/users/register",
            &Registration {
                email,
                password: &form.password,
                name: form.name.trim(),
            },
        )
        .await;
    if let Err(e) = registered {
        if !e.status().is_some_and(|s| s.is_client_error()) {
            return Err(PageError::from_call("signing up", e));
        }
        let mut page = SignUp {
            chrome: Chrome::new(&app, &visitor, "Create an account", None),
            back: form.back,
            name: Field::of(&form.name),
            email: Field::of(&form.email),
            password: Field::default(),
            error: String::new(),
        };
        match e.status().map(|s| s.as_u16()) {
            Some(409) => {
                page.email.error = "An account with this email exists; sign in instead.".into();
            }
            _ => {
                for f in e.field_errors() {
                    match f.field.as_str() {
                        "name" => page.name.error = f.message.clone(),
                        "email" => page.email.error = f.message.clone(),
                        "password" => page.password.error = f.message.clone(),
                        _ => page.error = f.message.clone(),
                    }
                }
                if e.field_errors().is_empty() {
                    page.error = e.problem_detail().unwrap_or("Check the form.").to_string();
                }
            }
        }
        return render(&page);
    }
    let token = login(&app, &visitor, email, &form.password)
        .await
        .map_err(|e| PageError::from_call("signing in", e))?;
    let mut back = form.back;
    if back.next.is_empty() {
        back.next = "/?n=welcome".into();
    }
    start(&app, &visitor, token, back).await
}

/// A token for `email` and `password` from users.
async fn login(
    app: &App,
    visitor: &Visitor,
    email: &str,
    password: &str,
) -> Result<Token, emporium_client::ClientError> {
    backend::from_client(&app.backend.users, visitor.client_ip.as_deref())
        .send_json(
            Method::POST,
            "/api/users/login",
            &Credentials { email, password },
        )
        .await
}

/// Signed in with `token`: set the cookies, finish a pending add, go back.
async fn start(
    app: &App,
    visitor: &Visitor,
    token: Token,
    back: Return,
) -> Result<Response, PageError> {
    let caller = session::caller_of(&token.access_token)
        .ok_or_else(|| PageError::Internal(anyhow::anyhow!("users issued an unreadable token")))?;
    let name = backend::as_user(&app.backend.users, &caller)
        .get_json::<Account>("/api/users/me")
        .await
        .map(|a| a.name)
        .unwrap_or_default();
    if !back.add.is_empty() {
        let quantity = back.quantity.parse().unwrap_or(1);
        cart::add_for(app, &caller, &back.add, quantity, None).await?;
    }
    let next = safe_next(Some(&back.next));
    let mut response = Redirect::to(&next).into_response();
    for cookie in session::signed_in(&token, &name, visitor.secure) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Ends the session of `refresh_token` at users.
async fn logout(app: &App, refresh_token: &str) -> Result<(), emporium_client::ClientError> {
    app.backend
        .users
        .send_json(
            Method::POST,
            "/api/users/logout",
            &backend::Refresh { refresh_token },
        )
        .await
}

/// `POST /signout`: the session ends at users too (its refresh token stops
/// working), not only in this browser.
pub async fn signout(State(app): State<App>, visitor: Visitor) -> Response {
    if let Some(refresh_token) = &visitor.refresh_token {
        let ended = logout(&app, refresh_token).await;
        if let Err(e) = ended {
            tracing::warn!(error = %e, "cannot end the session at users; the cookies go anyway");
        }
    }
    let mut response = Redirect::to("/?n=signed-out").into_response();
    for cookie in session::signed_out(visitor.secure) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
