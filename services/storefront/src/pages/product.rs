//! A product page: picture, price, description, attributes, stock, the rating and
//! reviews (paged), and the review form for signed-in shoppers (reviews accepts
//! buyers only). Stock and reviews come from their own services; either one down
//! leaves a note and the rest of the page, and the add button, working.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{App, Chrome, PageForm, PageQuery, cart_of, notice, render};
use crate::backend::{
    self, NewReview, Product, ReviewPage, Stock, Summary, get, segment, with_query,
};
use crate::error::{PageError, Section};
use crate::session::Visitor;
use crate::view;

/// Most units one cart line takes (cart's rule).
const MAX_QUANTITY: i64 = 99;

pub struct ReviewCard {
    pub author: String,
    pub stars: String,
    pub rating: i64,
    pub title: String,
    pub text: String,
    pub date: String,
}

pub struct Rating {
    pub stars: String,
    pub average: String,
    pub count: i64,
    /// `(stars, reviews, percent of all)`, five stars first.
    pub bars: Vec<(usize, i64, i64)>,
}

#[derive(Template)]
#[template(path = "product.html")]
struct ProductPageView {
    chrome: Chrome,
    product: Product,
    href: String,
    price: String,
    attributes: Vec<(String, String)>,
    stock_class: &'static str,
    stock_text: String,
    can_add: bool,
    max_quantity: i64,
    /// The add form's idempotency key: one per page made.
    add_key: String,
    rating: Section<Rating>,
    reviews: Section<Vec<ReviewCard>>,
    more_reviews: String,
    signed_in: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct ProductQuery {
    /// The reviews page to show.
    reviews: Option<String>,
    n: Option<String>,
}

/// `GET /products/{sku}`
pub async fn show(
    State(app): State<App>,
    visitor: Visitor,
    Path(sku): Path<String>,
    PageQuery(query): PageQuery<ProductQuery>,
) -> Result<Response, PageError> {
    let b = &app.backend;
    let (product, stock, cart) = tokio::join!(
        get::<Product>(
            b.catalog.clone(),
            format!("/api/catalog/products/sku/{}", segment(&sku)),
        ),
        get::<Stock>(
            b.inventory.clone(),
            format!("/api/inventory/{}", segment(&sku)),
        ),
        cart_of(&app, &visitor),
    );
    let product = product.map_err(|e| PageError::from_call("the catalog", e))?;
    let limit = app.settings.reviews_per_page.to_string();
    let cursor = query.reviews.clone().unwrap_or_default();
    let (summary, list) = tokio::join!(
        get::<Summary>(
            b.reviews.clone(),
            with_query(
                "/api/reviews/summary",
                [("product_id", product.id.as_str())]
            ),
        ),
        get::<ReviewPage>(
            b.reviews.clone(),
            with_query(
                "/api/reviews",
                [
                    ("product_id", product.id.as_str()),
                    ("limit", &limit),
                    ("cursor", &cursor),
                ],
            ),
        ),
    );
    // A SKU inventory has not heard of yet is "unknown", as when it is down.
    let available = match &stock {
        Ok(s) => Some(s.available),
        Err(e) => {
            tracing::debug!(error = %e, "stock unknown");
            None
        }
    };
    let (stock_class, stock_text) = view::stock(available);
    let href = format!("/products/{}", segment(&product.sku));
    let more_reviews = match &list {
        Ok(ReviewPage { next: Some(c), .. }) => {
            format!("{}#reviews", with_query(&href, [("reviews", c.as_str())]))
        }
        _ => String::new(),
    };
    let rating = Section::from(
        "Ratings are unavailable right now.",
        summary.map(|s| {
            let total = s.count.max(1);
            Rating {
                stars: view::stars(s.average),
                average: view::average(s.average),
                count: s.count,
                bars: (1..=5)
                    .rev()
                    .map(|stars| {
                        let n = s.histogram[stars - 1];
                        (stars, n, n * 100 / total)
                    })
                    .collect(),
            }
        }),
    );
    let reviews = Section::from(
        "Reviews are unavailable right now.",
        list.map(|page| {
            page.items
                .into_iter()
                .map(|r| ReviewCard {
                    stars: view::stars(r.rating as f64),
                    rating: r.rating,
                    date: view::date(&r.created_at),
                    author: r.author,
                    title: r.title,
                    text: r.text,
                })
                .collect()
        }),
    );
    let page = ProductPageView {
        chrome: Chrome::new(&app, &visitor, &product.name, cart.as_ref())
            .with_notice(review_notice(query.n.as_deref())),
        price: view::money(&product.price),
        attributes: product
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        can_add: available.is_none_or(|n| n > 0),
        max_quantity: available.map_or(MAX_QUANTITY, |n| n.clamp(1, MAX_QUANTITY)),
        add_key: uuid::Uuid::new_v4().to_string(),
        stock_class,
        stock_text,
        rating,
        reviews,
        more_reviews,
        signed_in: visitor.user.is_some(),
        href,
        product,
    };
    render(&page)
}

fn review_notice(code: Option<&str>) -> &'static str {
    match code {
        Some("not-buyer") => {
            "Only shoppers who bought this product can review it, once the order is confirmed."
        }
        Some("already-reviewed") => "You have already reviewed this product.",
        Some("review-invalid") => {
            "A review needs 1 to 5 stars, a title (up to 120 characters) and at most 4,000 \
             characters of text."
        }
        other => notice(other),
    }
}

#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    rating: i64,
    title: String,
    #[serde(default)]
    text: String,
}

/// `POST /products/{sku}/reviews`: write a review, then back to the product.
pub async fn review(
    State(app): State<App>,
    visitor: Visitor,
    Path(sku): Path<String>,
    PageForm(form): PageForm<ReviewForm>,
) -> Result<Response, PageError> {
    let href = format!("/products/{}", segment(&sku));
    let user = visitor.require(&href)?;
    let product = app
        .backend
        .catalog
        .get_json::<Product>(&format!("/api/catalog/products/sku/{}", segment(&sku)))
        .await
        .map_err(|e| PageError::from_call("the catalog", e))?;
    let sent = backend::as_user(&app.backend.reviews, user)
        .send_json::<_, serde_json::Value>(
            http::Method::POST,
            "/api/reviews",
            &NewReview {
                product_id: &product.id,
                rating: form.rating,
                title: form.title.trim(),
                text: &super::paragraphs(&form.text),
            },
        )
        .await;
    let code = match sent {
        Ok(_) => "reviewed",
        Err(e) => match (e.status().map(|s| s.as_u16()), e.problem_code()) {
            (Some(403), _) => "not-buyer",
            (Some(409), _) => "already-reviewed",
            (Some(422 | 400), _) => "review-invalid",
            _ => return Err(PageError::from_call("reviews", e)),
        },
    };
    Ok(Redirect::to(&format!("{}#reviews", with_query(&href, [("n", code)]))).into_response())
}
