//! Group commit: on SQLite, [`Db::write`]s queued for the file's write slot share
//! one transaction.
//!
//! However short a write's statements, holding the slot costs a hand-off to the
//! connection's thread and back, and `BEGIN`/`COMMIT` with their locks and WAL
//! frames; under load each hand-off waits for a core. At three times checkout
//! saturation cart held its slot 1.34 ms per write and was busy 96% of the time,
//! and a new add waited 18.6 ms for it (docs/benchmarks.md): the slot, not the
//! cores, bounded what the shop confirmed. So a write does not wait for the slot
//! alone: it puts itself in the queue's list first. Whoever gets the slot takes its
//! own write and up to `max - 1` others waiting (admitted work first, as the queue
//! orders them), runs them in one transaction and commits once; the others are
//! answered by it. Each write is a savepoint of that transaction: one whose
//! required statement moved no row ([`crate::Batch::require_one`]) or whose
//! statement failed is rolled back to its savepoint and answered as it would be
//! alone, and the rest go on. No write is answered before the group ends, and none
//! as committed before the group's `COMMIT` is; when the group fails as a whole
//! (its `COMMIT`, or a failure that leaves its state unknown), every write of it
//! gets an error, also one that was undone on its own: what it met may have been
//! an earlier write of the group, now not written.
//!
//! A group of several runs in a task of its own, so a caller that gives up (a
//! request past its deadline) cannot stop the others' writes half way; a write
//! whose caller gave up while it waited is not taken. A write that found no one
//! else waiting runs in the caller's task, as without groups, and holds its
//! statement cached: a group's query string is new each time and is not cached.
//!
//! The state a write sees is the one it would see alone: those before it in the
//! group have run (and are committed with it), as they would have before it in
//! the queue.

use std::collections::VecDeque;
use std::sync::Mutex;

use emporium_telemetry::metrics;
use sqlx::any::AnyArguments;
use tokio::sync::oneshot;

use crate::Db;
use crate::queue::WriteQueue;

/// What a write answers: rows changed per statement, or `None` when undone.
pub(crate) type Outcome = Result<Option<Vec<u64>>, sqlx::Error>;

/// One write's statements, joined as [`crate::Batch`] made them.
pub(crate) struct Job {
    pub(crate) sql: String,
    pub(crate) args: AnyArguments,
    pub(crate) statements: usize,
    pub(crate) required: Vec<usize>,
}

/// The writes of one database waiting for its write slot.
#[derive(Debug)]
pub(crate) struct Group {
    /// At most this many writes in one transaction; 1: each its own.
    pub(crate) max: usize,
    waiting: Mutex<Waiting>,
    /// The size of every group led, for tests.
    #[cfg(test)]
    led: Mutex<Vec<usize>>,
}

#[derive(Default)]
struct Waiting {
    next: u64,
    admitted: VecDeque<Entry>,
    public: VecDeque<Entry>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Waiting({} admitted, {} public)",
            self.admitted.len(),
            self.public.len()
        )
    }
}

struct Entry {
    id: u64,
    job: Job,
    answer: oneshot::Sender<Outcome>,
}

impl Group {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            waiting: Mutex::new(Waiting::default()),
            #[cfg(test)]
            led: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts a write in the list; its number, for [`Group::take`].
    fn enqueue(&self, admitted: bool, job: Job, answer: oneshot::Sender<Outcome>) -> u64 {
        let mut waiting = self.lock();
        let id = waiting.next;
        waiting.next += 1;
        let entry = Entry { id, job, answer };
        match admitted {
            true => waiting.admitted.push_back(entry),
            false => waiting.public.push_back(entry),
        }
        id
    }

    /// The write `own` first (if still waiting), then up to `max - 1` others:
    /// admitted before public, each in arrival order; those whose caller is gone
    /// are dropped on the way.
    fn take(&self, own: u64, max: usize) -> Vec<Entry> {
        let mut waiting = self.lock();
        let mut taken = Vec::with_capacity(max.min(8));
        let Waiting {
            admitted, public, ..
        } = &mut *waiting;
        for list in [&mut *admitted, &mut *public] {
            if let Some(at) = list.iter().position(|e| e.id == own) {
                taken.extend(list.remove(at));
                break;
            }
        }
        if taken.is_empty() {
            return taken;
        }
        for list in [admitted, public] {
            while taken.len() < max {
                match list.pop_front() {
                    Some(e) if e.answer.is_closed() => {}
                    Some(e) => taken.push(e),
                    None => break,
                }
            }
        }
        taken
    }
}

impl Db {
    /// Runs `job` in a group: waits in the list and for the slot; answered by
    /// whoever got the slot first, or runs the group itself.
    pub(crate) async fn write_in_group(
        &self,
        queue: &WriteQueue,
        group: &Group,
        job: Job,
    ) -> Outcome {
        let admitted = emporium_telemetry::context::is_admitted();
        let (answer, mut answered) = oneshot::channel();
        let own = group.enqueue(admitted, job, answer);
        let turn = queue.turn_as(admitted);
        tokio::pin!(turn);
        tokio::select! {
            biased;
            outcome = &mut answered => return outcome.unwrap_or_else(|_| Err(lost())),
            turn = &mut turn => {
                // The slot (or, past the queue's wait, none: this write alone).
                let max = if turn.is_some() { group.max } else { 1 };
                let mut entries = group.take(own, max);
                if !entries.is_empty() {
                    metrics::histogram!("emporium_store_write_group_size")
                        .record(entries.len() as f64);
                    #[cfg(test)]
                    group.led.lock().expect("sizes").push(entries.len());
                }
                if entries.len() == 1
                    && let Some(entry) = entries.pop()
                {
                    let outcome = self.run_jobs(vec![entry.job]).await.pop();
                    drop(turn);
                    return outcome.unwrap_or_else(|| Err(lost()));
                }
                if !entries.is_empty() {
                    let db = self.clone();
                    tokio::spawn(async move {
                        let _turn = turn;
                        let (jobs, answers): (Vec<_>, Vec<_>) =
                            entries.into_iter().map(|e| (e.job, e.answer)).unzip();
                        let outcomes = db.run_jobs(jobs).await;
                        for (answer, outcome) in answers.into_iter().zip(outcomes) {
                            let _ = answer.send(outcome);
                        }
                    });
                }
            }
        }
        answered.await.unwrap_or_else(|_| Err(lost()))
    }
}

/// The task running a write's group ended without answering it.
fn lost() -> sqlx::Error {
    sqlx::Error::Protocol("a grouped write was not answered".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{demo_db, demo_db_with};
    use crate::{SqliteOptions, Written, is_unique_violation};

    const TABLE: &str = "CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)";

    async fn rows(db: &Db) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT k, v FROM t ORDER BY k")
            .fetch_all(db.pool())
            .await
            .expect("read")
    }

    /// The sizes of the groups `db`'s writes made so far.
    fn led(db: &Db) -> Vec<usize> {
        let group = db.group.as_ref().expect("sqlite");
        group.led.lock().expect("sizes").clone()
    }

    /// Lets every spawned task run until it waits (on the current-thread runtime).
    async fn settle() {
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    fn insert(db: &Db, k: &'static str) -> crate::Batch {
        let mut batch = db.batch();
        batch.push("INSERT INTO t (k, v) VALUES ($1, 1)").bind(k);
        batch
    }

    /// Five writes queued behind a held slot: what each answers and leaves, and
    /// how many transactions they took.
    async fn five_queued_writes(
        db: &Db,
    ) -> (
        Vec<Result<Option<Written>, sqlx::Error>>,
        Vec<(String, i64)>,
    ) {
        sqlx::query("INSERT INTO t (k, v) VALUES ('a', 1)")
            .execute(db.pool())
            .await
            .expect("seed");
        let held = db.begin().await.expect("the slot");
        let mut not_moved = insert(db, "c");
        not_moved
            .push("UPDATE t SET v = 9 WHERE k = $1")
            .bind("nobody")
            .require_one();
        let mut duplicate = insert(db, "d");
        duplicate.push("INSERT INTO t (k, v) VALUES ('a', 2)");
        // Sees the first write's row, as it would after it in the queue.
        let mut after_b = insert(db, "e");
        after_b
            .push("UPDATE t SET v = v + 1 WHERE k = $1")
            .bind("b")
            .require_one();
        let mut writes = Vec::new();
        for batch in [
            insert(db, "b"),
            not_moved,
            duplicate,
            after_b,
            insert(db, "f"),
        ] {
            let db = db.clone();
            writes.push(tokio::spawn(async move { db.write(batch).await }));
            settle().await;
        }
        held.rollback().await.expect("let go of the slot");
        let mut answers = Vec::new();
        for w in writes {
            answers.push(w.await.expect("join"));
        }
        (answers, rows(db).await)
    }

    #[tokio::test]
    async fn queued_writes_share_one_transaction_and_each_is_undone_alone() {
        let mut seen = Vec::new();
        for max in [32, 1] {
            let options = SqliteOptions {
                write_group_max: max,
                ..SqliteOptions::default()
            };
            let (_dir, db) = demo_db_with(TABLE, options).await;
            let (answers, rows) = five_queued_writes(&db).await;
            let [b, c, d, e, f] = answers.try_into().expect("five answers");
            assert_eq!(b.expect("b").expect("committed").changed, [1]);
            assert!(c.expect("c").is_none(), "its required update moved nothing");
            assert!(is_unique_violation(&d.expect_err("d: a duplicate key")));
            assert_eq!(e.expect("e").expect("committed").changed, [1, 1]);
            assert_eq!(f.expect("f").expect("committed").changed, [1]);
            seen.push((rows, led(&db)));
        }
        let expected: Vec<(String, i64)> = [("a", 1), ("b", 2), ("e", 1), ("f", 1)]
            .map(|(k, v)| (k.to_string(), v))
            .into();
        assert_eq!(seen[0].0, expected, "grouped");
        assert_eq!(seen[1].0, expected, "one by one");
        assert_eq!(seen[0].1, [5], "one group of five");
        assert!(seen[1].1.is_empty(), "no groups when off");
    }

    /// A group whose `COMMIT` fails (here a deferred foreign key) writes nothing,
    /// and no write of it keeps the answer it met inside it: the second write's
    /// duplicate key was the first write's, which is not there now.
    #[tokio::test]
    async fn a_group_that_fails_to_commit_answers_every_write_with_an_error() {
        let (_dir, db) = demo_db(TABLE).await;
        sqlx::query(
            "CREATE TABLE c (id INTEGER PRIMARY KEY, \
             k TEXT REFERENCES t (k) DEFERRABLE INITIALLY DEFERRED)",
        )
        .execute(db.pool())
        .await
        .expect("create");
        let held = db.begin().await.expect("the slot");
        let mut orphan = db.batch();
        orphan.push("INSERT INTO c (id, k) VALUES (1, 'nobody')");
        let mut writes = Vec::new();
        for batch in [insert(&db, "k"), insert(&db, "k"), orphan] {
            let db = db.clone();
            writes.push(tokio::spawn(async move { db.write(batch).await }));
            settle().await;
        }
        held.rollback().await.expect("let go of the slot");
        for (at, w) in writes.into_iter().enumerate() {
            let e = w.await.expect("join").expect_err("nothing committed");
            assert!(!is_unique_violation(&e), "write {at}: {e}");
        }
        assert_eq!(led(&db), [3]);
        assert!(rows(&db).await.is_empty());
        // The connection serves the next write.
        db.write(insert(&db, "k"))
            .await
            .expect("write")
            .expect("committed");
    }

    /// A group runs to its end when the caller that led it goes away, and a write
    /// whose caller went away while it waited is not run.
    #[tokio::test]
    async fn a_group_outlives_its_leader_and_skips_the_abandoned() {
        let (_dir, db) = demo_db(TABLE).await;
        let held = db.begin().await.expect("the slot");
        let spawn = |k: &'static str| {
            let db = db.clone();
            tokio::spawn(async move { db.write(insert(&db, k)).await })
        };
        let leader = spawn("a");
        settle().await;
        let gone = spawn("b");
        settle().await;
        let others = [spawn("c"), spawn("d")];
        settle().await;
        gone.abort();
        settle().await;
        held.rollback().await.expect("let go of the slot");
        // The first in the queue gets the slot, starts the group and is dropped.
        tokio::task::yield_now().await;
        leader.abort();
        for other in others {
            other
                .await
                .expect("join")
                .expect("write")
                .expect("committed");
        }
        let keys: Vec<String> = rows(&db).await.into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        assert_eq!(led(&db), [3]);
    }

    fn job(n: usize) -> Job {
        Job {
            sql: format!("SELECT {n}"),
            args: AnyArguments::default(),
            statements: 1,
            required: Vec::new(),
        }
    }

    #[test]
    fn the_taker_comes_first_then_admitted_then_public_and_the_abandoned_are_dropped() {
        let group = Group::new(4);
        let mut keep = Vec::new();
        let mut ids = Vec::new();
        for (n, admitted, abandon) in [
            (0, false, false),
            (1, true, true),
            (2, false, false),
            (3, true, false),
            (4, false, false),
            (5, true, false),
        ] {
            let (tx, rx) = oneshot::channel();
            ids.push(group.enqueue(admitted, job(n), tx));
            if !abandon {
                keep.push(rx);
            }
        }
        let taken: Vec<_> = group
            .take(ids[4], 4)
            .into_iter()
            .map(|e| e.job.sql)
            .collect();
        assert_eq!(taken, ["SELECT 4", "SELECT 3", "SELECT 5", "SELECT 0"]);
        let rest: Vec<_> = group
            .take(ids[2], 4)
            .into_iter()
            .map(|e| e.job.sql)
            .collect();
        assert_eq!(rest, ["SELECT 2"]);
        assert!(group.take(ids[2], 4).is_empty(), "taken already");
    }
}
