//! Checkout: the shipping address and card, with orders' field errors shown next to
//! each field. The form carries an idempotency key minted when it was shown, so a
//! double submit, a reload or a retry after a failure places exactly one order;
//! the order page is a redirect away (post/redirect/get).

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{App, Chrome, Field, PageForm, render};
use crate::backend::{self, Address, CardInput, Cart, Checkout, Order, post_keyed};
use crate::error::PageError;
use crate::session::Visitor;
use crate::view;

/// Every input of the form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    line2: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    exp_month: String,
    #[serde(default)]
    exp_year: String,
    #[serde(default)]
    cvc: String,
}

#[derive(Default)]
pub struct Fields {
    pub name: Field,
    pub line1: Field,
    pub line2: Field,
    pub city: Field,
    pub postal_code: Field,
    pub country: Field,
    pub number: Field,
    pub exp_month: Field,
    pub exp_year: Field,
    pub cvc: Field,
}

impl Fields {
    fn from_form(f: &CheckoutForm) -> Self {
        let v = Field::of;
        Self {
            name: v(&f.name),
            line1: v(&f.line1),
            line2: v(&f.line2),
            city: v(&f.city),
            postal_code: v(&f.postal_code),
            country: v(&f.country),
            number: v(&f.number),
            exp_month: v(&f.exp_month),
            exp_year: v(&f.exp_year),
            // The security code is never shown back.
            cvc: Field::default(),
        }
    }

    /// The input an API field path (`shipping_address.city`, `card.number`) names.
    fn by_path(&mut self, path: &str) -> Option<&mut Field> {
        let last = path.rsplit('.').next().unwrap_or(path);
        Some(match last {
            "name" => &mut self.name,
            "line1" => &mut self.line1,
            "line2" => &mut self.line2,
            "city" => &mut self.city,
            "postal_code" => &mut self.postal_code,
            "country" => &mut self.country,
            "number" => &mut self.number,
            "exp_month" => &mut self.exp_month,
            "exp_year" => &mut self.exp_year,
            "cvc" => &mut self.cvc,
            _ => return None,
        })
    }

    fn fail(&mut self, path: &str, message: &str) -> bool {
        match self.by_path(path) {
            Some(f) => {
                f.error = message.to_string();
                true
            }
            None => false,
        }
    }
}

pub struct SummaryLine {
    pub name: String,
    pub quantity: i64,
    pub total: String,
}

#[derive(Template)]
#[template(path = "checkout.html")]
struct CheckoutPage {
    chrome: Chrome,
    lines: Vec<SummaryLine>,
    total: String,
    key: String,
    fields: Fields,
    /// A problem not tied to one field.
    error: String,
}

/// `GET /checkout`
pub async fn form(State(app): State<App>, visitor: Visitor) -> Result<Response, PageError> {
    let user = visitor.require("/checkout")?;
    let cart = cart(&app, user).await?;
    if cart.items.is_empty() {
        return Ok(Redirect::to("/cart?n=cart-empty").into_response());
    }
    page(
        &app,
        &visitor,
        &cart,
        uuid::Uuid::new_v4().to_string(),
        Fields::default(),
        String::new(),
    )
}

async fn cart(app: &App, user: &emporium_http::Caller) -> Result<Cart, PageError> {
    backend::as_user(&app.backend.cart, user)
        .get_json::<Cart>("/api/cart")
        .await
        .map_err(|e| PageError::from_call("the cart", e))
}

fn page(
    app: &App,
    visitor: &Visitor,
    cart: &Cart,
    key: String,
    fields: Fields,
    error: String,
) -> Result<Response, PageError> {
    let page = CheckoutPage {
        chrome: Chrome::new(app, visitor, "Checkout", Some(cart)),
        lines: cart
            .items
            .iter()
            .map(|l| SummaryLine {
                name: l.name.clone(),
                quantity: l.quantity,
                total: view::money(&l.line_total),
            })
            .collect(),
        total: cart.total.as_ref().map(view::money).unwrap_or_default(),
        key,
        fields,
        error,
    };
    render(&page)
}

/// `POST /checkout`: place the order under the form's key, then show it.
pub async fn place(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<CheckoutForm>,
) -> Result<Response, PageError> {
    let user = visitor.require("/checkout")?;
    let key = match uuid::Uuid::parse_str(form.key.trim()) {
        Ok(k) => k.to_string(),
        Err(_) => {
            return Err(PageError::BadRequest(
                "This checkout form is incomplete; open the checkout again.".into(),
            ));
        }
    };
    let mut fields = Fields::from_form(&form);
    let month = number(
        &mut fields,
        "exp_month",
        &form.exp_month,
        "Enter the month, 1 to 12.",
    );
    let year = number(
        &mut fields,
        "exp_year",
        &form.exp_year,
        "Enter the year, such as 2030.",
    );
    let (Some(exp_month), Some(exp_year)) = (month, year) else {
        let cart = cart(&app, user).await?;
        return page(&app, &visitor, &cart, key, fields, String::new());
    };
    let line2 = form.line2.trim();
    let order = Checkout {
        card: CardInput {
            number: form.number.clone(),
            exp_month,
            exp_year,
            cvc: form.cvc.clone(),
        },
        // What a shopper typed around a field is not part of it (orders counts and
        // checks fields as sent).
        shipping_address: Address {
            name: form.name.trim().to_string(),
            line1: form.line1.trim().to_string(),
            line2: (!line2.is_empty()).then(|| line2.to_string()),
            city: form.city.trim().to_string(),
            postal_code: form.postal_code.trim().to_string(),
            country: form.country.trim().to_string(),
        },
    };
    let orders = backend::as_user(&app.backend.orders, user);
    let error = match post_keyed::<_, Order>(&orders, "/api/orders", &key, &order).await {
        Ok(order) => {
            return Ok(Redirect::to(&format!("/orders/{}", order.id)).into_response());
        }
        Err(e) => e,
    };
    let mut key = key;
    let general = match (error.status().map(|s| s.as_u16()), error.problem_code()) {
        (Some(422), Some("cart_empty")) => {
            return Ok(Redirect::to("/cart?n=cart-empty").into_response());
        }
        (Some(422), Some("idempotency_key_reused")) => {
            // This form already placed an order with other details: a new attempt
            // needs a new key.
            key = uuid::Uuid::new_v4().to_string();
            "This checkout was already placed with other details. Check your orders before \
             placing it again."
                .to_string()
        }
        (Some(422 | 400), _) => {
            let mut unplaced = Vec::new();
            for e in error.field_errors() {
                if !fields.fail(&e.field, &e.message) {
                    unplaced.push(format!("{}: {}", e.field, e.message));
                }
            }
            if unplaced.is_empty() && error.field_errors().is_empty() {
                error
                    .problem_detail()
                    .unwrap_or("The order was not accepted.")
                    .to_string()
            } else {
                unplaced.join("; ")
            }
        }
        (Some(401), _) => return Err(PageError::SignIn("/checkout".into())),
        // The address is not confirmed yet: the page that sends a new link says why.
        (Some(403), _) => return Ok(Redirect::to("/verify?n=confirm-to-check-out").into_response()),
        _ => {
            tracing::warn!(error = %error, "checkout failed");
            // The order may have been placed all the same (orders places it on a
            // task of its own): the same key again shows it rather than a second.
            "We could not confirm your order just now. Send this form again in a moment: \
             if the order was placed, you will see it (and it will not be placed twice); \
             it also appears under Orders."
                .to_string()
        }
    };
    let cart = cart(&app, user).await?;
    page(&app, &visitor, &cart, key, fields, general)
}

/// A whole number from a form field, or the field marked with `message`.
fn number(fields: &mut Fields, field: &str, text: &str, message: &str) -> Option<i64> {
    match text.trim().parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            fields.fail(field, message);
            None
        }
    }
}
