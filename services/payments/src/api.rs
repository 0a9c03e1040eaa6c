//! payments' internal API, called by the orders saga; each call keyed by order id.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use emporium_contracts::checkout::paths;
use emporium_contracts::checkout::{AuthorizeRequest, Payment};
use emporium_http::Callers;
use emporium_http::{ApiError, ApiJson, ApiPath, FieldError};

use crate::ledger::{Ledger, LedgerError};

pub fn router(ledger: Ledger) -> Router {
    // `emporium verify`: the operator alone.
    let audit = Router::new()
        .route("/internal/payments/audit", get(crate::audit::audit))
        .callers(&[])
        .with_state(ledger.db.clone());
    Router::new()
        .route(paths::PAYMENT, get(get_payment))
        .route(paths::AUTHORIZATION, put(authorize))
        .route(paths::CAPTURE, post(capture))
        .route(paths::CANCEL, post(cancel))
        // The saga's steps: orders alone moves money.
        .callers(&["orders"])
        .with_state(ledger)
        .merge(audit)
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::NotFound => ApiError::not_found(e.to_string()),
            LedgerError::InProgress => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "in_progress",
                e.to_string(),
            ),
            LedgerError::InvalidState(_) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "invalid_state",
                e.to_string(),
            ),
            // The saga decides when to ask again (and records it): a Retry-After
            // longer than a client's backoff sends the answer back to it rather
            // than into the client's own retries.
            LedgerError::Processor(_) => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "processor_unavailable",
                e.to_string(),
            )
            .with_header(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            ),
            LedgerError::Db(source) => ApiError::internal(source),
        }
    }
}

async fn get_payment(
    State(ledger): State<Ledger>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Payment>, ApiError> {
    Ok(Json(ledger.get(&order_id).await?))
}

async fn authorize(
    State(ledger): State<Ledger>,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(request): ApiJson<AuthorizeRequest>,
) -> Result<Json<Payment>, ApiError> {
    let mut errors = Vec::new();
    if request.amount <= 0 {
        errors.push(FieldError::new("amount", "must be more than 0"));
    }
    if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError::new("currency", "must be an ISO 4217 code"));
    }
    let summary = FieldError::collect(
        request.card.validate(emporium_store::year_month_utc()),
        &mut errors,
    );
    let Some(summary) = summary.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let payment = detached(async move {
        ledger
            .authorize(
                &order_id,
                request.amount,
                &request.currency,
                &request.card,
                &summary,
                request.capture,
            )
            .await
    })
    .await?;
    Ok(Json(payment))
}

async fn capture(
    State(ledger): State<Ledger>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Payment>, ApiError> {
    Ok(Json(
        detached(async move { ledger.capture(&order_id).await }).await?,
    ))
}

async fn cancel(
    State(ledger): State<Ledger>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Payment>, ApiError> {
    Ok(Json(
        detached(async move { ledger.cancel(&order_id).await }).await?,
    ))
}

/// Runs a ledger operation to its end even if the caller goes away (it gave up,
/// or a hedged copy of its call answered first): one cut off between the
/// processor's answer and the write that records it would leave the payment
/// `authorizing` until it is stale.
async fn detached<F>(work: F) -> Result<Payment, ApiError>
where
    F: Future<Output = Result<Payment, LedgerError>> + Send + 'static,
{
    let ctx = emporium_http::context::current();
    let work = async move {
        match ctx {
            Some(ctx) => emporium_http::context::scope(ctx, work).await,
            None => work.await,
        }
    };
    // Its log lines stay in the request's span (its trace id).
    emporium_telemetry::identity::spawn(tracing::Instrument::instrument(
        work,
        tracing::Span::current(),
    ))
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from)
}
