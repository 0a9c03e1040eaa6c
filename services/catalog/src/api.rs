//! catalog's HTTP handlers: parse input into domain types, call the store, map errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::{Json, Router};
use emporium_contracts::auth::ROLE_ADMIN;
use emporium_contracts::events::PriceChanged;
use emporium_contracts::fields;
use emporium_contracts::money::Money;
use emporium_events::{EventsError, Outbox};
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, FieldError, Problem};
use emporium_store::{Db, is_unique_violation, now_ms, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::docs;
use crate::domain::{self, Cursor, ListParams, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, Sku, Sort};
use crate::image;
use crate::store::{self, ProductRow};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub outbox: Outbox,
    /// The shop's currency; every price is in it.
    pub currency: Arc<str>,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Emporium catalog",
    description = "Products, categories and prices"
))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_products, create_product))
        .routes(routes!(get_product, update_product))
        .routes(routes!(get_product_by_sku))
        .routes(routes!(list_categories))
        .routes(routes!(product_image))
}

pub fn router(state: AppState) -> Router {
    let (routes, api) = routes().split_for_parts();
    routes.with_state(state).merge(spec_router(api))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// Where a product's generated image is served.
pub fn image_path(sku: &str) -> String {
    format!("/api/catalog/images/{sku}")
}

/// A product as shoppers see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub description: String,
    /// The category id.
    pub category: String,
    pub price: Money,
    pub image_url: String,
    pub attributes: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
    /// Grows by one with every change.
    pub version: i64,
}

impl From<ProductRow> for ProductView {
    fn from(p: ProductRow) -> Self {
        Self {
            attributes: serde_json::from_str(&p.attributes).unwrap_or_default(),
            price: Money::new(p.price_minor, &p.currency),
            created_at: rfc3339(p.created_at_ms),
            updated_at: rfc3339(p.updated_at_ms),
            version: p.version,
            id: p.id,
            sku: p.sku,
            name: p.name,
            description: p.description,
            category: p.category_id,
            image_url: p.image_url,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductView>,
    /// Products matching the filters, over all pages.
    pub total: i64,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategoryView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub product_count: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CategoryList {
    pub items: Vec<CategoryView>,
}

/// Query of a product listing. Prices are in minor units.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ListQueryDoc {
    /// A category id from `/api/catalog/categories`.
    #[param(schema_with = fields::slug_schema)]
    category: Option<String>,
    #[param(minimum = 0, maximum = 100_000_000)]
    min_price: Option<i64>,
    #[param(minimum = 0, maximum = 100_000_000)]
    max_price: Option<i64>,
    /// `name` (default), `-name`, `price` or `-price`.
    #[param(pattern = "^-?(name|price)$")]
    sort: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// List products: filter by category and price range, sort, page with a cursor.
#[utoipa::path(get, path = "/api/catalog/products", tag = "catalog",
    params(ListQueryDoc),
    responses(
        (status = 200, description = "A page of products", body = ProductPage),
        (status = 400, description = "Invalid query parameters", body = Problem),
    ))]
async fn list_products(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ProductPage>, ApiError> {
    let listing = params.check().map_err(ApiError::invalid_query)?;
    let (mut rows, total) = tokio::try_join!(
        store::list(&state.db, &listing),
        store::count(&state.db, &listing)
    )
    .map_err(ApiError::internal)?;
    let more = rows.len() > listing.limit as usize;
    rows.truncate(listing.limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(
            Cursor {
                sort: listing.sort,
                price: matches!(listing.sort, Sort::PriceAsc | Sort::PriceDesc)
                    .then_some(last.price_minor),
                name: matches!(listing.sort, Sort::NameAsc | Sort::NameDesc)
                    .then(|| last.name.clone()),
                id: last.id.clone(),
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(Json(ProductPage {
        items: rows.into_iter().map(ProductView::from).collect(),
        total,
        next,
    }))
}

fn parse_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::bad_request("the product id must be a UUID"))
}

/// A product by id.
#[utoipa::path(get, path = "/api/catalog/products/{id}", tag = "catalog",
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "Not a UUID", body = Problem),
        (status = 404, description = "No such product", body = Problem),
    ))]
async fn get_product(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProductView>, ApiError> {
    let id = parse_id(&id)?;
    store::by_id(&state.db, &id)
        .await
        .map_err(ApiError::internal)?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::not_found("no product with this id"))
}

/// A product by SKU.
#[utoipa::path(get, path = "/api/catalog/products/sku/{sku}", tag = "catalog",
    params(("sku" = emporium_contracts::sku::Sku, Path, description = "Stock-keeping unit, e.g. ELE-00001")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "Not a SKU", body = Problem),
        (status = 404, description = "No such product", body = Problem),
    ))]
async fn get_product_by_sku(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> Result<Json<ProductView>, ApiError> {
    let sku = Sku::parse(&sku).map_err(|m| ApiError::bad_request(format!("the SKU {m}")))?;
    store::by_sku(&state.db, sku.as_str())
        .await
        .map_err(ApiError::internal)?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::not_found("no product with this SKU"))
}

/// Every category, with how many products it has.
#[utoipa::path(get, path = "/api/catalog/categories", tag = "catalog",
    responses((status = 200, description = "The categories", body = CategoryList)))]
async fn list_categories(State(state): State<AppState>) -> Result<Json<CategoryList>, ApiError> {
    let rows = store::categories(&state.db)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(CategoryList {
        items: rows
            .into_iter()
            .map(|c| CategoryView {
                id: c.id,
                name: c.name,
                description: c.description,
                product_count: c.product_count,
            })
            .collect(),
    }))
}

/// A new product (admin).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(value_type = emporium_contracts::sku::Sku)]
    pub sku: String,
    #[schema(schema_with = fields::line_schema::<200>)]
    pub name: String,
    #[schema(schema_with = fields::required_text_schema::<5000>)]
    pub description: String,
    /// An existing category's id.
    #[schema(schema_with = fields::slug_schema)]
    pub category: String,
    #[schema(schema_with = docs::price)]
    pub price: Money,
    #[serde(default)]
    #[schema(schema_with = docs::image_url)]
    pub image_url: Option<String>,
    #[serde(default)]
    #[schema(schema_with = docs::attributes)]
    pub attributes: BTreeMap<String, String>,
}

/// Changes to a product (admin); absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[schema(schema_with = fields::nullable_line_schema::<200>)]
    pub name: Option<String>,
    #[schema(schema_with = fields::nullable_required_text_schema::<5000>)]
    pub description: Option<String>,
    #[schema(schema_with = docs::nullable_slug)]
    pub category: Option<String>,
    #[schema(schema_with = docs::nullable_price)]
    pub price: Option<Money>,
    #[schema(schema_with = docs::image_url)]
    pub image_url: Option<String>,
    #[schema(schema_with = docs::nullable_attributes)]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// Checks the fields of a product, collecting every error.
struct Checker<'a> {
    state: &'a AppState,
    errors: Vec<FieldError>,
}

impl Checker<'_> {
    fn field<T, E: Into<String>>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|m| self.errors.push(FieldError::new(field, m)))
            .ok()
    }

    fn price(&mut self, price: &Money) -> Option<i64> {
        if price.currency != *self.state.currency {
            self.errors.push(FieldError::new(
                "price.currency",
                format!("must be {}, the shop's currency", self.state.currency),
            ));
            return None;
        }
        self.field("price.amount", domain::check_price(price.amount))
    }

    async fn category(&mut self, id: &str) -> Result<Option<String>, ApiError> {
        let Some(()) = self.field("category", fields::category_id(id)) else {
            return Ok(None);
        };
        if store::category_exists(&self.state.db, id)
            .await
            .map_err(ApiError::internal)?
        {
            Ok(Some(id.to_string()))
        } else {
            self.errors
                .push(FieldError::new("category", "no such category"));
            Ok(None)
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

/// Add a product (admin).
#[utoipa::path(post, path = "/api/catalog/products", tag = "catalog",
    security(("bearer" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "Created", body = ProductView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 403, description = "Not an admin", body = Problem),
        (status = 409, description = "The SKU exists", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
    ))]
async fn create_product(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewProduct>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_role(ROLE_ADMIN)?;
    let mut c = Checker {
        state: &state,
        errors: Vec::new(),
    };
    let sku = c.field("sku", Sku::parse(&new.sku));
    let name = c.field("name", domain::check_text(&new.name, MAX_NAME_CHARS, false));
    let description = c.field(
        "description",
        domain::check_text(&new.description, MAX_DESCRIPTION_CHARS, true),
    );
    let price = c.price(&new.price);
    let image_url = match &new.image_url {
        Some(url) => c.field("image_url", domain::check_image_url(url)),
        None => sku.as_ref().map(|s| image_path(s.as_str())),
    };
    c.field("attributes", domain::check_attributes(&new.attributes));
    let category = c.category(&new.category).await?;
    c.finish()?;
    let (Some(sku), Some(name), Some(description), Some(price), Some(image_url), Some(category)) =
        (sku, name, description, price, image_url, category)
    else {
        return Err(ApiError::internal(std::io::Error::other(
            "checked fields missing",
        )));
    };
    let now = now_ms();
    let row = ProductRow {
        id: uuid::Uuid::now_v7().to_string(),
        sku: sku.as_str().to_string(),
        name,
        description,
        category_id: category,
        price_minor: price,
        currency: state.currency.to_string(),
        image_url,
        attributes: serde_json::to_string(&new.attributes).map_err(ApiError::internal)?,
        created_at_ms: now,
        updated_at_ms: now,
        version: 1,
    };
    match store::insert(&state.db, &state.outbox, &row).await {
        Ok(()) => {}
        Err(EventsError::Db(e)) if is_unique_violation(&e) => {
            return Err(ApiError::conflict("a product with this SKU exists"));
        }
        Err(e) => return Err(ApiError::internal(e)),
    }
    tracing::info!(product_id = %row.id, sku = %row.sku, "product created");
    let location = HeaderValue::from_str(&format!("/api/catalog/products/{}", row.id))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ProductView::from(row)),
    ))
}

/// Change a product (admin).
#[utoipa::path(patch, path = "/api/catalog/products/{id}", tag = "catalog",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Product id")),
    request_body = ProductPatch,
    responses(
        (status = 200, description = "Updated", body = ProductView),
        (status = 401, description = "Not signed in", body = Problem),
        (status = 403, description = "Not an admin", body = Problem),
        (status = 404, description = "No such product", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
    ))]
async fn update_product(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<ProductPatch>,
) -> Result<Json<ProductView>, ApiError> {
    caller.require_role(ROLE_ADMIN)?;
    let id = parse_id(&id)?;
    // Read, change and write in one write transaction: concurrent edits of different
    // fields both survive.
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    let mut row = store::by_id_in(&mut tx, &id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no product with this id"))?;
    let before = row.clone();
    let mut c = Checker {
        state: &state,
        errors: Vec::new(),
    };
    if let Some(name) = &patch.name
        && let Some(v) = c.field("name", domain::check_text(name, MAX_NAME_CHARS, false))
    {
        row.name = v;
    }
    if let Some(d) = &patch.description
        && let Some(v) = c.field(
            "description",
            domain::check_text(d, MAX_DESCRIPTION_CHARS, true),
        )
    {
        row.description = v;
    }
    if let Some(price) = &patch.price
        && let Some(v) = c.price(price)
    {
        row.price_minor = v;
    }
    if let Some(url) = &patch.image_url
        && let Some(v) = c.field("image_url", domain::check_image_url(url))
    {
        row.image_url = v;
    }
    if let Some(attrs) = &patch.attributes
        && c.field("attributes", domain::check_attributes(attrs))
            .is_some()
    {
        row.attributes = serde_json::to_string(attrs).map_err(ApiError::internal)?;
    }
    if let Some(cat) = &patch.category
        && let Some(v) = c.category(cat).await?
    {
        row.category_id = v;
    }
    c.finish()?;
    if store::same_view(&before, &row) {
        // Nothing changes: no new version, no event.
        return Ok(Json(before.into()));
    }
    row.updated_at_ms = now_ms();
    row.version = before.version + 1;
    if !store::update(&mut tx, &row)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("no product with this id"));
    }
    if row.price_minor != before.price_minor {
        let changed = PriceChanged {
            product_id: row.id.clone(),
            sku: row.sku.clone(),
            old_price: before.price_minor,
            new_price: row.price_minor,
            currency: row.currency.clone(),
        };
        state
            .outbox
            .publish(&mut tx, &changed)
            .await
            .map_err(ApiError::internal)?;
    }
    state
        .outbox
        .publish(&mut tx, &store::updated(&row))
        .await
        .map_err(ApiError::internal)?;
    state.outbox.commit(tx).await.map_err(ApiError::internal)?;
    tracing::info!(product_id = %row.id, version = row.version, "product updated");
    Ok(Json(row.into()))
}

/// A generated SVG picture of a product.
#[utoipa::path(get, path = "/api/catalog/images/{sku}", tag = "catalog",
    params(("sku" = emporium_contracts::sku::Sku, Path, description = "Stock-keeping unit")),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml", body = String),
        (status = 400, description = "Not a SKU", body = Problem),
        (status = 404, description = "No such product", body = Problem),
    ))]
async fn product_image(
    State(state): State<AppState>,
    ApiPath(sku): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let sku = Sku::parse(&sku).map_err(|m| ApiError::bad_request(format!("the SKU {m}")))?;
    let product = store::by_sku(&state.db, sku.as_str())
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no product with this SKU"))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        image::svg(&product.name, &product.category_id),
    ))
}
