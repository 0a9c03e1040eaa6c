//! [`Tx`]: a write transaction that is also a span of the current trace.

use std::ops::{Deref, DerefMut};

use emporium_telemetry::context;
use emporium_telemetry::trace::{Kind, Span};
use sqlx::AnyConnection;
use sqlx::any::AnyArguments;
use sqlx::{Any, Transaction};

use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, Either, Executor};

use crate::Backend;
use crate::batch::{Batch, Parts};
use crate::queue::Turn;

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
    backend: Backend,
    /// SQLite: this process's write turn, given back when the transaction ends.
    _turn: Option<Turn>,
}

/// The span of a transaction still open. One dropped without commit or rollback (an
/// error on the way) is rolled back by sqlx; its span says so.
pub(crate) struct TxSpan(pub(crate) Option<Span>);

impl TxSpan {
    /// A `db.transaction` span, inside traced work only.
    pub(crate) fn start(backend: Backend) -> Self {
        Self(context::current_trace().map(|parent| {
            let mut span = Span::start("db.transaction", Kind::Internal, Some(&parent));
            span.set_attribute(
                "db.system.name",
                match backend {
                    Backend::Sqlite => "sqlite",
                    Backend::Postgres => "postgresql",
                },
            );
            span
        }))
    }

    /// Ends the span with the transaction's outcome.
    pub(crate) fn end(&mut self, outcome: Result<&'static str, String>) {
        if let Some(mut span) = self.0.take() {
            match outcome {
                Ok(outcome) => span.set_attribute("db.outcome", outcome),
                Err(e) => span.set_error(e),
            }
        }
    }
}

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
        turn: Option<Turn>,
    ) -> Self {
        Self {
            inner,
            span: TxSpan::start(backend),
            published: Vec::new(),
            backend,
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

    /// A batch of statements for this transaction (see [`Batch`]).
    pub fn batch(&self) -> Batch {
        Batch::new(self.backend)
    }

    /// Runs `batch` in this transaction (on SQLite in one round trip); answers how
    /// many rows each statement changed, in the order they were pushed. A failed
    /// statement stops the batch: the caller drops or rolls back the transaction.
    pub async fn run(&mut self, mut batch: Batch) -> Result<Vec<u64>, sqlx::Error> {
        if !batch.required.is_empty() {
            return Err(conditional_batch());
        }
        let published = std::mem::take(&mut batch.published);
        let changed = match batch.into_parts()? {
            Parts::Joined {
                sql,
                args,
                statements,
                ..
            } => {
                if statements == 0 {
                    return Ok(Vec::new());
                }
                let query = sqlx::query_with(AssertSqlSafe(sql), args);
                let mut answers = (&mut *self.inner).fetch_many(query);
                let mut changed = Vec::with_capacity(statements);
                while let Some(answer) = answers.try_next().await? {
                    if let Either::Left(done) = answer {
                        changed.push(done.rows_affected());
                    }
                }
                if changed.len() != statements {
                    return Err(sqlx::Error::Protocol(format!(
                        "a batch of {statements} statements answered for {}",
                        changed.len()
                    )));
                }
                changed
            }
            // Nothing is required, so every statement runs and answers.
            Parts::Each { statements, .. } => self
                .run_each(statements, &[])
                .await?
                .ok_or_else(conditional_batch)?,
        };
        for kind in published {
            self.note_published(kind);
        }
        Ok(changed)
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
        self.span.end(
            result
                .as_ref()
                .map(|()| "commit")
                .map_err(|e| e.to_string()),
        );
        result
    }

    /// Rolls back; the span ends marked as rolled back.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.span.end(Ok("rollback"));
        self.inner.rollback().await
    }
}

impl Tx {
    /// Runs statements one after another (a batch on PostgreSQL); answers how many
    /// rows each changed, or `None` as soon as one of those at the `required`
    /// positions did not change exactly one (the rest are not run).
    pub(crate) async fn run_each(
        &mut self,
        statements: Vec<(&'static str, AnyArguments)>,
        required: &[usize],
    ) -> Result<Option<Vec<u64>>, sqlx::Error> {
        let mut changed = Vec::with_capacity(statements.len());
        for (at, (sql, args)) in statements.into_iter().enumerate() {
            let done = sqlx::query_with(sql, args)
                .execute(&mut *self.inner)
                .await?;
            if required.contains(&at) && done.rows_affected() != 1 {
                return Ok(None);
            }
            changed.push(done.rows_affected());
        }
        Ok(Some(changed))
    }
}

fn conditional_batch() -> sqlx::Error {
    sqlx::Error::Protocol("a batch with required statements runs with Db::write".into())
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
