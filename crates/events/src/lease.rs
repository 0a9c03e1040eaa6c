//! Leases: one instance of a service at a time does a job.
//!
//! A lease is a row in the service's own database (`leases`), held by one instance
//! until a deadline and renewed while it works. Another instance takes it over only
//! after the deadline passed, so a crashed holder delays the job by at most one
//! lease period. Instances compare their own clocks with the stored deadline: keep
//! clocks in sync (NTP) and the period well above their skew.

use std::time::Duration;

use emporium_store::{Db, now_ms};

/// One named job of one service, claimed by `holder`.
#[derive(Debug, Clone)]
pub struct Lease {
    db: Db,
    name: String,
    holder: String,
    period: Duration,
}

impl Lease {
    pub fn new(
        db: Db,
        name: impl Into<String>,
        holder: impl Into<String>,
        period: Duration,
    ) -> Self {
        Self {
            db,
            name: name.into(),
            holder: holder.into(),
            period,
        }
    }

    /// Takes the lease, or renews it when this holder has it; false when another
    /// holder's lease is still running. One statement: two instances racing for
    /// an expired lease cannot both win.
    pub async fn acquire(&self) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let until = now + i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX / 2);
        let done = sqlx::query(
            "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms \
             WHERE leases.holder = excluded.holder OR leases.until_ms < $4",
        )
        .bind(&self.name)
        .bind(&self.holder)
        .bind(until)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up (at shutdown), so another instance need not wait.
    pub async fn release(&self) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(&self.name)
            .bind(&self.holder)
            .execute(self.db.pool())
            .await
            .map(|_| ())
    }

    /// The instance this lease is taken for.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How often a holder renews: a third of the period.
    pub fn renew_every(&self) -> Duration {
        self.period / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_until_it_stops_renewing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open_service("demo", dir.path(), None)
            .await
            .expect("open");
        sqlx::query("CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms BIGINT NOT NULL)")
            .execute(db.pool())
            .await
            .expect("table");
        let a = Lease::new(db.clone(), "job", "a", Duration::from_millis(300));
        let b = Lease::new(db.clone(), "job", "b", Duration::from_millis(300));
        assert!(a.acquire().await.expect("a"), "free: a takes it");
        assert!(!b.acquire().await.expect("b"), "held by a");
        assert!(a.acquire().await.expect("a renews"), "the holder renews");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            b.acquire().await.expect("b"),
            "a stopped renewing: b takes over"
        );
        assert!(!a.acquire().await.expect("a"), "and a cannot take it back");
        b.release().await.expect("release");
        assert!(a.acquire().await.expect("a"), "released: free at once");
        let other = Lease::new(db, "other-job", "b", Duration::from_millis(300));
        assert!(other.acquire().await.expect("other"), "leases are per name");
    }
}
