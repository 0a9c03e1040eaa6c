//! The event store: append-only review streams, with optimistic concurrency.

use emporium_store::{Tx, is_unique_violation, now_ms};

use crate::domain::ReviewEvent;

/// One stored event.
#[derive(Debug, Clone)]
pub struct Stored {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    pub event: ReviewEvent,
    pub recorded_ms: i64,
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream is not at the version the writer read: someone else wrote first.
    #[error("the review changed since version {expected}")]
    Conflict { expected: i64 },
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

/// The version a stream is at (0: it does not exist).
pub async fn version_of(tx: &mut Tx, stream_id: &str) -> Result<i64, sqlx::Error> {
    let (v,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(version) FROM review_events WHERE stream_id = $1")
            .bind(stream_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(v.unwrap_or(0))
}

/// Appends `event` to `stream_id` as version `expected + 1`; refused when the stream
/// is not at `expected` (the unique (stream, version) makes a race lose too).
pub async fn append(
    tx: &mut Tx,
    stream_id: &str,
    expected: i64,
    event: &ReviewEvent,
) -> Result<Stored, AppendError> {
    if version_of(tx, stream_id).await? != expected {
        return Err(AppendError::Conflict { expected });
    }
    let recorded_ms = now_ms();
    let data = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let inserted: Result<(i64,), sqlx::Error> = sqlx::query_as(
        "INSERT INTO review_events (stream_id, version, type, data, recorded_ms) \
         VALUES ($1, $2, $3, $4, $5) RETURNING position",
    )
    .bind(stream_id)
    .bind(expected + 1)
    .bind(event.kind())
    .bind(data)
    .bind(recorded_ms)
    .fetch_one(&mut **tx)
    .await;
    match inserted {
        Ok((position,)) => Ok(Stored {
            position,
            stream_id: stream_id.to_string(),
            version: expected + 1,
            event: event.clone(),
            recorded_ms,
        }),
        Err(e) if is_unique_violation(&e) => Err(AppendError::Conflict { expected }),
        Err(e) => Err(e.into()),
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    position: i64,
    stream_id: String,
    version: i64,
    data: String,
    recorded_ms: i64,
}

/// Events after `position`, in order, at most `limit`.
pub async fn read_after(
    tx: &mut Tx,
    position: i64,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT position, stream_id, version, data, recorded_ms FROM review_events \
         WHERE position > $1 ORDER BY position LIMIT $2",
    )
    .bind(position)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|r| {
            let event =
                serde_json::from_str(&r.data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok(Stored {
                position: r.position,
                stream_id: r.stream_id,
                version: r.version,
                event,
                recorded_ms: r.recorded_ms,
            })
        })
        .collect()
}

/// The newest position in the store (0 when empty).
pub async fn head(tx: &mut Tx) -> Result<i64, sqlx::Error> {
    let (p,): (Option<i64>,) = sqlx::query_as("SELECT MAX(position) FROM review_events")
        .fetch_one(&mut **tx)
        .await?;
    Ok(p.unwrap_or(0))
}
