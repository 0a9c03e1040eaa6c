//! The services behind the pages, called directly as a trusted backend-for-frontend.
//!
//! One typed client per service; calls made for a signed-in shopper carry their
//! identity in the headers the gateway would set ([`Backend::as_user`]). The answers
//! are read with the types below: each holds only the fields a page shows (a
//! tolerant reader), so a service adding a field never breaks a page.

use std::collections::BTreeMap;

use emporium_client::{ClientError, RegistryClient, ServiceClient};
use emporium_contracts::headers;
use emporium_contracts::money::Money;
use emporium_http::Caller;
use http::{HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

/// A client per service the pages use.
#[derive(Clone)]
pub struct Backend {
    pub users: ServiceClient,
    pub catalog: ServiceClient,
    pub inventory: ServiceClient,
    pub cart: ServiceClient,
    pub orders: ServiceClient,
    pub search: ServiceClient,
    pub reviews: ServiceClient,
    pub notifications: ServiceClient,
    /// For the ops console and dead letters: every instance.
    pub registry: Option<RegistryClient>,
}

impl Backend {
    /// Clients for each service; `registry` with the storefront's own clients
    /// (the instances it asks present its certificate).
    pub fn new(client: impl Fn(&str) -> ServiceClient, registry: Option<RegistryClient>) -> Self {
        Self {
            registry,
            users: client("users"),
            catalog: client("catalog"),
            inventory: client("inventory"),
            cart: client("cart"),
            orders: client("orders"),
            search: client("search"),
            reviews: client("reviews"),
            notifications: client("notifications"),
        }
    }
}

/// `client`, acting for `caller`: the identity headers the services trust.
pub fn as_user(client: &ServiceClient, caller: &Caller) -> ServiceClient {
    let mut identity = http::HeaderMap::new();
    caller.write_to(&mut identity);
    identity.iter().fold(client.clone(), |c, (name, value)| {
        c.with_header(name.clone(), value.clone())
    })
}

/// The path `base?query` with `pairs` encoded as a query string (empty values left
/// out).
pub fn with_query<'a>(base: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if !v.is_empty() {
            q.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{base}?{}", q.finish())
    } else {
        base.to_string()
    }
}

pub use emporium_client::path_segment as segment;

// ---- users

#[derive(Debug, Serialize)]
pub struct Credentials<'a> {
    pub email: &'a str,
    pub password: &'a str,
}

#[derive(Debug, Serialize)]
pub struct Registration<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub name: &'a str,
}

#[derive(Debug, Deserialize)]
pub struct Token {
    pub access_token: String,
    pub expires_in: u64,
    #[serde(default)]
    pub refresh_token: String,
    #[serde(default)]
    pub refresh_expires_in: u64,
}

/// A refresh token, to exchange or to end its session.
#[derive(Debug, Serialize)]
pub struct Refresh<'a> {
    pub refresh_token: &'a str,
}

/// A one-time link's token, from a mail.
#[derive(Debug, Serialize)]
pub struct EmailLink<'a> {
    pub token: &'a str,
}

#[derive(Debug, Serialize)]
pub struct ResetAsk<'a> {
    pub email: &'a str,
}

#[derive(Debug, Serialize)]
pub struct NewPassword<'a> {
    pub token: &'a str,
    pub password: &'a str,
}

/// `client`, passing on the address of the shopper the gateway saw (users slows
/// down failed sign-ins per address).
pub fn from_client(client: &ServiceClient, ip: Option<&str>) -> ServiceClient {
    match ip.and_then(|ip| HeaderValue::from_str(ip).ok()) {
        Some(ip) => client
            .clone()
            .with_header(HeaderName::from_static(headers::CLIENT_IP), ip),
        None => client.clone(),
    }
}

#[derive(Debug, Deserialize)]
pub struct Account {
    pub name: String,
}

// ---- catalog and inventory

#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Money,
    pub image_url: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub total: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Category {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub product_count: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Categories {
    pub items: Vec<Category>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stock {
    pub available: i64,
}

// ---- search

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rating {
    #[serde(default)]
    pub count: i64,
    #[serde(default)]
    pub average: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Hit {
    pub sku: String,
    pub name: String,
    pub price: Money,
    pub image_url: String,
    #[serde(default)]
    pub rating: Rating,
    /// `in_stock`, `low`, `sold_out` or `unknown`.
    #[serde(default)]
    pub stock: String,
    #[serde(default)]
    pub snippet: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PriceBand {
    pub min: i64,
    pub max: Option<i64>,
    pub count: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RatingBand {
    pub min: u8,
    pub count: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Facets {
    #[serde(default)]
    pub category: BTreeMap<String, usize>,
    #[serde(default)]
    pub price: Vec<PriceBand>,
    #[serde(default)]
    pub rating: Vec<RatingBand>,
    #[serde(default)]
    pub in_stock: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchPage {
    pub items: Vec<Hit>,
    pub total: usize,
    #[serde(default)]
    pub facets: Facets,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Suggestions {
    pub items: Vec<String>,
}

// ---- reviews

#[derive(Debug, Clone, Deserialize)]
pub struct Review {
    pub author: String,
    pub rating: i64,
    pub title: String,
    pub text: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReviewPage {
    pub items: Vec<Review>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Summary {
    pub count: i64,
    pub average: f64,
    pub histogram: [i64; 5],
}

#[derive(Debug, Serialize)]
pub struct NewReview<'a> {
    pub product_id: &'a str,
    pub rating: i64,
    pub title: &'a str,
    pub text: &'a str,
}

// ---- cart

#[derive(Debug, Clone, Deserialize)]
pub struct CartLine {
    pub sku: String,
    pub name: String,
    pub unit_price: Money,
    pub quantity: i64,
    pub line_total: Money,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cart {
    pub items: Vec<CartLine>,
    pub item_count: i64,
    pub total: Option<Money>,
}

#[derive(Debug, Serialize)]
pub struct AddItem<'a> {
    pub sku: &'a str,
    pub quantity: i64,
}

#[derive(Debug, Serialize)]
pub struct SetQuantity {
    pub quantity: i64,
}

// ---- orders

#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    pub sku: String,
    pub name: String,
    pub unit_price: Money,
    pub quantity: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimelineEntry {
    pub at: String,
    pub event: String,
    #[serde(default)]
    pub detail: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: String,
    pub status: String,
    pub reason: Option<String>,
    pub total: Money,
    pub lines: Vec<OrderLine>,
    pub shipping_address: Address,
    pub card: CardSummary,
    pub created_at: String,
    #[serde(default)]
    pub timeline: Option<Vec<TimelineEntry>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub total: i64,
    pub next: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CardInput {
    pub number: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub cvc: String,
}

#[derive(Debug, Serialize)]
pub struct Checkout {
    pub card: CardInput,
    pub shipping_address: Address,
}

// ---- notifications

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub subject: String,
    pub body: String,
    pub status: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Messages {
    pub items: Vec<Message>,
}

/// `GET path` on `client`, both owned: for calls made side by side (`join!`).
pub async fn get<T: serde::de::DeserializeOwned>(
    client: ServiceClient,
    path: String,
) -> Result<T, ClientError> {
    client.get_json(&path).await
}

/// A `POST` of `body` as JSON with an `Idempotency-Key`.
pub async fn post_keyed<B: Serialize, T: serde::de::DeserializeOwned>(
    client: &ServiceClient,
    path: &str,
    key: &str,
    body: &B,
) -> Result<T, ClientError> {
    let client = match HeaderValue::from_str(key) {
        Ok(v) => client
            .clone()
            .with_header(HeaderName::from_static(headers::IDEMPOTENCY_KEY), v),
        Err(_) => client.clone(),
    };
    client.send_json(Method::POST, path, body).await
}
