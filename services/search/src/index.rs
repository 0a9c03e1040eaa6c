//! The tantivy index: its schema, where it lives, and opening or creating it.
//!
//! The index is a projection of the `documents` table and nothing else: every
//! commit carries, as its payload, the documents table's generation and the last
//! change it includes, so after a crash (or with an index older than the table)
//! the indexer knows exactly where to go on from. It lives in
//! `<data>/search/index/<name>/`, with `CURRENT` naming the one in use: a reindex
//! builds a new one beside it and swaps `CURRENT` (a rename) when it is complete.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer,
};
use tantivy::{Index, IndexReader, ReloadPolicy};

/// The analyzer of searchable text, and of queries.
pub const WORDS: &str = "words";

/// The analyzer named [`WORDS`]: words of letters and digits, lower case, accents
/// folded (`Hédphones` → `hedphones`), no stemming (typo tolerance does that job
/// better for a shop, as Meilisearch argues).
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The schema's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The product id: deletes and the last tie-break.
    pub id: Field,
    /// The SKU, upper case, as one term.
    pub sku: Field,
    /// The name: searched, highlighted, suggested.
    pub name: Field,
    /// The description and the attributes' values.
    pub body: Field,
    pub category: Field,
    /// Minor units.
    pub price: Field,
    /// Hundredths of a star; 0 without reviews.
    pub rating: Field,
    pub rating_count: Field,
    /// [`crate::documents::stock_code`]: 2 in stock, 1 low, 0 sold out, -1 unknown.
    pub stock: Field,
    pub created: Field,
    /// The item as search answers it, as JSON.
    pub item: Field,
}

pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |stored: bool| {
        let options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED | FAST),
        sku: b.add_text_field("sku", STRING),
        name: b.add_text_field("name", text(true)),
        body: b.add_text_field("body", text(false)),
        category: b.add_text_field("category", STRING | FAST),
        price: b.add_i64_field("price", FAST),
        rating: b.add_i64_field("rating", FAST),
        rating_count: b.add_i64_field("rating_count", FAST),
        stock: b.add_i64_field("stock", FAST),
        created: b.add_i64_field("created", FAST),
        item: b.add_text_field("item", STORED),
    };
    (b.build(), fields)
}

/// One open index: what searches read.
pub struct Engine {
    pub index: Index,
    pub reader: IndexReader,
    pub fields: Fields,
    /// Its folder.
    pub dir: PathBuf,
}

impl Engine {
    /// Opens the index in `dir`, creating it when the folder is empty.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .with_context(|| format!("opening {}", dir.display()))?;
        let index = Index::open_or_create(directory, schema.clone())
            .with_context(|| format!("opening the index in {}", dir.display()))?;
        anyhow::ensure!(
            index.schema() == schema,
            "the index in {} has another schema",
            dir.display()
        );
        index.tokenizers().register(WORDS, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .context("opening an index reader")?;
        Ok(Self {
            index,
            reader,
            fields,
            dir: dir.to_path_buf(),
        })
    }

    /// The payload of the last commit: the documents generation and the last change
    /// indexed.
    pub fn position(&self) -> anyhow::Result<Option<(String, i64)>> {
        let metas = self.index.load_metas()?;
        Ok(metas.payload.as_deref().and_then(parse_payload))
    }

    /// How much room it takes on disk.
    pub fn size_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

pub fn payload(generation: &str, change: i64) -> String {
    format!("{generation}:{change}")
}

fn parse_payload(payload: &str) -> Option<(String, i64)> {
    let (generation, change) = payload.rsplit_once(':')?;
    Some((generation.to_string(), change.parse().ok()?))
}

/// Where the indexes live, and which one is current.
pub struct Folder {
    root: PathBuf,
}

impl Folder {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("index"),
        }
    }

    /// The current index's folder; a new one (named by `fresh_name`) when there is
    /// none yet. Folders that are not current (a reindex cut short) are removed.
    pub fn current(&self) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let name = match std::fs::read_to_string(self.root.join("CURRENT")) {
            Ok(name) if !name.trim().is_empty() => name.trim().to_string(),
            _ => {
                let name = fresh_name();
                self.make_current(&name)?;
                name
            }
        };
        for entry in std::fs::read_dir(&self.root)?.filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() && entry.file_name().to_string_lossy() != name {
                tracing::info!(folder = %path.display(), "removing an index that is not current");
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        Ok(self.root.join(name))
    }

    /// Takes the folder for this instance (waiting up to `wait` for one that is
    /// stopping): the indexer closes its writer when idle, so the writer's own lock
    /// cannot keep a second instance out. Held while the returned file is open.
    pub async fn own(&self, wait: std::time::Duration) -> anyhow::Result<std::fs::File> {
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        let path = self.root.join("OWNER");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => anyhow::bail!(
                    "{} is in use by another search instance ({e}); give each instance a data folder of its own",
                    self.root.display()
                ),
            }
        }
    }

    /// A folder for a new index beside the current one.
    pub fn next(&self) -> PathBuf {
        self.root.join(fresh_name())
    }

    /// Makes the index in `dir` current (an atomic rename of `CURRENT`).
    pub fn swap_to(&self, dir: &Path) -> anyhow::Result<()> {
        let name = dir
            .file_name()
            .context("an index folder has a name")?
            .to_string_lossy()
            .to_string();
        self.make_current(&name)
    }

    fn make_current(&self, name: &str) -> anyhow::Result<()> {
        let tmp = self.root.join("CURRENT.tmp");
        std::fs::write(&tmp, name)?;
        std::fs::rename(&tmp, self.root.join("CURRENT"))?;
        Ok(())
    }
}

fn fresh_name() -> String {
    format!("v{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_instance_owns_a_folder_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = Folder::new(dir.path());
        let first = folder.own(std::time::Duration::ZERO).await.expect("first");
        let second = folder.own(std::time::Duration::from_millis(200)).await;
        assert!(second.is_err(), "a second owner is refused");
        drop(first);
        folder
            .own(std::time::Duration::ZERO)
            .await
            .expect("free again");
    }

    #[test]
    fn payloads_round_trip() {
        assert_eq!(
            parse_payload(&payload("abc", 42)),
            Some(("abc".to_string(), 42))
        );
        assert_eq!(parse_payload("nonsense"), None);
    }

    #[test]
    fn a_new_folder_gets_a_current_index_and_loses_stale_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = Folder::new(dir.path());
        let first = folder.current().expect("current");
        std::fs::create_dir_all(&first).expect("mkdir");
        let stale = folder.next();
        std::fs::create_dir_all(&stale).expect("mkdir");
        assert_eq!(folder.current().expect("current"), first);
        assert!(!stale.exists(), "a folder that is not current is removed");
        let next = folder.next();
        std::fs::create_dir_all(&next).expect("mkdir");
        folder.swap_to(&next).expect("swap");
        assert_eq!(folder.current().expect("current"), next);
        assert!(!first.exists());
    }
}
