//! The feed transport's producer side: the outbox served as an ordered feed.
//!
//! `GET /internal/events?after=SEQ&limit=N&wait=MS` answers the events after `SEQ` in
//! commit order. With nothing new and `wait` > 0 it holds the request until a commit
//! wakes it (or `wait`, capped by the request's deadline, runs out).
//!
//! `&types=A,B` answers only events of those types (what the reader handles), so
//! an event nobody there handles is neither sent nor waited for; the page's
//! `through` then says how far it covers, and the reader's cursor moves past the
//! events it was not sent. The head is read before the events, and only events at
//! or below it are answered: everything at or below the head has committed
//! (publishers commit in sequence order, see [`crate::outbox`]), so `through` never
//! passes an event still to come.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use emporium_http::{ApiError, ApiQuery, FieldError};
use emporium_store::Db;
use serde::Deserialize;
use tokio::sync::watch;

use crate::envelope::FeedPage;
use crate::outbox::{Outbox, OutboxRow, envelope_of};

pub const MAX_LIMIT: u32 = 1_000;
pub const MAX_WAIT_MS: u64 = 30_000;
/// A long poll also re-reads this often, in case a commit happened without a wake
/// (another process writing the same database).
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(crate) struct FeedState {
    pub service: &'static str,
    pub db: Db,
    pub outbox: Outbox,
    /// True once the server is shutting down.
    pub closing: watch::Receiver<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: u32,
    #[serde(default)]
    wait: u64,
    /// Comma-separated event types; all of them when absent.
    types: Option<String>,
}

/// At most this many types in one filter.
const MAX_TYPES: usize = 32;

/// The `types` filter: event type names (letters, digits, `.`, `_`, `-`).
fn parse_types(text: &str) -> Result<Vec<String>, String> {
    let types: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    if types.is_empty() {
        return Err("must name at least one event type".into());
    }
    if types.len() > MAX_TYPES {
        return Err(format!("must name at most {MAX_TYPES} event types"));
    }
    if let Some(bad) = types.iter().find(|t| {
        t.len() > 100
            || !t
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    }) {
        return Err(format!("`{bad}` is not an event type"));
    }
    Ok(types)
}

fn default_limit() -> u32 {
    100
}

pub(crate) fn router(state: FeedState) -> Router {
    Router::new()
        .route("/internal/events", get(feed))
        .with_state(state)
}

async fn feed(
    State(state): State<FeedState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> Result<Json<FeedPage>, ApiError> {
    let mut errors = Vec::new();
    if q.after < 0 {
        errors.push(FieldError::new("after", "must be 0 or more"));
    }
    if !(1..=MAX_LIMIT).contains(&q.limit) {
        errors.push(FieldError::new(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    if q.wait > MAX_WAIT_MS {
        errors.push(FieldError::new(
            "wait",
            format!("must be at most {MAX_WAIT_MS}"),
        ));
    }
    let types = match q.types.as_deref().map(parse_types) {
        None => None,
        Some(Ok(types)) => Some(types),
        Some(Err(why)) => {
            errors.push(FieldError::new("types", why));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid_query(errors));
    }
    // Answer a little before the caller's deadline rather than time out.
    let budget = emporium_http::context::current().map_or(Duration::MAX, |c| {
        c.remaining().saturating_sub(Duration::from_millis(200))
    });
    let until = tokio::time::Instant::now() + Duration::from_millis(q.wait).min(budget);
    let mut commits = state.outbox.subscribe();
    let mut closing = state.closing.clone();
    let mut closed = false;
    // A filtered pass that found nothing of its types up to the head it read:
    // later passes of the long poll need not scan those rows again.
    let mut from = q.after;
    loop {
        let seen = commits.borrow_and_update().seen(types.as_deref());
        let (events, head, pruned) = match &types {
            None => read(&state, q.after, q.limit).await?,
            Some(types) => read_types(&state, from, q.limit, types).await?,
        };
        if !events.is_empty() || tokio::time::Instant::now() >= until || closed || *closing.borrow()
        {
            let through = types.as_ref().map(|_| {
                // A full page may stop short of the head.
                match events.last() {
                    Some(last) if events.len() >= q.limit as usize => last.seq,
                    _ => head,
                }
            });
            let pruned = match pruned {
                Some(pruned) => pruned,
                None => crate::retention::pruned_through(&state.db)
                    .await
                    .map_err(ApiError::internal)?,
            };
            return Ok(Json(FeedPage {
                events,
                head,
                pruned,
                through,
            }));
        }
        if types.is_some() {
            from = from.max(head);
        }
        let recheck = (tokio::time::Instant::now() + RECHECK).min(until);
        // Only a commit that published one of the poll's types wakes it.
        tokio::select! {
            _ = commits.wait_for(|c| c.seen(types.as_deref()) != seen) => {}
            changed = closing.changed() => closed = changed.is_err(),
            () = tokio::time::sleep_until(recheck) => {}
        }
    }
}

/// The events after `after` (at most `limit`), the head, and how far the outbox was
/// pruned — all read after the events, so a prune racing the read shows.
async fn read(
    state: &FeedState,
    after: i64,
    limit: u32,
) -> Result<(Vec<crate::FeedEvent>, i64, Option<i64>), ApiError> {
    let rows: Vec<OutboxRow> = sqlx::query_as(
        "SELECT seq, id, type, subject, time_ms, traceparent, data FROM outbox \
         WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(state.db.pool())
    .await
    .map_err(ApiError::internal)?;
    let (head, pruned) = head_and_pruned(&state.db)
        .await
        .map_err(ApiError::internal)?;
    let head = rows.last().map_or(head, |last| last.seq.max(head));
    Ok((envelopes(state, rows), head, Some(pruned)))
}

/// An outbox row with how far the outbox was pruned, read by the same statement.
#[derive(sqlx::FromRow)]
struct TypedRow {
    #[sqlx(flatten)]
    row: OutboxRow,
    pruned: i64,
}

/// The events of `types` after `after` and at or below the head read first (at
/// most `limit`), that head, and how far the outbox was pruned when the events
/// were read (`None` when there were none: the caller reads it if it needs it).
async fn read_types(
    state: &FeedState,
    after: i64,
    limit: u32,
    types: &[String],
) -> Result<(Vec<crate::FeedEvent>, i64, Option<i64>), ApiError> {
    let head = head(&state.db).await.map_err(ApiError::internal)?;
    if head <= after {
        return Ok((Vec::new(), head, None));
    }
    let placeholders: Vec<String> = (0..types.len()).map(|i| format!("${}", i + 4)).collect();
    // The scalar subquery is read in the statement's snapshot, with the rows.
    let sql = format!(
        "SELECT seq, id, type, subject, time_ms, traceparent, data, \
         (SELECT COALESCE(MAX(through), 0) FROM outbox_pruned) AS pruned FROM outbox \
         WHERE seq > $1 AND seq <= $2 AND type IN ({}) ORDER BY seq LIMIT $3",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, TypedRow>(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(head)
        .bind(i64::from(limit));
    for t in types {
        query = query.bind(t);
    }
    let rows = query
        .fetch_all(state.db.pool())
        .await
        .map_err(ApiError::internal)?;
    let pruned = rows.first().map(|r| r.pruned);
    let rows = rows.into_iter().map(|r| r.row).collect();
    Ok((envelopes(state, rows), head, pruned))
}

fn envelopes(state: &FeedState, rows: Vec<OutboxRow>) -> Vec<crate::FeedEvent> {
    rows.into_iter()
        .map(|r| envelope_of(state.service, r))
        .collect()
}

/// The newest sequence number in the outbox (0 when it never held one; after
/// pruning, at least the last pruned one).
pub(crate) async fn head(db: &Db) -> Result<i64, sqlx::Error> {
    Ok(head_and_pruned(db).await?.0)
}

/// The head and how far the outbox was pruned, in one statement.
async fn head_and_pruned(db: &Db) -> Result<(i64, i64), sqlx::Error> {
    let (head, pruned): (i64, i64) = sqlx::query_as(
        "SELECT CASE WHEN o.a > p.b THEN o.a ELSE p.b END, p.b \
         FROM (SELECT COALESCE(MAX(seq), 0) AS a FROM outbox) o, \
              (SELECT COALESCE(MAX(through), 0) AS b FROM outbox_pruned) p",
    )
    .fetch_one(db.pool())
    .await?;
    Ok((head, pruned))
}
