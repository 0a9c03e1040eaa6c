//! reviews' HTTP handlers: every write appends an event to the review's stream,
//! applies it to the projections and publishes it through the outbox, in one
//! transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emporium_contracts::auth::ROLE_ADMIN;
use emporium_contracts::events::{RatingSummary, ReviewAdded, ReviewChanged, ReviewHidden};
use emporium_contracts::fields;
use emporium_events::Outbox;
use emporium_http::Callers;
use emporium_http::openapi::spec_router;
use emporium_http::{ApiError, ApiJson, ApiPath, ApiQuery, Caller, FieldError, Problem};
use emporium_store::{Db, Tx, rfc3339};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{self, ReviewEvent};
use crate::projection::{self, Replayed};
use crate::store::{self, AppendError};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub outbox: Outbox,
}

#[derive(OpenApi)]
#[openapi(info(
    title = "Emporium reviews",
    description = "Reviews by verified buyers, and products' rating summaries"
))]
struct ApiDoc;

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_reviews, add_review))
        .routes(routes!(summary))
        .routes(routes!(edit_review))
        .routes(routes!(hide_review))
}

pub fn router(state: AppState) -> Router {
    let (routes, api) = routes().split_for_parts();
    // `emporium reviews rebuild`: the operator's.
    let internal = Router::new()
        .route("/internal/reviews/rebuild", post(rebuild))
        .callers(&[]);
    routes
        .merge(internal)
        .with_state(state)
        .merge(spec_router(api))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// A review as shoppers see it: the reviewer by display name only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct ReviewView {
    pub id: String,
    pub product_id: String,
    /// The reviewer's display name.
    pub author: String,
    pub rating: i64,
    pub title: String,
    /// Plain text: show it as text, never as HTML.
    pub text: String,
    #[sqlx(skip)]
    pub created_at: String,
    #[sqlx(skip)]
    pub updated_at: String,
    /// Send it back to edit: an edit of an older version is refused (409).
    pub version: i64,
    #[serde(skip)]
    pub created_ms: i64,
    #[serde(skip)]
    pub updated_ms: i64,
}

impl ReviewView {
    fn dated(mut self) -> Self {
        self.created_at = rfc3339(self.created_ms);
        self.updated_at = rfc3339(self.updated_ms);
        self
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewPage {
    pub items: Vec<ReviewView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    #[schema(schema_with = fields::uuid_schema)]
    pub product_id: String,
    /// 1 to 5 stars.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i64,
    /// 1 to 120 characters.
    #[schema(schema_with = fields::line_schema::<120>)]
    pub title: String,
    /// Up to 4,000 characters.
    #[serde(default)]
    #[schema(schema_with = fields::text_schema::<4000>)]
    pub text: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewEdit {
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i64,
    #[schema(schema_with = fields::line_schema::<120>)]
    pub title: String,
    #[serde(default)]
    #[schema(schema_with = fields::text_schema::<4000>)]
    pub text: String,
    /// The version you read: refused with 409 if the review changed since.
    pub version: i64,
}

/// A product's rating.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SummaryView {
    pub product_id: String,
    pub count: i64,
    /// Stars, to two decimals; 0 without reviews.
    pub average: f64,
    /// Reviews with 1, 2, 3, 4 and 5 stars.
    pub histogram: [i64; 5],
    /// Grows by one with every change of this product's rating.
    pub version: i64,
}

impl From<RatingSummary> for SummaryView {
    fn from(s: RatingSummary) -> Self {
        Self {
            product_id: s.product_id,
            count: s.count,
            average: s.average,
            histogram: s.histogram,
            version: s.version,
        }
    }
}

fn parse_uuid(field: &str, id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::validation(vec![FieldError::new(field, "must be a UUID")]))
}

/// A review id from the path: one that is not a UUID names no review.
fn path_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::not_found("no review with this id"))
}

fn appended(e: AppendError) -> ApiError {
    match e {
        AppendError::Conflict { expected } => ApiError::new(
            StatusCode::CONFLICT,
            "version_conflict",
            format!("the review changed since version {expected}; read it again and retry"),
        ),
        AppendError::Db(e) => ApiError::internal(e),
    }
}

/// Write a review of a product you bought.
#[utoipa::path(post, path = "/api/reviews", tag = "reviews", request_body = NewReview,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The review", body = ReviewView),
        (status = 403, description = "Not a buyer of this product", body = Problem),
        (status = 409, description = "You already reviewed this product", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
    ))]
async fn add_review(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewReview>,
) -> Result<(StatusCode, Json<ReviewView>), ApiError> {
    let product_id = parse_uuid("product_id", &new.product_id)?;
    let content = domain::check(new.rating, &new.title, &new.text).map_err(ApiError::validation)?;
    let user_id = caller.user_id.to_string();
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    let bought: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM purchases WHERE user_id = $1 AND product_id = $2")
            .bind(&user_id)
            .bind(&product_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(ApiError::internal)?;
    if bought.is_none() {
        return Err(ApiError::forbidden(
            "only a buyer of this product may review it (its order must be confirmed)",
        ));
    }
    let author: Option<(String,)> = sqlx::query_as("SELECT name FROM reviewers WHERE user_id = $1")
        .bind(&user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(ApiError::internal)?;
    let id = domain::review_id(&product_id, &user_id);
    let event = ReviewEvent::Added {
        product_id: product_id.clone(),
        user_id,
        author: author.map_or_else(|| "A shopper".to_string(), |(name,)| name),
        rating: content.rating,
        title: content.title,
        text: content.text,
    };
    let stored = match store::append(&mut tx, &id, 0, &event).await {
        Ok(stored) => stored,
        Err(AppendError::Conflict { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_reviewed",
                format!("you already reviewed this product: edit review {id} instead"),
            ));
        }
        Err(e) => return Err(appended(e)),
    };
    let applied = projection::apply(&mut tx, &stored)
        .await
        .map_err(ApiError::internal)?;
    let published = ReviewAdded {
        review_id: id.clone(),
        product_id,
        rating: applied.rating,
        summary: applied.summary,
    };
    state
        .outbox
        .publish(&mut tx, &published)
        .await
        .map_err(ApiError::internal)?;
    let view = view_in(&mut tx, &id).await?;
    state.outbox.commit(tx).await.map_err(ApiError::internal)?;
    tracing::info!(review_id = %id, "review added");
    Ok((StatusCode::CREATED, Json(view)))
}

/// Edit your own review.
#[utoipa::path(put, path = "/api/reviews/{id}", tag = "reviews", request_body = ReviewEdit,
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Review id")),
    responses(
        (status = 200, description = "The review", body = ReviewView),
        (status = 404, description = "No such review of yours", body = Problem),
        (status = 409, description = "Changed since the version sent, or hidden", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem),
    ))]
async fn edit_review(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(edit): ApiJson<ReviewEdit>,
) -> Result<Json<ReviewView>, ApiError> {
    let id = path_id(&id)?;
    let content =
        domain::check(edit.rating, &edit.title, &edit.text).map_err(ApiError::validation)?;
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    let owner: Option<(String, i64)> =
        sqlx::query_as("SELECT user_id, hidden FROM reviews WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(ApiError::internal)?;
    match owner {
        Some((user, _)) if user != caller.user_id.to_string() => {
            // Someone else's review is none of yours: not even its existence.
            return Err(ApiError::not_found("no review of yours with this id"));
        }
        None => return Err(ApiError::not_found("no review of yours with this id")),
        Some((_, hidden)) if hidden != 0 => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "review_hidden",
                "this review was hidden by a moderator and cannot be edited",
            ));
        }
        Some(_) => {}
    }
    let event = ReviewEvent::Changed {
        rating: content.rating,
        title: content.title,
        text: content.text,
    };
    let stored = store::append(&mut tx, &id, edit.version, &event)
        .await
        .map_err(appended)?;
    let applied = projection::apply(&mut tx, &stored)
        .await
        .map_err(ApiError::internal)?;
    let published = ReviewChanged {
        review_id: id.clone(),
        product_id: applied.product_id,
        rating: applied.rating,
        summary: applied.summary,
    };
    state
        .outbox
        .publish(&mut tx, &published)
        .await
        .map_err(ApiError::internal)?;
    let view = view_in(&mut tx, &id).await?;
    state.outbox.commit(tx).await.map_err(ApiError::internal)?;
    Ok(Json(view))
}

/// Hide a review (admin): it is no longer shown or counted.
#[utoipa::path(post, path = "/api/reviews/{id}/hide", tag = "reviews",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Review id")),
    responses(
        (status = 200, description = "The product's rating without it", body = SummaryView),
        (status = 403, description = "Not an admin", body = Problem),
        (status = 404, description = "No such review", body = Problem),
    ))]
async fn hide_review(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SummaryView>, ApiError> {
    caller.require_role(ROLE_ADMIN)?;
    let id = path_id(&id)?;
    let mut tx = state.db.begin().await.map_err(ApiError::internal)?;
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT product_id, hidden FROM reviews WHERE id = $1")
            .bind(&id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(ApiError::internal)?;
    let Some((product_id, hidden)) = row else {
        return Err(ApiError::not_found("no review with this id"));
    };
    if hidden != 0 {
        // Already hidden: nothing changes.
        drop(tx);
        let summary = projection::summary(&state.db, &product_id)
            .await
            .map_err(ApiError::internal)?;
        return Ok(Json(summary.into()));
    }
    let version = store::version_of(&mut tx, &id)
        .await
        .map_err(ApiError::internal)?;
    let event = ReviewEvent::Hidden {
        by: caller.user_id.to_string(),
    };
    let stored = store::append(&mut tx, &id, version, &event)
        .await
        .map_err(appended)?;
    let applied = projection::apply(&mut tx, &stored)
        .await
        .map_err(ApiError::internal)?;
    let published = ReviewHidden {
        review_id: id.clone(),
        product_id,
        summary: applied.summary.clone(),
    };
    state
        .outbox
        .publish(&mut tx, &published)
        .await
        .map_err(ApiError::internal)?;
    state.outbox.commit(tx).await.map_err(ApiError::internal)?;
    tracing::info!(review_id = %id, "review hidden");
    Ok(Json(applied.summary.into()))
}

async fn view_in(tx: &mut Tx, id: &str) -> Result<ReviewView, ApiError> {
    let view: ReviewView = sqlx::query_as(
        "SELECT id, product_id, author, rating, title, text, version, created_ms, updated_ms \
         FROM reviews WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await
    .map_err(ApiError::internal)?;
    Ok(view.dated())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// The product; required but for admins, who may list every product's.
    #[param(value_type = Option<uuid::Uuid>)]
    product_id: Option<String>,
    /// `recent` (default) or `rating` (highest first).
    #[param(pattern = "^(recent|rating)$")]
    sort: Option<String>,
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next` of the previous page.
    cursor: Option<String>,
}

/// Where a page ended.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    s: String,
    r: i64,
    c: i64,
    i: String,
}

/// A product's shown reviews, newest or best first.
#[utoipa::path(get, path = "/api/reviews", tag = "reviews", params(ListParams),
    responses(
        (status = 200, description = "A page of reviews", body = ReviewPage),
        (status = 400, description = "Invalid query parameters", body = Problem),
    ))]
async fn list_reviews(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiQuery(q): ApiQuery<ListParams>,
) -> Result<Json<ReviewPage>, ApiError> {
    let mut errors = Vec::new();
    // Every product's reviews at once is for moderators: an empty id matches all.
    let moderator = Caller::from_headers(&headers).is_some_and(|c| c.has_role(ROLE_ADMIN));
    let product_id = match q.product_id.as_deref().map(uuid::Uuid::parse_str) {
        Some(Ok(id)) => id.to_string(),
        Some(Err(_)) => {
            errors.push(FieldError::new("product_id", "must be a UUID"));
            String::new()
        }
        None if moderator => String::new(),
        None => {
            errors.push(FieldError::new("product_id", "is required"));
            String::new()
        }
    };
    let sort = q.sort.unwrap_or_else(|| "recent".into());
    if sort != "recent" && sort != "rating" {
        errors.push(FieldError::new("sort", "must be recent or rating"));
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        errors.push(FieldError::new("limit", "must be 1 to 100"));
    }
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => {
            let cursor = URL_SAFE_NO_PAD
                .decode(raw.as_bytes())
                .ok()
                .and_then(|b| serde_json::from_slice::<Cursor>(&b).ok());
            match cursor {
                Some(c) if c.s == sort => Some(c),
                _ => {
                    errors.push(FieldError::new("cursor", "is not a cursor of this listing"));
                    None
                }
            }
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_query(errors));
    }
    // Keyset pages: (created, id) newest first, or (rating, created, id) best first.
    let created = after.as_ref().map(|c| c.c);
    let id = after.as_ref().map(|c| c.i.clone());
    // Four fixed statements rather than `$1 = '' OR ...`, which would keep SQLite
    // from using the product index on the product page's listing.
    let sql = match (sort == "rating", product_id.is_empty()) {
        (true, false) => {
            "SELECT id, product_id, author, rating, title, text, version, created_ms, updated_ms \
             FROM reviews WHERE product_id = $1 AND hidden = 0 \
               AND ($2 IS NULL OR (rating, created_ms, id) < ($2, $3, $4)) \
             ORDER BY rating DESC, created_ms DESC, id DESC LIMIT $5"
        }
        (true, true) => {
            "SELECT id, product_id, author, rating, title, text, version, created_ms, updated_ms \
             FROM reviews WHERE $1 = '' AND hidden = 0 \
               AND ($2 IS NULL OR (rating, created_ms, id) < ($2, $3, $4)) \
             ORDER BY rating DESC, created_ms DESC, id DESC LIMIT $5"
        }
        (false, false) => {
            "SELECT id, product_id, author, rating, title, text, version, created_ms, updated_ms \
             FROM reviews WHERE product_id = $1 AND hidden = 0 \
               AND ($2 IS NULL OR (created_ms, id) < ($2, $3)) \
             ORDER BY created_ms DESC, id DESC LIMIT $4"
        }
        (false, true) => {
            "SELECT id, product_id, author, rating, title, text, version, created_ms, updated_ms \
             FROM reviews WHERE $1 = '' AND hidden = 0 \
               AND ($2 IS NULL OR (created_ms, id) < ($2, $3)) \
             ORDER BY created_ms DESC, id DESC LIMIT $4"
        }
    };
    let mut query = sqlx::query_as::<_, ReviewView>(sql).bind(&product_id);
    if sort == "rating" {
        query = query.bind(after.as_ref().map(|c| c.r));
    }
    let mut rows = query
        .bind(created)
        .bind(id)
        .bind(i64::from(limit) + 1)
        .fetch_all(state.db.pool())
        .await
        .map_err(ApiError::internal)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => {
            let cursor = Cursor {
                s: sort,
                r: last.rating,
                c: last.created_ms,
                i: last.id.clone(),
            };
            Some(URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default()))
        }
        _ => None,
    };
    Ok(Json(ReviewPage {
        items: rows.into_iter().map(ReviewView::dated).collect(),
        next,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SummaryParams {
    /// The product.
    #[param(value_type = uuid::Uuid)]
    product_id: String,
}

/// A product's rating: count, average and histogram of its shown reviews.
#[utoipa::path(get, path = "/api/reviews/summary", tag = "reviews", params(SummaryParams),
    responses(
        (status = 200, description = "The rating", body = SummaryView),
        (status = 400, description = "Invalid query parameters", body = Problem),
    ))]
async fn summary(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SummaryParams>,
) -> Result<Json<SummaryView>, ApiError> {
    let product_id = uuid::Uuid::parse_str(&q.product_id)
        .map_err(|_| {
            ApiError::invalid_query(vec![FieldError::new("product_id", "must be a UUID")])
        })?
        .to_string();
    projection::summary(&state.db, &product_id)
        .await
        .map(|s| Json(s.into()))
        .map_err(ApiError::internal)
}

/// Rebuilds the projections from the event store (`emporium reviews rebuild`).
async fn rebuild(State(state): State<AppState>) -> Result<Json<Replayed>, ApiError> {
    projection::rebuild(&state.db)
        .await
        .map(Json)
        .map_err(|e| ApiError::internal(e.context("rebuilding the projections")))
}
