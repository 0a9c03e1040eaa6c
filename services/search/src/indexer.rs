//! The indexer: one task that owns the index writer and keeps the index equal to
//! the documents table.
//!
//! It follows the table's change numbers: reads the changes after the last one
//! indexed, replaces those products in the index (delete by id, add the new
//! version), and commits with the last change number as the commit's payload — one
//! atomic step, so a crash at any point leaves an index at some committed change,
//! and the next start goes on from there with nothing lost or applied twice. Handlers
//! wake it after each commit of the documents table; it also looks once a second.
//!
//! A reindex builds a complete new index beside the current one while searches go on
//! against the old, then swaps: the `CURRENT` file, the reader searches use, and the
//! writer.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use emporium_store::{Db, now_ms};
use emporium_telemetry::metrics;
use serde::{Deserialize, Serialize};
use tantivy::{IndexWriter, TantivyDocument, Term};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use utoipa::ToSchema;

use crate::documents::{self, Document};
use crate::index::{self, Engine, Fields, Folder};

/// Changes applied per commit at most.
const BATCH: i64 = 1_000;
/// The writer's memory budget (tantivy's minimum is 15 MB).
const WRITER_BUDGET: usize = 15_000_000;
/// How long the writer may sit idle before it is closed.
const IDLE_WRITER: Duration = Duration::from_secs(2);
/// How long to wait for the index lock at start.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// A live index may be this far behind and still be ready.
const READY_LAG: Duration = Duration::from_secs(2);

/// What searches and the indexer share.
pub struct Shared {
    current: RwLock<Arc<Engine>>,
    /// The last change in the index.
    indexed: AtomicI64,
    /// Set once the index first caught up with a loaded table.
    ready: AtomicBool,
    pub wake: Arc<Notify>,
    reindex: mpsc::Sender<oneshot::Sender<anyhow::Result<Reindexed>>>,
}

/// What a reindex did.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Reindexed {
    pub documents: u64,
    pub ms: u64,
    pub bytes: u64,
}

impl Shared {
    /// The index searches use now.
    pub fn engine(&self) -> Arc<Engine> {
        match self.current.read() {
            Ok(engine) => engine.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn indexed(&self) -> i64 {
        self.indexed.load(Ordering::Relaxed)
    }

    /// Builds a new index and swaps to it; answers when done.
    pub async fn reindex(&self) -> anyhow::Result<Reindexed> {
        let (reply, answer) = oneshot::channel();
        self.reindex
            .send(reply)
            .await
            .map_err(|_| anyhow::anyhow!("the indexer has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the indexer stopped during the reindex"))?
    }

    /// Readiness: before the first catch-up, every projection must have loaded
    /// (its cursor exists) and the index hold every change; after it, the index may
    /// lag by a moment.
    pub async fn check(&self, db: &Db, subscriptions: &[String]) -> Result<(), String> {
        let pending = documents::oldest_after(db, self.indexed())
            .await
            .map_err(|e| format!("reading documents: {e}"))?;
        if self.ready.load(Ordering::Relaxed) {
            return match pending {
                Some((change, at)) if now_ms() - at > READY_LAG.as_millis() as i64 => Err(format!(
                    "the index is behind (change {change} waits since {} ms)",
                    now_ms() - at
                )),
                _ => Ok(()),
            };
        }
        for name in subscriptions {
            let loaded: Option<(i64,)> =
                sqlx::query_as("SELECT position FROM event_cursors WHERE subscription = $1")
                    .bind(name)
                    .fetch_optional(db.pool())
                    .await
                    .map_err(|e| format!("reading cursors: {e}"))?;
            if loaded.is_none() {
                return Err(format!("loading {name}"));
            }
        }
        if let Some((change, _)) = pending {
            return Err(format!("indexing (change {change} and later)"));
        }
        self.ready.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// The task that owns the writer.
pub struct Indexer {
    db: Db,
    /// This instance's hold on the index folder.
    _owner: std::fs::File,
    folder: Folder,
    generation: String,
    shared: Arc<Shared>,
    writer: Option<IndexWriter>,
    commands: mpsc::Receiver<oneshot::Sender<anyhow::Result<Reindexed>>>,
}

/// Opens the current index in `data_dir` (creating it, or emptying one built from
/// another generation of the documents table).
pub async fn open(db: &Db, data_dir: &Path) -> anyhow::Result<(Arc<Shared>, Indexer)> {
    let generation = documents::init(db).await?;
    let folder = Folder::new(data_dir);
    let owner = folder.own(LOCK_WAIT).await?;
    let engine = Engine::open(&folder.current()?)?;
    let mut writer = writer_waiting(&engine).await?;
    let indexed = match engine.position()? {
        Some((held, change)) if held == generation => change,
        position => {
            if position.is_some() {
                tracing::warn!("the index was built from another documents table; rebuilding it");
            }
            writer.delete_all_documents()?;
            let mut commit = writer.prepare_commit()?;
            commit.set_payload(&index::payload(&generation, 0));
            commit.commit()?;
            engine.reader.reload()?;
            0
        }
    };
    tracing::info!(
        indexed,
        documents = engine.reader.searcher().num_docs(),
        "index opened"
    );
    let (send, commands) = mpsc::channel(4);
    let shared = Arc::new(Shared {
        current: RwLock::new(Arc::new(engine)),
        indexed: AtomicI64::new(indexed),
        ready: AtomicBool::new(false),
        wake: Arc::new(Notify::new()),
        reindex: send,
    });
    let indexer = Indexer {
        db: db.clone(),
        _owner: owner,
        folder,
        generation,
        shared: shared.clone(),
        writer: Some(writer),
        commands,
    };
    Ok((shared, indexer))
}

/// The writer, waiting a while for the index lock: an instance that used this
/// folder may still be stopping. Two running instances cannot share a folder.
async fn writer_waiting(engine: &Engine) -> anyhow::Result<IndexWriter> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match engine.index.writer_with_num_threads(1, WRITER_BUDGET) {
            Ok(writer) => return Ok(writer),
            Err(tantivy::TantivyError::LockFailure(..)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "opening the index writer in {} (does another search instance use this data folder?)",
                        engine.dir.display()
                    )
                });
            }
        }
    }
}

pub(crate) fn writer_for(engine: &Engine) -> anyhow::Result<IndexWriter> {
    engine
        .index
        .writer_with_num_threads(1, WRITER_BUDGET)
        .context("opening the index writer")
}

impl Indexer {
    /// Indexes until `stop`.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut worked = Instant::now();
        while !*stop.borrow() {
            let pause = match self.step().await {
                Ok(0) => {
                    failures = 0;
                    if worked.elapsed() >= IDLE_WRITER
                        && let Some(writer) = self.writer.take()
                    {
                        // An idle writer holds its indexing memory (several MiB):
                        // let it go; the next change opens one again in milliseconds.
                        let _ = tokio::task::spawn_blocking(move || drop(writer)).await;
                    }
                    Duration::from_secs(1)
                }
                Ok(_) => {
                    failures = 0;
                    worked = Instant::now();
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    if failures <= 3 || failures.is_multiple_of(20) {
                        tracing::warn!(error = %format!("{e:#}"), "indexing failed; retrying");
                    }
                    Duration::from_millis(200 * u64::from(failures.min(25)))
                }
            };
            let wake = self.shared.wake.clone();
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
                command = self.commands.recv() => {
                    if let Some(reply) = command {
                        let result = self.reindex().await;
                        if let Err(e) = &result {
                            tracing::error!(error = %format!("{e:#}"), "reindex failed");
                        }
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    /// Applies the next batch of changes; returns how many.
    async fn step(&mut self) -> anyhow::Result<usize> {
        let after = self.shared.indexed();
        let docs = documents::changed_after(&self.db, after, BATCH).await?;
        let Some(last) = docs.last().map(|d| d.changed) else {
            return Ok(0);
        };
        let engine = self.shared.engine();
        let mut writer = match self.writer.take() {
            Some(writer) => writer,
            None => writer_for(&engine)?,
        };
        let payload = index::payload(&self.generation, last);
        let count = docs.len();
        let started = Instant::now();
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = apply(&mut writer, &engine, &docs, &payload);
            if result.is_err() {
                let _ = writer.rollback();
            }
            (writer, result)
        })
        .await
        .context("the indexing thread failed")?;
        self.writer = Some(writer);
        result?;
        self.shared.indexed.store(last, Ordering::Relaxed);
        let engine = self.shared.engine();
        metrics::histogram!("emporium_search_commit_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("emporium_search_documents")
            .set(engine.reader.searcher().num_docs() as f64);
        metrics::gauge!("emporium_search_indexed_change").set(last as f64);
        tracing::debug!(changes = count, last, "indexed");
        Ok(count)
    }

    /// Builds a complete index from the documents table beside the current one, then
    /// makes it current.
    async fn reindex(&mut self) -> anyhow::Result<Reindexed> {
        let started = Instant::now();
        let dir = self.folder.next();
        tracing::info!(folder = %dir.display(), "reindexing");
        let engine = Arc::new(Engine::open(&dir)?);
        let mut writer = Some(writer_for(&engine)?);
        let mut after = 0;
        loop {
            let docs = documents::changed_after(&self.db, after, BATCH).await?;
            let Some(last) = docs.last().map(|d| d.changed) else {
                break;
            };
            after = last;
            let fields = engine.fields;
            let w = writer.take().context("the new writer")?;
            let (w, result) = tokio::task::spawn_blocking(move || {
                // A product changed during the reindex comes again at its new change
                // number: replace, never add twice.
                let result = docs.iter().try_for_each(|d| {
                    w.delete_term(Term::from_field_text(fields.id, &d.product_id));
                    add(&w, &fields, d)
                });
                (w, result)
            })
            .await?;
            writer = Some(w);
            result?;
        }
        // Whatever the table held at the end is in; later changes follow as usual.
        after = after.max(self.shared.indexed());
        let payload = index::payload(&self.generation, after);
        let new = engine.clone();
        let w = writer.take().context("the new writer")?;
        let (w, result) = tokio::task::spawn_blocking(move || {
            let mut w = w;
            let result = (|| {
                let mut commit = w.prepare_commit()?;
                commit.set_payload(&payload);
                commit.commit()?;
                new.reader.reload()
            })();
            (w, result)
        })
        .await?;
        result?;
        self.folder.swap_to(&dir)?;
        let old = {
            let mut current = self
                .shared
                .current
                .write()
                .map_err(|_| anyhow::anyhow!("the index lock is poisoned"))?;
            std::mem::replace(&mut *current, engine.clone())
        };
        // The old writer goes (and its lock with it), the new one stays.
        self.writer = Some(w);
        self.shared.indexed.store(after, Ordering::Relaxed);
        if let Err(e) = std::fs::remove_dir_all(&old.dir) {
            tracing::warn!(error = %e, folder = %old.dir.display(), "cannot remove the old index");
        }
        let done = Reindexed {
            documents: engine.reader.searcher().num_docs(),
            ms: started.elapsed().as_millis() as u64,
            bytes: engine.size_bytes(),
        };
        tracing::info!(
            documents = done.documents,
            ms = done.ms,
            bytes = done.bytes,
            "reindexed"
        );
        Ok(done)
    }
}

/// Replaces `docs` in the index and commits with `payload`.
fn apply(
    writer: &mut IndexWriter,
    engine: &Engine,
    docs: &[Document],
    payload: &str,
) -> tantivy::Result<()> {
    for d in docs {
        writer.delete_term(Term::from_field_text(engine.fields.id, &d.product_id));
        add(writer, &engine.fields, d)?;
    }
    let mut commit = writer.prepare_commit()?;
    commit.set_payload(payload);
    commit.commit()?;
    engine.reader.reload()
}

/// Adds `d` to the index if it is searchable.
pub(crate) fn add(writer: &IndexWriter, f: &Fields, d: &Document) -> tantivy::Result<()> {
    if !d.searchable() {
        return Ok(());
    }
    let mut doc = TantivyDocument::default();
    doc.add_text(f.id, &d.product_id);
    doc.add_text(f.sku, d.sku.to_ascii_uppercase());
    doc.add_text(f.name, &d.name);
    let mut body = d.description.clone();
    for value in d.attributes().values() {
        body.push(' ');
        body.push_str(value);
    }
    doc.add_text(f.body, body);
    doc.add_text(f.category, &d.category);
    doc.add_i64(f.price, d.price);
    doc.add_i64(f.rating, d.rating_average);
    doc.add_i64(f.rating_count, d.rating_count);
    doc.add_i64(f.stock, d.stock_code());
    doc.add_i64(f.created, d.created_ms);
    doc.add_text(
        f.item,
        serde_json::to_string(&d.item()).unwrap_or_else(|_| "{}".into()),
    );
    writer.add_document(doc)?;
    Ok(())
}
