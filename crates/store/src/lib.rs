//! Database access for Emporium services.
//!
//! Each service owns one database: by default a SQLite file under its data folder
//! (`<data_dir>/<service>/<service>.db`), or PostgreSQL when a `postgres://` URL is
//! configured, where each service lives in a schema named after it (its own
//! `database_url`, or one shared URL: the schemas keep them apart). Services talk to
//! it through [`Db`], which wraps an sqlx `Any` pool, so the SQL a service writes
//! (with `$1` placeholders, `i64` money and timestamps, `TEXT` ids) runs unchanged on
//! both engines; only migrations are per dialect (`migrations/<dialect>/`, embedded
//! with [`migrations!`]).
//!
//! SQLite is opened in WAL mode with a busy timeout, and [`Db::begin`] starts writes
//! with `BEGIN IMMEDIATE`: a deferred transaction that later upgrades to a write lock
//! fails with `SQLITE_BUSY` under concurrency instead of waiting. On PostgreSQL
//! writes run at READ COMMITTED, so service SQL makes every read-modify-write a
//! single conditional statement (or locks the row) rather than relying on SQLite's
//! one-writer-at-a-time.
//!
//! SQLite's busy timeout is a poll: a writer that finds the file locked sleeps 1,
//! 2, 5, 10 ms and more before it tries again, and a newcomer may take the lock
//! ahead of it. Under load that is a long tail for a few unlucky transactions. So
//! writers of one process queue first, first come first served, for the file's one
//! write slot (a queue per [`Db`]), and only then `BEGIN IMMEDIATE`: in-process
//! writers hand the lock over without sleeping; the busy timeout is left for other
//! processes writing the same file. In that queue, work the service already
//! admitted (internal calls, sagas, event handlers) goes ahead of new public
//! requests ([`queue`]). The slot is held while the transaction makes its round
//! trips to the connection's thread, so a write that needs no answers before it
//! commits goes as one [`Batch`] through [`Db::write`]: one trip on SQLite.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
mod batch;
mod clock;
mod group;
mod queue;
mod tx;
mod write;

pub use batch::Batch;
pub use clock::{now_ms, rfc3339, year_month_utc};
pub use sqlx;
pub use tx::Tx;
pub use write::Written;

/// Errors of the store: opening, migrating, querying.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url `{0}` (expected sqlite:... or postgres://...)")]
    UnsupportedUrl(String),
    #[error("cannot create the data folder {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
}

/// The database engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A service's migrations, one folder per dialect; see [`migrations!`].
#[derive(Debug)]
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
}

impl Migrations {
    /// The migrations for `backend`.
    pub fn for_backend(&self, backend: Backend) -> &Migrator {
        match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        }
    }
}

/// Embeds the calling crate's `migrations/sqlite` and `migrations/postgres` folders:
/// `static MIGRATIONS: Migrations = emporium_store::migrations!();`
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::Migrations {
            sqlite: $crate::sqlx::migrate!("./migrations/sqlite"),
            postgres: $crate::sqlx::migrate!("./migrations/postgres"),
        }
    };
}

/// A service's database: a connection pool and the engine it talks to.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// SQLite: this process's queue for the write lock (see the crate's header).
    writer: Option<Arc<queue::WriteQueue>>,
    /// SQLite: the connection [`Db::write`] keeps between writes (write.rs).
    kept: Option<Arc<write::KeptConnection>>,
    /// SQLite: the writes waiting for the slot, run together (group.rs).
    group: Option<Arc<group::Group>>,
    /// SQLite: the task that checkpoints the WAL, stopped with the last clone.
    _checkpoints: Option<Arc<Checkpoints>>,
}

/// How often a SQLite database's WAL is checkpointed in the background unless
/// the settings say otherwise (`store.checkpoint_ms`).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// With background checkpoints, the WAL's size (pages of 4 KiB) at which a writer
/// checkpoints it all the same (see `Db::open_sqlite`): it bounds the WAL at
/// about 16 MB under a steady stream of commits.
pub const WAL_BACKSTOP_PAGES: u32 = 4000;

/// SQLite: the background checkpoints of one database (see [`Db::open_sqlite`]);
/// dropped with the last clone of the [`Db`], which stops them.
#[derive(Debug)]
struct Checkpoints(tokio::task::JoinHandle<()>);

impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How many queued [`Db::write`]s at most share one transaction on SQLite, unless
/// the settings say otherwise (`store.write_group_max`).
pub const WRITE_GROUP_MAX: usize = 32;

/// How a SQLite database is written (the `[store]` settings); no effect on
/// PostgreSQL, whose writers neither take turns nor share a WAL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// How often the WAL is checkpointed in the background (see `open_sqlite`);
    /// `None`: by SQLite itself, in the writer whose commit fills it.
    pub checkpoint_every: Option<Duration>,
    /// At most this many writes waiting for the write slot share one
    /// transaction (group.rs); 1: each write is a transaction of its own.
    pub write_group_max: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            checkpoint_every: Some(CHECKPOINT_EVERY),
            write_group_max: WRITE_GROUP_MAX,
        }
    }
}

impl Db {
    /// Opens the database of `service`: `url` when given (on PostgreSQL, in the
    /// schema `service`, created if missing), otherwise a SQLite file in `dir`
    /// (created if missing).
    pub async fn open_service(
        service: &str,
        dir: &Path,
        url: Option<&str>,
    ) -> Result<Self, StoreError> {
        Self::open_service_with(service, dir, url, SqliteOptions::default()).await
    }

    /// [`Db::open_service`], written on SQLite as `options` say.
    pub async fn open_service_with(
        service: &str,
        dir: &Path,
        url: Option<&str>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        match url {
            Some(url) => Self::open_url(url, Some(service), options).await,
            None => {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
                let file = dir.join(format!("{service}.db"));
                let url = format!("sqlite://{}?mode=rwc", file.display());
                Self::open_url(&url, None, options).await
            }
        }
    }

    /// Opens a database by URL (PostgreSQL: its default schema).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_in(url, None).await
    }

    /// Opens a database by URL; on PostgreSQL every connection works in `schema`.
    pub async fn open_in(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        Self::open_url(url, schema, SqliteOptions::default()).await
    }

    async fn open_url(
        url: &str,
        schema: Option<&str>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        if url.starts_with("sqlite:") {
            Self::open_sqlite(url, options).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::open_postgres(url, schema).await
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    /// Opens a SQLite file. With `options.checkpoint_every`, a task checkpoints the
    /// WAL every so often on a pooled connection, and the writers do only past a backstop
    /// ([`WAL_BACKSTOP_PAGES`]). SQLite's automatic checkpoint runs in the
    /// connection whose commit took the WAL past 1,000 pages, before that commit
    /// returns: copying up to 4 MB into the database file and syncing both, while
    /// that writer holds this process's write slot (orders wrote 34 MB/s of WAL at
    /// checkout saturation, a checkpoint every eighth of a second). A passive
    /// checkpoint takes no write lock, so the writers go on while it runs — and
    /// under a steady stream of commits it never copies the last ones, so the WAL
    /// never starts over from its beginning: past the backstop a writer
    /// checkpoints as before, holding the slot, so that one completes and the WAL
    /// is reused (what is left to copy then is the little the task has not).
    async fn open_sqlite(url: &str, sqlite: SqliteOptions) -> Result<Self, StoreError> {
        let options = AnyConnectOptions::from_str(url)?;
        // SQLite's own threshold without background checkpoints (its default).
        let pages = match sqlite.checkpoint_every {
            Some(_) => WAL_BACKSTOP_PAGES,
            None => 1000,
        };
        // One string per pool for the life of the process, as the connect hook
        // needs it for every connection.
        let autocheckpoint: &'static str =
            String::leak(format!("PRAGMA wal_autocheckpoint = {pages}"));
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            // A connection to a local file does not go stale as a socket does, and
            // sqlx's check before each acquire is a round trip to the connection's
            // worker thread: one more thread hand-off per statement.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    // WAL persists in the file; these are per connection.
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute(autocheckpoint).await?;
                    // The checks of `Batch::require_one` write a temporary table.
                    conn.execute("PRAGMA temp_store = MEMORY").await?;
                    conn.execute(batch::GUARD_TABLE).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        pool.execute("PRAGMA journal_mode = WAL").await?;
        let checkpoints = sqlite.checkpoint_every.map(|every| {
            let pool = pool.clone();
            Arc::new(Checkpoints(tokio::spawn(checkpoint(pool, every))))
        });
        Ok(Self {
            pool,
            backend: Backend::Sqlite,
            writer: Some(Arc::new(queue::WriteQueue::new())),
            kept: Some(Arc::default()),
            group: Some(Arc::new(group::Group::new(sqlite.write_group_max))),
            _checkpoints: checkpoints,
        })
    }

    async fn open_postgres(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let options = AnyConnectOptions::from_str(url)?;
        let set_path: Option<&'static str> = match schema {
            Some(schema) => {
                if !is_identifier(schema) {
                    return Err(StoreError::UnsupportedUrl(format!(
                        "{} (schema `{schema}` is not a plain identifier)",
                        redact(url)
                    )));
                }
                // One string per pool for the life of the process.
                Some(String::leak(format!("SET search_path TO \"{schema}\"")))
            }
            None => None,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            // Connections come back after a restart of the server: none is kept
            // idle forever, and each is checked before use.
            .min_connections(0)
            .idle_timeout(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if let Some(set_path) = set_path {
                        conn.execute(set_path).await?;
                    }
                    // A row lock held too long fails the statement (retried by the
                    // caller) instead of waiting forever, as SQLite's busy timeout.
                    conn.execute("SET lock_timeout = '5s'").await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if let Some(schema) = schema {
            let create: &'static str =
                String::leak(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""));
            // Instances starting together race on the catalog: the loser sees a
            // unique violation for a schema that now exists.
            if let Err(e) = pool.execute(create).await
                && !is_unique_violation(&e)
            {
                return Err(e.into());
            }
        }
        Ok(Self {
            pool,
            backend: Backend::Postgres,
            writer: None,
            kept: None,
            group: None,
            _checkpoints: None,
        })
    }

    /// Applies a service's embedded migrations for this engine.
    pub async fn migrate_all(&self, migrations: &Migrations) -> Result<(), StoreError> {
        self.migrate(migrations.for_backend(self.backend)).await
    }

    /// Applies one folder of migrations.
    ///
    /// PostgreSQL serializes migrators with an advisory lock; SQLite has none, so
    /// two processes opening one file at once (two instances on the embedded
    /// default) can collide: the loser tries again and finds the work done.
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if self.backend == Backend::Sqlite && attempt < 5 && collided(&e) => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "migration collided; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite it first waits its turn among this process's writers (admitted
    /// work ahead of public requests); the turn is held until the transaction ends.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let turn = match &self.writer {
            Some(queue) => queue.turn().await,
            None => None,
        };
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx::new(inner, self.backend, turn))
    }

    /// A round trip to the database, for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// Checkpoints the WAL of `pool`'s database every `every`, passively (what no
/// reader still needs is copied into the database file; writers go on), until the
/// pool closes or the [`Db`] is dropped.
async fn checkpoint(pool: AnyPool, every: Duration) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::debug!(error = %e, "WAL checkpoint failed; tried again next time");
        }
    }
}

/// Whether a migration failed because another process was applying it too: the
/// object it creates exists already, or the database was busy.
fn collided(err: &sqlx::migrate::MigrateError) -> bool {
    let text = err.to_string();
    [
        "already exists",
        "duplicate column",
        "UNIQUE constraint",
        "database is locked",
        "busy",
    ]
    .iter()
    .any(|sign| text.contains(sign))
}

/// True when `err` is a unique-constraint violation (a duplicate key).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Letters, digits and `_`, not starting with a digit: safe to quote as a name.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A URL without its password, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &url[..scheme], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh `demo` database in a temporary folder, with one table made by `ddl`.
    pub(crate) async fn demo_db(ddl: &'static str) -> (tempfile::TempDir, Db) {
        demo_db_with(ddl, SqliteOptions::default()).await
    }

    pub(crate) async fn demo_db_with(
        ddl: &'static str,
        options: SqliteOptions,
    ) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_service_with("demo", dir.path(), None, options)
            .await
            .expect("open");
        sqlx::query(ddl).execute(db.pool()).await.expect("create");
        (dir, db)
    }

    #[tokio::test]
    async fn writes_keep_one_connection_between_them() {
        let (_dir, db) = demo_db("CREATE TABLE t (x INTEGER)").await;
        // Idle connections in the pool, so that writes taking whichever is idle
        // would not get the same one twice in a row.
        let held = futures::future::join_all((0..3).map(|_| db.pool().acquire())).await;
        assert!(held.iter().all(Result::is_ok), "three connections");
        drop(held);
        let mut first = db.batch();
        first.push("CREATE TEMP TABLE marker (x INTEGER)");
        db.write(first).await.expect("write").expect("committed");
        for _ in 0..3 {
            sqlx::query("SELECT COUNT(*) FROM t")
                .execute(db.pool())
                .await
                .expect("read");
        }
        // A temporary table is seen only by the connection that made it.
        let mut second = db.batch();
        second.push("INSERT INTO temp.marker VALUES (1)");
        db.write(second)
            .await
            .expect("written on the connection that made the table")
            .expect("committed");
    }

    #[tokio::test]
    async fn sqlite_file_in_wal_mode_with_immediate_writes() {
        let (dir, db) = demo_db("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)").await;
        assert!(dir.path().join("demo.db").exists());
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(db.pool())
            .await
            .expect("pragma");
        assert_eq!(mode, "wal");
        let mut tx = db.begin().await.expect("begin");
        sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("a")
            .bind(1_i64)
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        let dup = sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("a")
            .bind(2_i64)
            .execute(db.pool())
            .await
            .expect_err("duplicate");
        assert!(is_unique_violation(&dup));
        db.ping().await.expect("ping");
    }

    /// A batch runs every statement in order, each with its own `$N`, and says
    /// what each changed; a failed statement fails the batch. On SQLite this needs
    /// sqlx to run several statements of one query string: if a release stops, the
    /// counts are missing and this fails.
    #[tokio::test]
    async fn a_batch_runs_its_statements_in_order_and_counts_each() {
        let (_dir, db) = demo_db("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)").await;
        let mut tx = db.begin().await.expect("begin");
        let mut batch = tx.batch();
        batch
            .push("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("a")
            .bind(1_i64);
        batch
            .push("INSERT INTO t (k, v) VALUES ($2, $1), ($3, $1)")
            .bind(7_i64)
            .bind("b")
            .bind("c");
        assert_eq!(batch.len(), 2);
        batch
            .push("UPDATE t SET v = v + $1 WHERE k = $2")
            .bind(10_i64)
            .bind("a");
        batch.push("UPDATE t SET v = 0 WHERE k = $1").bind("nobody");
        let changed = tx.run(batch).await.expect("run");
        assert_eq!(changed, [1, 2, 1, 0]);
        let mut failing = tx.batch();
        failing
            .push("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("d")
            .bind(4_i64);
        failing
            .push("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("a")
            .bind(5_i64);
        let dup = tx.run(failing).await.expect_err("a duplicate key");
        assert!(is_unique_violation(&dup), "{dup}");
        tx.commit().await.expect("commit");
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT k, v FROM t ORDER BY k")
            .fetch_all(db.pool())
            .await
            .expect("read");
        let rows: Vec<(&str, i64)> = rows.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        // The failed batch's first statement ran (a caller rolls back on failure).
        assert_eq!(rows, [("a", 11), ("b", 7), ("c", 7), ("d", 4)]);
    }

    /// A write commits in one go; one whose required statement moved no row, or
    /// whose statement failed, leaves nothing behind, and the connection serves
    /// the next write (no transaction left open on it).
    #[tokio::test]
    async fn a_write_commits_or_leaves_nothing() {
        let (_dir, db) = demo_db("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)").await;
        let rows = |db: Db| async move {
            let rows: Vec<(String, i64)> = sqlx::query_as("SELECT k, v FROM t ORDER BY k")
                .fetch_all(db.pool())
                .await
                .expect("read");
            rows
        };
        let mut batch = db.batch();
        batch
            .push("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("a")
            .bind(1_i64);
        batch
            .push("UPDATE t SET v = $2 WHERE k = $1")
            .bind("a")
            .bind(2_i64)
            .require_one();
        batch
            .push("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("b")
            .bind(3_i64);
        let written = db.write(batch).await.expect("write").expect("committed");
        assert_eq!(written.changed, [1, 1, 1]);
        for _ in 0..10 {
            let mut batch = db.batch();
            batch
                .push("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind("c")
                .bind(4_i64);
            batch
                .push("UPDATE t SET v = 9 WHERE k = $1")
                .bind("nobody")
                .require_one();
            batch
                .push("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind("d")
                .bind(5_i64);
            assert!(db.write(batch).await.expect("write").is_none(), "not moved");
            let mut batch = db.batch();
            batch
                .push("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind("e")
                .bind(6_i64);
            batch
                .push("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind("a")
                .bind(7_i64);
            let dup = db.write(batch).await.expect_err("a duplicate key");
            assert!(is_unique_violation(&dup), "{dup}");
        }
        assert_eq!(
            rows(db.clone()).await,
            [("a".to_string(), 2), ("b".to_string(), 3)]
        );
        // Abandoned half way: the connection is closed, not pooled, and the next
        // writes find the database free.
        let mut batch = db.batch();
        batch
            .push("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("f")
            .bind(8_i64);
        let abandoned = tokio::time::timeout(Duration::from_micros(1), db.write(batch)).await;
        drop(abandoned);
        let mut tx = db.begin().await.expect("begin after an abandoned write");
        sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind("g")
            .bind(9_i64)
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        let mut batch = db.batch();
        batch
            .push("UPDATE t SET v = v + 1 WHERE k = $1")
            .bind("g")
            .require_one();
        assert!(db.write(batch).await.expect("write").is_some());
        let rows = rows(db.clone()).await;
        assert!(rows.contains(&("g".to_string(), 10)), "{rows:?}");
    }

    #[tokio::test]
    async fn concurrent_writers_do_not_fail_busy() {
        let (_dir, db) =
            demo_db("CREATE TABLE c (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)").await;
        sqlx::query("INSERT INTO c (id, n) VALUES (1, 0)")
            .execute(db.pool())
            .await
            .expect("seed");
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = db.begin().await?;
                let (n,): (i64,) = sqlx::query_as("SELECT n FROM c WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query("UPDATE c SET n = $1 WHERE id = 1")
                    .bind(n + 1)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("no SQLITE_BUSY");
        }
        let (n,): (i64,) = sqlx::query_as("SELECT n FROM c WHERE id = 1")
            .fetch_one(db.pool())
            .await
            .expect("read");
        assert_eq!(
            n, 16,
            "read-modify-write under BEGIN IMMEDIATE loses no update"
        );
    }

    /// Writers of one process take the write lock in the order they asked for it.
    /// Left to SQLite's busy timeout, the writer that has waited longest sleeps
    /// longest between tries (1, 2, 5 ... 100 ms), and one that came later takes
    /// the lock first when it is released.
    #[tokio::test]
    async fn writers_take_the_lock_first_come_first_served() {
        let (_dir, db) =
            demo_db("CREATE TABLE w (seq INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT NOT NULL)")
                .await;
        let holder = db.begin().await.expect("begin");
        let write = |who: &'static str, after: u64| {
            let db = db.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after)).await;
                let mut tx = db.begin().await?;
                sqlx::query("INSERT INTO w (who) VALUES ($1)")
                    .bind(who)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            })
        };
        let first = write("first", 0);
        let second = write("second", 250);
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder.commit().await.expect("commit");
        first.await.expect("join").expect("first");
        second.await.expect("join").expect("second");
        let order: Vec<(String,)> = sqlx::query_as("SELECT who FROM w ORDER BY seq")
            .fetch_all(db.pool())
            .await
            .expect("read");
        let order: Vec<&str> = order.iter().map(|(w,)| w.as_str()).collect();
        assert_eq!(order, ["first", "second"]);
    }

    /// With background checkpoints the WAL's pages reach the database file
    /// without any writer checkpointing; without them (and under SQLite's
    /// 1,000-page threshold) they stay in the WAL.
    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background() {
        for checkpoints in [Some(Duration::from_millis(20)), None] {
            let dir = tempfile::tempdir().expect("tempdir");
            let options = SqliteOptions {
                checkpoint_every: checkpoints,
                ..SqliteOptions::default()
            };
            let db = Db::open_service_with("demo", dir.path(), None, options)
                .await
                .expect("open");
            let (automatic,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
                .fetch_one(db.pool())
                .await
                .expect("pragma");
            assert_eq!(
                automatic,
                if checkpoints.is_some() {
                    i64::from(WAL_BACKSTOP_PAGES)
                } else {
                    1000
                }
            );
            sqlx::query("CREATE TABLE b (x BLOB NOT NULL)")
                .execute(db.pool())
                .await
                .expect("create");
            let file = dir.path().join("demo.db");
            let before = std::fs::metadata(&file).expect("file").len();
            for _ in 0..50 {
                let mut batch = db.batch();
                batch
                    .push("INSERT INTO b (x) VALUES (zeroblob(4000))")
                    .push("INSERT INTO b (x) VALUES (zeroblob(4000))");
                db.write(batch).await.expect("write").expect("committed");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let grown = std::fs::metadata(&file).expect("file").len() - before;
            match checkpoints {
                Some(_) => assert!(grown > 300_000, "checkpointed: {grown} bytes"),
                None => assert!(grown < 100_000, "left in the WAL: {grown} bytes"),
            }
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://***@h/db");
    }
}
