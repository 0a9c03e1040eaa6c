//! SQL for the registry's config table.

use emporium_contracts::registry::ConfigEntry;
use emporium_store::Db;

pub async fn max_index(db: &Db) -> Result<u64, sqlx::Error> {
    let (max,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(change_index), 0) FROM config")
        .fetch_one(db.pool())
        .await?;
    Ok(max as u64)
}

pub async fn get(db: &Db, key: &str) -> Result<Option<ConfigEntry>, sqlx::Error> {
    let row: Option<(String, String, i64)> =
        sqlx::query_as("SELECT key, value, change_index FROM config WHERE key = $1")
            .bind(key)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(entry))
}

pub async fn list(db: &Db, prefix: &str) -> Result<Vec<ConfigEntry>, sqlx::Error> {
    // A range scan instead of LIKE: prefixes may contain `%` or `_`.
    let upper = format!("{prefix}\u{10FFFF}");
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT key, value, change_index FROM config WHERE key >= $1 AND key < $2 ORDER BY key",
    )
    .bind(prefix)
    .bind(upper)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(entry).collect())
}

pub async fn put(
    db: &Db,
    key: &str,
    value: &str,
    index: u64,
    now_ms: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO config (key, value, change_index, updated_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value,
             change_index = excluded.change_index, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(key)
    .bind(value)
    .bind(index as i64)
    .bind(now_ms as i64)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn delete(db: &Db, key: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM config WHERE key = $1")
        .bind(key)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

fn entry((key, value, index): (String, String, i64)) -> ConfigEntry {
    ConfigEntry::new(key, value, index as u64)
}
