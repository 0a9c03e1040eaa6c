//! [`Db::write`]: a [`Batch`] as a transaction (on SQLite, shared with the writes
//! waiting beside it: group.rs) — on SQLite `BEGIN
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

use crate::batch::{GUARD_CLEAR, Parts, renumber};
use crate::group::{Job, Outcome};
use crate::tx::TxSpan;
use crate::{Batch, Db};
use sqlx::any::AnyArguments;

/// What a committed [`Db::write`] did.
#[derive(Debug)]
pub struct Written {
    /// Rows changed by each statement, in the order pushed.
    pub changed: Vec<u64>,
    /// The event types it published (for the outbox to wake their readers).
    pub published: Vec<&'static str>,
}

/// Records how long a [`Db::write`] took as its caller waited for it when dropped:
/// when it is answered, or when the caller gives up on it (a request past its
/// deadline, the case that matters under overload).
struct Timed {
    started: std::time::Instant,
    class: &'static str,
}

impl Timed {
    fn start() -> Self {
        Self {
            started: std::time::Instant::now(),
            class: crate::queue::class(emporium_telemetry::context::is_admitted()),
        }
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        emporium_telemetry::metrics::histogram!("emporium_store_write_seconds", "class" => self.class)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// One answer of a joined write, in the order SQLite gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Answer {
    Begin,
    /// A write's savepoint in a group, and its release.
    Savepoint,
    Release,
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

    /// Runs `batch` as a transaction and commits it; or, when a statement it
    /// requires to change one row ([`Batch::require_one`]) did not, undoes it all
    /// and answers `None`. On SQLite it waits its turn for the write slot, as
    /// [`Db::begin`] does, and holds it for one round trip — together with the
    /// other writes waiting then, each undone or committed as if alone (group.rs).
    pub async fn write(&self, batch: Batch) -> Result<Option<Written>, sqlx::Error> {
        let _timed = Timed::start();
        self.write_now(batch).await
    }

    async fn write_now(&self, mut batch: Batch) -> Result<Option<Written>, sqlx::Error> {
        let published = std::mem::take(&mut batch.published);
        let changed = match batch.into_parts()? {
            Parts::Joined {
                sql,
                args,
                statements,
                required,
            } => self.write_joined(sql, args, statements, required).await?,
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
        required: Vec<usize>,
    ) -> Result<Option<Vec<u64>>, sqlx::Error> {
        let job = Job {
            sql,
            args,
            statements,
            required,
        };
        // The span of a grouped write covers its wait in the list; of one alone,
        // as of a `Tx`, the transaction from when it has the slot.
        let (outcome, mut span) = match (&self.writer, &self.group) {
            (Some(queue), Some(group)) if group.max > 1 => {
                let span = TxSpan::start(self.backend);
                (self.write_in_group(queue, group, job).await, span)
            }
            (queue, _) => {
                let _turn = match queue {
                    Some(queue) => queue.turn().await,
                    None => None,
                };
                let span = TxSpan::start(self.backend);
                let outcome = self.run_jobs(vec![job]).await.pop();
                let outcome =
                    outcome.unwrap_or_else(|| Err(sqlx::Error::Protocol("a write not run".into())));
                (outcome, span)
            }
        };
        span.end(match &outcome {
            Ok(Some(_)) => Ok("commit"),
            Ok(None) => Ok("rollback"),
            Err(e) => Err(e.to_string()),
        });
        outcome
    }

    /// Runs `jobs` in one transaction (the caller holds the write slot) and answers
    /// each, in order. Several jobs: each in a savepoint, so one that fails or whose
    /// required statement moved no row is undone alone and the rest go on (in a
    /// further trip, since SQLite stops the string at the failure).
    pub(crate) async fn run_jobs(&self, jobs: Vec<Job>) -> Vec<Outcome> {
        let n = jobs.len();
        let mut outcomes: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        let savepoints = n > 1;
        let kept = self.kept.as_ref().and_then(|kept| kept.take());
        let conn = match kept {
            Some(conn) => Ok(conn),
            None => self.pool.acquire().await,
        };
        let mut open = match conn {
            Ok(conn) => Open {
                conn: Some(conn),
                released: false,
                kept: self.kept.clone(),
            },
            Err(e) => return fail_group(n, None, e),
        };
        let guarded = jobs.iter().any(|job| !job.required.is_empty());
        let mut changed: Vec<Vec<u64>> = jobs
            .iter()
            .map(|job| Vec::with_capacity(job.statements))
            .collect();
        let mut next = 0;
        let mut begun = false;
        loop {
            let (text, args, answers) = trip(&jobs[next..], next, begun, savepoints, guarded);
            let mut answered = 0;
            let failure = {
                let query = sqlx::query_with(AssertSqlSafe(text), args).persistent(!savepoints);
                let conn = match open.conn() {
                    Ok(conn) => conn,
                    Err(e) => return fail_group(n, None, e),
                };
                let mut stream = conn.fetch_many(query);
                loop {
                    match stream.try_next().await {
                        Ok(Some(Either::Left(done))) => {
                            if let Some((job, Answer::Statement)) = answers.get(answered) {
                                changed[*job].push(done.rows_affected());
                            }
                            answered += 1;
                        }
                        Ok(Some(Either::Right(_row))) => {}
                        Ok(None) => break None,
                        Err(e) => break Some(e),
                    }
                }
            };
            let Some(e) = failure else {
                if answered == answers.len() {
                    open.release();
                    for (outcome, changed) in outcomes.iter_mut().zip(changed) {
                        outcome.get_or_insert(Ok(Some(changed)));
                    }
                    return outcomes.into_iter().flatten().collect();
                }
                // Fewer answers than statements: sqlx ran only part of the string,
                // and the transaction may be open. Closing the connection ends it.
                let e = sqlx::Error::Protocol(format!(
                    "a joined write of {} statements answered for {answered}",
                    answers.len()
                ));
                return fail_group(n, None, e);
            };
            match answers.get(answered) {
                // Only an error of the database says that SQLite stopped the string
                // at this statement; any other (a value it could not convert) may
                // come after it ran further, even past COMMIT: nothing is known.
                Some(&(job, _)) if e.as_database_error().is_none() => {
                    return fail_group(n, Some(job).filter(|&job| job < n), e);
                }
                // A job's own statement (or its savepoint) failed: that job is undone.
                Some(&(job, what)) if job < n => {
                    // Stopped by the check after a required statement, and by nothing
                    // else (a missing table or no memory there is a failure).
                    let guard = what == Answer::Guard
                        && e.as_database_error().map(|d| d.kind())
                            == Some(ErrorKind::CheckViolation);
                    let undo = match savepoints {
                        true => "ROLLBACK TO emporium_write; RELEASE emporium_write",
                        false => "ROLLBACK",
                    };
                    let undone = match open.conn() {
                        Ok(conn) => conn.execute(undo).await.is_ok(),
                        Err(_) => false,
                    };
                    if !undone {
                        // The transaction's state is unknown (SQLite may have rolled
                        // it all back): no write of the group is answered committed.
                        return fail_group(n, Some(job), e);
                    }
                    outcomes[job] = Some(if guard { Ok(None) } else { Err(e) });
                    if !savepoints {
                        open.release();
                        return outcomes.into_iter().flatten().collect();
                    }
                    next = job + 1;
                    begun = true;
                }
                // BEGIN failed (the database stayed busy): the connection is closed,
                // not pooled, in case what failed it was a transaction left open.
                Some((_, Answer::Begin)) | None => return fail_group(n, None, e),
                // The guards' clearing or COMMIT: nothing of the group is written.
                Some(_) => {
                    if let Ok(conn) = open.conn()
                        && conn.execute("ROLLBACK").await.is_ok()
                    {
                        open.release();
                    }
                    return fail_group(n, None, e);
                }
            }
        }
    }
}

/// One trip of a group: `BEGIN` on the first, the jobs from `first` on (each in a
/// savepoint when `savepoints`), the guards' clearing, `COMMIT`; with each answer's
/// job (its index in the group; past the jobs for the group's own statements).
fn trip(
    jobs: &[Job],
    first: usize,
    begun: bool,
    savepoints: bool,
    guarded: bool,
) -> (String, AnyArguments, Vec<(usize, Answer)>) {
    let group = usize::MAX;
    let mut text = String::with_capacity(jobs.iter().map(|j| j.sql.len() + 64).sum::<usize>() + 64);
    let mut args = AnyArguments::default();
    let mut answers = Vec::new();
    if !begun {
        text.push_str("BEGIN IMMEDIATE;\n");
        answers.push((group, Answer::Begin));
    }
    for (at, job) in jobs.iter().enumerate() {
        let index = first + at;
        if job.statements == 0 {
            continue;
        }
        if savepoints {
            text.push_str("SAVEPOINT emporium_write;\n");
            answers.push((index, Answer::Savepoint));
        }
        renumber(&job.sql, args.values.0.len(), &mut text);
        text.push_str(";\n");
        args.values.0.extend(job.args.values.0.iter().cloned());
        for statement in 0..job.statements {
            answers.push((index, Answer::Statement));
            if job.required.contains(&statement) {
                answers.push((index, Answer::Guard));
            }
        }
        if savepoints {
            text.push_str("RELEASE emporium_write;\n");
            answers.push((index, Answer::Release));
        }
    }
    if guarded {
        text.push_str(GUARD_CLEAR);
        text.push_str(";\n");
        answers.push((group, Answer::ClearGuards));
    }
    text.push_str("COMMIT");
    answers.push((group, Answer::Commit));
    (text, args, answers)
}

/// The group failed as a whole (its `BEGIN` or `COMMIT`, or a failure that left its
/// transaction's state unknown): nothing of it is written, so every write gets an
/// error, also one already undone or failed on its own (what it met may have been
/// an earlier write of the group: a duplicate of a key that is now not there).
/// `culprit`, the write whose statement failed, gets that error; the others an
/// error naming it. A write alone gets the error as it is.
fn fail_group(n: usize, culprit: Option<usize>, e: sqlx::Error) -> Vec<Outcome> {
    let text = e.to_string();
    let mut e = Some(e);
    (0..n)
        .map(|job| {
            if (n == 1 || culprit == Some(job))
                && let Some(e) = e.take()
            {
                return Err(e);
            }
            Err(sqlx::Error::Protocol(format!(
                "the write's group failed, nothing of it written: {text}"
            )))
        })
        .collect()
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
