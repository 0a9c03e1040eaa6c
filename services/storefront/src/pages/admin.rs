//! The back office, for admins: products (create, edit, price), stock, every
//! order by status, review moderation, and dead letters with replay.
//!
//! Every page checks the role here for a clear page. Catalog, inventory, orders and
//! reviews check it again on every call (the storefront acts as the admin there);
//! dead letters and their replay are internal endpoints, which only this check
//! guards until services authenticate each other.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use emporium_contracts::money::Money;
use emporium_events::fleet::{self, Replay};
use emporium_http::Caller;
use http::Method;
use serde::{Deserialize, Serialize};

use super::{App, Chrome, Field, PageForm, PageQuery, render};
use crate::backend::{
    self, Categories, Category, OrderPage, Product, ProductPage, Stock, get, segment, with_query,
};
use crate::error::PageError;
use crate::session::Visitor;
use crate::view;

/// The signed-in admin, or the reason there is none.
pub fn admin<'v>(visitor: &'v Visitor, back: &str) -> Result<&'v Caller, PageError> {
    let user = visitor.require(back)?;
    if visitor.is_admin() {
        Ok(user)
    } else {
        Err(PageError::Forbidden(
            "The back office is for the shop's administrators.".into(),
        ))
    }
}

fn admin_notice(code: Option<&str>) -> &'static str {
    match code {
        Some("created") => "Product created.",
        Some("saved") => "Product saved.",
        Some("restocked") => "Stock updated.",
        Some("hidden") => "Review hidden.",
        Some("replayed") => "Event replayed.",
        _ => "",
    }
}

#[derive(Template)]
#[template(path = "admin/index.html")]
struct Index {
    chrome: Chrome,
}

/// `GET /admin`
pub async fn index(State(app): State<App>, visitor: Visitor) -> Result<Response, PageError> {
    admin(&visitor, "/admin")?;
    render(&Index {
        chrome: Chrome::new(&app, &visitor, "Back office", None),
    })
}

pub struct ProductRow {
    pub sku: String,
    /// Where its stock form posts.
    pub stock_action: String,
    pub name: String,
    pub href: String,
    pub edit: String,
    pub category: String,
    pub price: String,
    pub stock: String,
}

#[derive(Template)]
#[template(path = "admin/products.html")]
struct Products {
    chrome: Chrome,
    rows: Vec<ProductRow>,
    categories: Vec<Category>,
    category: String,
    total: i64,
    next: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProductsQuery {
    #[serde(default)]
    category: String,
    #[serde(default)]
    cursor: String,
    n: Option<String>,
}

#[derive(Deserialize)]
struct Listed {
    items: Vec<Product>,
    total: i64,
    next: Option<String>,
}

/// `GET /admin/products?category=&cursor=`: products with their stock.
pub async fn products(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(q): PageQuery<ProductsQuery>,
) -> Result<Response, PageError> {
    admin(&visitor, "/admin/products")?;
    let b = &app.backend;
    let path = with_query(
        "/api/catalog/products",
        [
            ("category", q.category.as_str()),
            ("cursor", &q.cursor),
            ("limit", "50"),
        ],
    );
    let (listed, categories) = tokio::join!(
        get::<Listed>(b.catalog.clone(), path),
        get::<Categories>(b.catalog.clone(), "/api/catalog/categories".into()),
    );
    let listed = listed.map_err(|e| PageError::from_call("the catalog", e))?;
    let stock = futures::future::join_all(listed.items.iter().map(|p| {
        get::<Stock>(
            b.inventory.clone(),
            format!("/api/inventory/{}", segment(&p.sku)),
        )
    }))
    .await;
    let rows = listed
        .items
        .iter()
        .zip(stock)
        .map(|(p, s)| ProductRow {
            stock_action: format!("/admin/stock/{}", segment(&p.sku)),
            href: format!("/products/{}", segment(&p.sku)),
            edit: format!("/admin/products/{}", segment(&p.id)),
            sku: p.sku.clone(),
            name: p.name.clone(),
            category: p.category.clone(),
            price: view::money(&p.price),
            stock: s.map_or_else(|_| "?".into(), |s| s.available.to_string()),
        })
        .collect();
    let next = listed
        .next
        .map(|c| {
            with_query(
                "/admin/products",
                [("category", q.category.as_str()), ("cursor", &c)],
            )
        })
        .unwrap_or_default();
    render(&Products {
        chrome: Chrome::new(&app, &visitor, "Products", None)
            .with_notice(admin_notice(q.n.as_deref())),
        rows,
        categories: categories.map(|c| c.items).unwrap_or_default(),
        category: q.category,
        total: listed.total,
        next,
    })
}

/// Every input of the product form, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct ProductForm {
    #[serde(default)]
    sku: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
    /// In the shop's currency, with a decimal point: `19.99`.
    #[serde(default)]
    price: String,
    #[serde(default)]
    currency: String,
}

#[derive(Default)]
pub struct ProductFields {
    pub sku: Field,
    pub name: Field,
    pub description: Field,
    pub category: Field,
    pub price: Field,
}

impl ProductFields {
    fn from_form(f: &ProductForm) -> Self {
        let v = Field::of;
        Self {
            sku: v(&f.sku),
            name: v(&f.name),
            description: v(&f.description),
            category: v(&f.category),
            price: v(&f.price),
        }
    }

    fn from_product(p: &Product) -> Self {
        Self::from_form(&ProductForm {
            sku: p.sku.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            category: p.category.clone(),
            price: decimal(p.price.amount),
            currency: p.price.currency.clone(),
        })
    }

    fn fail(&mut self, path: &str, message: &str) -> bool {
        let field = match path.split('.').next().unwrap_or(path) {
            "sku" => &mut self.sku,
            "name" => &mut self.name,
            "description" => &mut self.description,
            "category" => &mut self.category,
            "price" => &mut self.price,
            _ => return false,
        };
        field.error = message.to_string();
        true
    }
}

/// `1999` → `19.99`.
fn decimal(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

/// `19.99`, `19.9`, `19` → minor units; anything else is `None`.
fn minor_units(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || fraction.len() > 2 {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(cents)
}

#[derive(Template)]
#[template(path = "admin/product.html")]
struct ProductEdit {
    chrome: Chrome,
    /// Empty for a new product.
    id: String,
    action: String,
    fields: ProductFields,
    currency: String,
    categories: Vec<Category>,
    stock: String,
    /// Where the stock form posts.
    stock_action: String,
    error: String,
}

async fn categories(app: &App) -> Vec<Category> {
    app.backend
        .catalog
        .get_json::<Categories>("/api/catalog/categories")
        .await
        .map(|c| c.items)
        .unwrap_or_default()
}

/// A currency for a new product: the one the catalog's products are in.
async fn shop_currency(app: &App) -> String {
    app.backend
        .catalog
        .get_json::<ProductPage>("/api/catalog/products?limit=1")
        .await
        .ok()
        .and_then(|p| p.items.first().map(|p| p.price.currency.clone()))
        .unwrap_or_else(|| "USD".into())
}

/// `GET /admin/products/new`
pub async fn new_product(State(app): State<App>, visitor: Visitor) -> Result<Response, PageError> {
    admin(&visitor, "/admin/products/new")?;
    render(&ProductEdit {
        chrome: Chrome::new(&app, &visitor, "New product", None),
        id: String::new(),
        action: "/admin/products".into(),
        fields: ProductFields::default(),
        currency: shop_currency(&app).await,
        categories: categories(&app).await,
        stock: String::new(),
        stock_action: String::new(),
        error: String::new(),
    })
}

#[derive(Serialize)]
struct NewProduct<'a> {
    sku: &'a str,
    name: &'a str,
    description: &'a str,
    category: &'a str,
    price: Money,
}

#[derive(Serialize)]
struct ProductPatch<'a> {
    name: &'a str,
    description: &'a str,
    category: &'a str,
    price: Money,
}

/// `POST /admin/products`: create.
pub async fn create_product(
    State(app): State<App>,
    visitor: Visitor,
    PageForm(form): PageForm<ProductForm>,
) -> Result<Response, PageError> {
    let user = admin(&visitor, "/admin/products/new")?;
    let mut fields = ProductFields::from_form(&form);
    let Some(amount) = minor_units(&form.price) else {
        fields.fail("price", "Enter a price such as 19.99.");
        return edit_again(&app, &visitor, String::new(), fields, &form.currency, "").await;
    };
    let created = backend::as_user(&app.backend.catalog, user)
        .send_json::<_, Product>(
            Method::POST,
            "/api/catalog/products",
            &NewProduct {
                sku: form.sku.trim(),
                name: form.name.trim(),
                description: &super::paragraphs(&form.description),
                category: &form.category,
                price: Money::new(amount, &form.currency),
            },
        )
        .await;
    match created {
        Ok(p) => Ok(
            Redirect::to(&format!("/admin/products/{}?n=created", segment(&p.id))).into_response(),
        ),
        Err(e) => refused(&app, &visitor, String::new(), fields, &form.currency, e).await,
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct NoticeQuery {
    n: Option<String>,
}

/// `GET /admin/products/{id}`
pub async fn edit_product(
    State(app): State<App>,
    visitor: Visitor,
    Path(id): Path<String>,
    PageQuery(q): PageQuery<NoticeQuery>,
) -> Result<Response, PageError> {
    admin(&visitor, "/admin/products")?;
    let product = app
        .backend
        .catalog
        .get_json::<Product>(&format!("/api/catalog/products/{}", segment(&id)))
        .await
        .map_err(|e| match e.status().map(|s| s.as_u16()) {
            Some(400 | 422) => PageError::NotFound,
            _ => PageError::from_call("the catalog", e),
        })?;
    let stock = app
        .backend
        .inventory
        .get_json::<Stock>(&format!("/api/inventory/{}", segment(&product.sku)))
        .await
        .map(|s| s.available.to_string())
        .unwrap_or_default();
    render(&ProductEdit {
        chrome: Chrome::new(&app, &visitor, &product.name, None)
            .with_notice(admin_notice(q.n.as_deref())),
        action: format!("/admin/products/{}", segment(&product.id)),
        fields: ProductFields::from_product(&product),
        currency: product.price.currency.clone(),
        categories: categories(&app).await,
        stock,
        stock_action: format!("/admin/stock/{}", segment(&product.sku)),
        error: String::new(),
        id: product.id,
    })
}

/// `POST /admin/products/{id}`: save the changes (a price change reaches carts).
pub async fn save_product(
    State(app): State<App>,
    visitor: Visitor,
    Path(id): Path<String>,
    PageForm(form): PageForm<ProductForm>,
) -> Result<Response, PageError> {
    let user = admin(&visitor, "/admin/products")?;
    let mut fields = ProductFields::from_form(&form);
    let Some(amount) = minor_units(&form.price) else {
        fields.fail("price", "Enter a price such as 19.99.");
        return edit_again(&app, &visitor, id, fields, &form.currency, "").await;
    };
    let saved = backend::as_user(&app.backend.catalog, user)
        .send_json::<_, Product>(
            Method::PATCH,
            &format!("/api/catalog/products/{}", segment(&id)),
            &ProductPatch {
                name: form.name.trim(),
                description: &super::paragraphs(&form.description),
                category: &form.category,
                price: Money::new(amount, &form.currency),
            },
        )
        .await;
    match saved {
        Ok(p) => Ok(
            Redirect::to(&format!("/admin/products/{}?n=saved", segment(&p.id))).into_response(),
        ),
        Err(e) => refused(&app, &visitor, id, fields, &form.currency, e).await,
    }
}

/// Catalog said no: its field errors next to the fields, or what it said.
async fn refused(
    app: &App,
    visitor: &Visitor,
    id: String,
    mut fields: ProductFields,
    currency: &str,
    e: emporium_client::ClientError,
) -> Result<Response, PageError> {
    if !e.status().is_some_and(|s| s.is_client_error()) {
        return Err(PageError::from_call("the catalog", e));
    }
    let mut general = Vec::new();
    for f in e.field_errors() {
        if !fields.fail(&f.field, &f.message) {
            general.push(format!("{}: {}", f.field, f.message));
        }
    }
    if e.field_errors().is_empty() {
        general.push(e.problem_detail().unwrap_or("Not accepted.").to_string());
    }
    edit_again(app, visitor, id, fields, currency, &general.join("; ")).await
}

async fn edit_again(
    app: &App,
    visitor: &Visitor,
    id: String,
    fields: ProductFields,
    currency: &str,
    error: &str,
) -> Result<Response, PageError> {
    let action = if id.is_empty() {
        "/admin/products".to_string()
    } else {
        format!("/admin/products/{}", segment(&id))
    };
    render(&ProductEdit {
        chrome: Chrome::new(app, visitor, "Product", None),
        id,
        action,
        fields,
        currency: currency.to_string(),
        categories: categories(app).await,
        stock: String::new(),
        stock_action: String::new(),
        error: error.to_string(),
    })
}

#[derive(Debug, Deserialize)]
pub struct StockForm {
    available: String,
    #[serde(default)]
    back: String,
}

#[derive(Serialize)]
struct SetStock {
    available: i64,
}

/// `POST /admin/stock/{sku}`: set the units available (restock or correct).
pub async fn set_stock(
    State(app): State<App>,
    visitor: Visitor,
    Path(sku): Path<String>,
    PageForm(form): PageForm<StockForm>,
) -> Result<Response, PageError> {
    let user = admin(&visitor, "/admin/products")?;
    let available = form
        .available
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| PageError::BadRequest("Stock is a whole number, 0 or more.".into()))?;
    backend::as_user(&app.backend.inventory, user)
        .send_json::<_, Stock>(
            Method::PUT,
            &format!("/api/inventory/{}", segment(&sku)),
            &SetStock { available },
        )
        .await
        .map_err(|e| PageError::from_call("inventory", e))?;
    let back = super::safe_next(Some(&form.back));
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(Redirect::to(&format!("{back}{sep}n=restocked")).into_response())
}

pub struct OrderRow {
    pub href: String,
    pub number: String,
    pub date: String,
    pub status: &'static str,
    pub status_class: String,
    pub reason: String,
    pub total: String,
}

#[derive(Template)]
#[template(path = "admin/orders.html")]
struct Orders {
    chrome: Chrome,
    rows: Vec<OrderRow>,
    filters: Vec<super::browse::Link>,
    total: i64,
    next: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct OrdersQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    cursor: String,
}

/// `GET /admin/orders?status=&cursor=`: every shopper's orders.
pub async fn orders(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(q): PageQuery<OrdersQuery>,
) -> Result<Response, PageError> {
    let user = admin(&visitor, "/admin/orders")?;
    let page = backend::as_user(&app.backend.orders, user)
        .get_json::<OrderPage>(&with_query(
            "/api/orders",
            [
                ("scope", "all"),
                ("status", q.status.as_str()),
                ("cursor", &q.cursor),
                ("limit", "50"),
            ],
        ))
        .await
        .map_err(|e| match e.status().map(|s| s.as_u16()) {
            Some(400) => PageError::BadRequest("No such status.".into()),
            _ => PageError::from_call("the order service", e),
        })?;
    let filters = ["", "PENDING", "CONFIRMED", "CANCELLED"]
        .iter()
        .map(|s| super::browse::Link {
            label: if s.is_empty() { "All" } else { view::status(s) }.into(),
            count: String::new(),
            href: with_query("/admin/orders", [("status", *s)]),
            selected: q.status == *s,
        })
        .collect();
    let rows = page
        .items
        .iter()
        .map(|o| OrderRow {
            href: format!("/orders/{}", segment(&o.id)),
            number: emporium_contracts::checkout::order_number(&o.id).to_string(),
            date: view::date(&o.created_at),
            status: view::status(&o.status),
            status_class: o.status.to_ascii_lowercase(),
            reason: o.reason.clone().unwrap_or_default(),
            total: view::money(&o.total),
        })
        .collect();
    let next = page
        .next
        .map(|c| {
            with_query(
                "/admin/orders",
                [("status", q.status.as_str()), ("cursor", &c)],
            )
        })
        .unwrap_or_default();
    render(&Orders {
        chrome: Chrome::new(&app, &visitor, "All orders", None),
        rows,
        filters,
        total: page.total,
        next,
    })
}

#[derive(Deserialize)]
struct ModeratedReview {
    id: String,
    product_id: String,
    author: String,
    rating: i64,
    title: String,
    text: String,
    created_at: String,
}

#[derive(Deserialize)]
struct ModerationPage {
    items: Vec<ModeratedReview>,
    next: Option<String>,
}

pub struct ReviewRow {
    pub id: String,
    pub product: String,
    pub author: String,
    pub stars: String,
    pub title: String,
    pub text: String,
    pub date: String,
}

#[derive(Template)]
#[template(path = "admin/reviews.html")]
struct Reviews {
    chrome: Chrome,
    rows: Vec<ReviewRow>,
    next: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct CursorQuery {
    #[serde(default)]
    cursor: String,
    n: Option<String>,
}

/// `GET /admin/reviews`: the newest shown reviews of every product.
pub async fn reviews(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(q): PageQuery<CursorQuery>,
) -> Result<Response, PageError> {
    let user = admin(&visitor, "/admin/reviews")?;
    let page = backend::as_user(&app.backend.reviews, user)
        .get_json::<ModerationPage>(&with_query(
            "/api/reviews",
            [("cursor", q.cursor.as_str()), ("limit", "50")],
        ))
        .await
        .map_err(|e| PageError::from_call("the review service", e))?;
    let rows = page
        .items
        .into_iter()
        .map(|r| ReviewRow {
            stars: view::stars(r.rating as f64),
            date: view::date(&r.created_at),
            product: r.product_id,
            id: r.id,
            author: r.author,
            title: r.title,
            text: r.text,
        })
        .collect();
    render(&Reviews {
        chrome: Chrome::new(&app, &visitor, "Reviews", None)
            .with_notice(admin_notice(q.n.as_deref())),
        rows,
        next: page
            .next
            .map(|c| with_query("/admin/reviews", [("cursor", c.as_str())]))
            .unwrap_or_default(),
    })
}

/// `POST /admin/reviews/{id}/hide`
pub async fn hide_review(
    State(app): State<App>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let user = admin(&visitor, "/admin/reviews")?;
    let hidden = backend::as_user(&app.backend.reviews, user)
        .call_json::<serde_json::Value>(
            Method::POST,
            &format!("/api/reviews/{}/hide", segment(&id)),
        )
        .await;
    match hidden {
        // Hidden already (a double click) is as good.
        Ok(_) => {}
        Err(e) if e.status().is_some_and(|s| s.as_u16() == 409) => {}
        Err(e) => return Err(PageError::from_call("the review service", e)),
    }
    Ok(Redirect::to("/admin/reviews?n=hidden").into_response())
}

pub struct DeadRow {
    pub id: String,
    pub service: String,
    pub instance: String,
    pub kind: String,
    pub subject: String,
    pub error: String,
    pub attempts: i64,
    pub parked: String,
}

#[derive(Template)]
#[template(path = "admin/events.html")]
struct DeadLetters {
    chrome: Chrome,
    rows: Vec<DeadRow>,
    error: String,
    /// Instances that did not answer: their dead letters are not listed.
    unreachable: String,
}

/// `GET /admin/events`: parked events of every running instance.
pub async fn dead_letters(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(q): PageQuery<CursorQuery>,
) -> Result<Response, PageError> {
    admin(&visitor, "/admin/events")?;
    dead_page(&app, &visitor, admin_notice(q.n.as_deref()), String::new()).await
}

async fn dead_page(
    app: &App,
    visitor: &Visitor,
    notice: &str,
    error: String,
) -> Result<Response, PageError> {
    let instances = app.instances().await?;
    let dead = fleet::dead_letters(app.registry()?.clients(), &instances).await;
    let unreachable = dead
        .unreachable
        .iter()
        .map(|i| i.instance_id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let rows = dead
        .answers
        .into_iter()
        .map(|(i, d)| DeadRow {
            id: d.event_id,
            service: i.service,
            instance: i.instance_id,
            kind: d.kind,
            subject: d.subject,
            error: d.error,
            attempts: d.attempts,
            parked: view::date(&d.parked_at),
        })
        .collect();
    render(&DeadLetters {
        chrome: Chrome::new(app, visitor, "Dead letters", None).with_notice(notice),
        rows,
        error,
        unreachable,
    })
}

/// `POST /admin/events/{id}/replay`
pub async fn replay(
    State(app): State<App>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    admin(&visitor, "/admin/events")?;
    let instances = app.instances().await?;
    let error = match fleet::replay(app.registry()?.clients(), &instances, &id).await {
        Replay::Done(..) => return Ok(Redirect::to("/admin/events?n=replayed").into_response()),
        Replay::Failed(i, detail) => format!("{} could not apply it again: {detail}", i.service),
        Replay::Unknown => "No running service holds that event any more.".into(),
    };
    dead_page(&app, &visitor, "", error).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_as_typed() {
        assert_eq!(minor_units("19.99"), Some(1999));
        assert_eq!(minor_units("19.9"), Some(1990));
        assert_eq!(minor_units("19"), Some(1900));
        assert_eq!(minor_units(" 0.05 "), Some(5));
        assert_eq!(minor_units("19.999"), None);
        assert_eq!(minor_units("-1"), None);
        assert_eq!(minor_units("1,5"), None);
        assert_eq!(minor_units(".5"), None);
        assert_eq!(decimal(1999), "19.99");
        assert_eq!(decimal(5), "0.05");
    }
}
