//! [`Db::write`]: a [`Batch`] as a transaction of its own — on SQLite `BEGIN
//! IMMEDIATE`, the statements and `COMMIT` in one round trip.
//!
//! A [`crate::Tx`] makes at least three trips to the connection's thread while it
//! holds the write slot (`BEGIN`, its statements, `COMMIT`), and under load each
//! trip waits for a core (see `batch.rs`). A write that needs no answer before it
//! commits can go in one. Whether it commits may still depend on what a statement
//! did ([`Batch::require_one`]): the check runs in SQL right after it and stops the
//! batch there, and only then a second trip rolls back.
//!
//! The transaction is begun by the query string rather than by sqlx, so sqlx does
//! not know it is open: this module ends it on every path. A failure after `BEGIN`
//! rolls back before the connection goes back to the pool; a connection whose
//! state is unknown (a failed `BEGIN`, a string sqlx ran only in part, a rollback
//! that failed, a write abandoned half way when the caller's future is dropped) is
//! closed instead, and SQLite rolls back whatever it left open.
//!
//! On PostgreSQL the statements run one by one in a [`crate::Tx`], which stops
//! and rolls back at the first required statement that moved no row.
//!
//! On SQLite these writes keep one connection of the pool between them
//! ([`KeptConnection`]) instead of taking whichever is idle. In WAL mode a
//! connection drops its whole page cache when another connection has written since
//! its last transaction; pooled connections taking turns at writing re-read the
//! pages of the tables they write (copies from the kernel's page cache) while the
//! writer holds the write slot. The kept connection sees only its own writes in
//! between (and the step-by-step transactions'), so its cache stays warm.

use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use sqlx::error::ErrorKind;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AssertSqlSafe, Either, Executor};

use crate::batch::{GUARD_CLEAR, Parts};
use crate::tx::TxSpan;
use crate::{Batch, Db};

/// What a committed [`Db::write`] did.
#[derive(Debug)]
pub struct Written {
    /// Rows changed by each statement, in the order pushed.
    pub changed: Vec<u64>,
    /// The event types it published (for the outbox to wake their readers).
    pub published: Vec<&'static str>,
}

/// One answer of a joined write, in the order SQLite gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Begin,
    Statement,
    /// The check after a statement that must change one row.
    Guard,
    ClearGuards,
    Commit,
}

impl Db {
    /// A batch for [`Db::write`].
    pub fn batch(&self) -> Batch {
        Batch::new(self.backend)
    }

    /// Runs `batch` as a transaction of its own and commits it; or, when a statement
    /// it requires to change one row ([`Batch::require_one`]) did not, undoes it all
    /// and answers `None`. On SQLite it waits its turn for the write slot, as
    /// [`Db::begin`] does, and holds it for one round trip.
    pub async fn write(&self, mut batch: Batch) -> Result<Option<Written>, sqlx::Error> {
        let published = std::mem::take(&mut batch.published);
        let changed = match batch.into_parts()? {
            Parts::Joined {
                sql,
                args,
                statements,
                required,
            } => self.write_joined(sql, args, statements, &required).await?,
            Parts::Each {
                statements,
                required,
            } => {
                let mut tx = self.begin().await?;
                match tx.run_each(statements, &required).await? {
                    Some(changed) => {
                        tx.commit().await?;
                        Some(changed)
                    }
                    None => {
                        tx.rollback().await?;
                        None
                    }
                }
            }
        };
        Ok(changed.map(|changed| Written { changed, published }))
    }

    async fn write_joined(
        &self,
        sql: String,
        args: sqlx::any::AnyArguments,
        statements: usize,
        required: &[usize],
    ) -> Result<Option<Vec<u64>>, sqlx::Error> {
        let mut answers = Vec::with_capacity(statements + required.len() + 3);
        answers.push(Answer::Begin);
        for at in 0..statements {
            answers.push(Answer::Statement);
            if required.contains(&at) {
                answers.push(Answer::Guard);
            }
        }
        let mut text = String::with_capacity(sql.len() + 64);
        text.push_str("BEGIN IMMEDIATE;\n");
        text.push_str(&sql);
        if !required.is_empty() {
            answers.push(Answer::ClearGuards);
            text.push_str(";\n");
            text.push_str(GUARD_CLEAR);
        }
        answers.push(Answer::Commit);
        text.push_str(";\nCOMMIT");

        let _turn = match &self.writer {
            Some(queue) => queue.turn().await,
            None => None,
        };
        let mut span = TxSpan::start(self.backend);
        let kept = self.kept.as_ref().and_then(|kept| kept.take());
        let conn = match kept {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        let mut open = Open {
            conn: Some(conn),
            released: false,
            kept: self.kept.clone(),
        };
        let mut changed = Vec::with_capacity(statements);
        let mut answered = 0;
        let failure = {
            let query = sqlx::query_with(AssertSqlSafe(text), args);
            let mut stream = open.conn()?.fetch_many(query);
            loop {
                match stream.try_next().await {
                    Ok(Some(Either::Left(done))) => {
                        if answers.get(answered) == Some(&Answer::Statement) {
                            changed.push(done.rows_affected());
                        }
                        answered += 1;
                    }
                    Ok(Some(Either::Right(_row))) => {}
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            }
        };
        match failure {
            None if answered == answers.len() => {
                span.end(Ok("commit"));
                open.release();
                Ok(Some(changed))
            }
            // Fewer answers than statements: sqlx ran only part of the string, and
            // the transaction may be open. Closing the connection ends it.
            None => {
                span.end(Err("a joined write ran in part".into()));
                Err(sqlx::Error::Protocol(format!(
                    "a joined write of {} statements answered for {answered}",
                    answers.len()
                )))
            }
            // BEGIN failed (the database stayed busy): the connection is closed,
            // not pooled, in case what failed it was a transaction left open.
            Some(e) if answered == 0 => {
                span.end(Err(e.to_string()));
                Err(e)
            }
            Some(e) => {
                // Stopped by the check after a required statement, and by nothing
                // else (a missing table or no memory there is a failure).
                let guard = answers.get(answered) == Some(&Answer::Guard)
                    && e.as_database_error().map(|d| d.kind()) == Some(ErrorKind::CheckViolation);
                if open.conn()?.execute("ROLLBACK").await.is_err() {
                    span.end(Err(e.to_string()));
                    return Err(e);
                }
                open.release();
                if guard {
                    span.end(Ok("rollback"));
                    Ok(None)
                } else {
                    span.end(Err(e.to_string()));
                    Err(e)
                }
            }
        }
    }
}

/// A pooled connection that may hold a transaction sqlx does not know of: kept for
/// the next write (or back to the pool) only when [`Open::release`]d, closed
/// otherwise.
struct Open {
    conn: Option<PoolConnection<Any>>,
    released: bool,
    kept: Option<Arc<KeptConnection>>,
}

impl Open {
    /// The connection, which is there until the write is dropped.
    fn conn(&mut self) -> Result<&mut sqlx::AnyConnection, sqlx::Error> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| sqlx::Error::Protocol("a write without its connection".into()))
    }

    /// The transaction ended: the connection may serve again.
    fn release(mut self) {
        self.released = true;
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.released {
            // Closed instead of pooled: SQLite rolls back on close, and the pool
            // opens a replacement when it needs one (the next write takes one).
            conn.close_on_drop();
        } else if let Some(kept) = &self.kept {
            kept.keep(conn);
        }
    }
}

/// SQLite: the connection [`Db::write`] keeps between writes (see the module
/// header). The holder of the write slot takes it, or a writer that went on
/// without a turn (the queue's wait ran out) if it is idle then; one at a time,
/// and whoever finds it taken uses the pool.
#[derive(Default)]
pub(crate) struct KeptConnection(Mutex<Option<PoolConnection<Any>>>);

impl KeptConnection {
    fn take(&self) -> Option<PoolConnection<Any>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn keep(&self, conn: PoolConnection<Any>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
    }
}

impl std::fmt::Debug for KeptConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeptConnection")
    }
}
