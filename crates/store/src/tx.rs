//! [`Tx`]: a write transaction that is also a span of the current trace.

use std::ops::{Deref, DerefMut};

use emporium_telemetry::context;
use emporium_telemetry::trace::{Kind, Span};
use sqlx::AnyConnection;
use sqlx::{Any, Transaction};
use tokio::sync::OwnedSemaphorePermit;

use crate::Backend;

/// A write transaction on a service's database.
///
/// It dereferences to the connection, so `&mut *tx` is an executor as with sqlx's
/// own transaction. Inside traced work (a request, an event, a saga step) it is a
/// `db.transaction` span from when it is open to `COMMIT` or rollback; elsewhere (background
/// loops) it starts no trace.
pub struct Tx {
    inner: Transaction<'static, Any>,
    span: TxSpan,
    /// The event types published in it, each once (see [`Tx::note_published`]).
    published: Vec<&'static str>,
    /// SQLite: this process's write turn, given back when the transaction ends.
    _turn: Option<OwnedSemaphorePermit>,
}

/// The span of a transaction still open. One dropped without commit or rollback (an
/// error on the way) is rolled back by sqlx; its span says so.
struct TxSpan(Option<Span>);

impl Drop for TxSpan {
    fn drop(&mut self) {
        if let Some(span) = &mut self.0 {
            span.set_attribute("db.outcome", "dropped");
        }
    }
}

impl Tx {
    pub(crate) fn new(
        inner: Transaction<'static, Any>,
        backend: Backend,
        turn: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let span = context::current_trace().map(|parent| {
            let mut span = Span::start("db.transaction", Kind::Internal, Some(&parent));
            span.set_attribute(
                "db.system.name",
                match backend {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgresql",
                },
            );
            span
        });
        Self {
            inner,
            span: TxSpan(span),
            published: Vec::new(),
            _turn: turn,
        }
    }

    /// Records that an event of type `kind` was published in this transaction. The
    /// outbox calls it, so that whoever commits can wake only the feed readers that
    /// wait for those types.
    pub fn note_published(&mut self, kind: &'static str) {
        if !self.published.contains(&kind) {
            self.published.push(kind);
        }
    }

    /// The event types published in this transaction so far; empties the record.
    pub fn take_published(&mut self) -> Vec<&'static str> {
        std::mem::take(&mut self.published)
    }

    /// Commits; the span ends with the outcome. A transaction that published events
    /// is committed by the outbox (`Outbox::commit`), which wakes their readers.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        debug_assert!(
            self.published.is_empty(),
            "events of {:?} published: commit through the outbox, or their readers wait for the next re-read",
            self.published
        );
        let result = self.inner.commit().await;
        if let Some(mut span) = self.span.0.take() {
            match &result {
                Ok(()) => span.set_attribute("db.outcome", "commit"),
                Err(e) => span.set_error(e.to_string()),
            }
        }
        result
    }

    /// Rolls back; the span ends marked as rolled back.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        if let Some(mut span) = self.span.0.take() {
            span.set_attribute("db.outcome", "rollback");
        }
        self.inner.rollback().await
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}
