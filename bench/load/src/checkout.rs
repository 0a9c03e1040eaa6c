//! `checkout-load`: drives checkouts through the gateway and reports throughput and
//! latency.
//!
//! Setup: signs up `--users` shoppers and an admin (`--admin`, who must be listed in
//! `users.admin_emails`), and stocks `--skus` products plentifully so stock never
//! runs out. Then, for `--seconds`, each checkout is: add one unit of a random SKU to
//! the shopper's cart, then `POST /api/orders` with a fresh Idempotency-Key (it
//! answers when the saga is done). Two modes:
//!
//! - closed loop (default): every shopper checks out again as soon as the last one
//!   finished: the saturation throughput;
//! - open loop (`--rate R`): checkouts start R times a second whatever the latency,
//!   and latency is measured from the moment each was due (no coordinated omission).
//!
//! Prints one JSON line: completed, confirmed, errors, checkouts/s, p50/p90/p99/max.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Parser)]
struct Args {
    /// The gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    #[arg(long, default_value_t = 32)]
    users: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Open loop at this many checkouts per second (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 20)]
    skus: usize,
    #[arg(long, default_value = "bench-admin@example.com")]
    admin: String,
}

const PASSWORD: &str = "correct horse battery";

async fn sign_up(http: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<String> {
    let r = http
        .post(format!("{base}/api/users/register"))
        .json(&json!({"email": email, "password": PASSWORD, "name": "Load"}))
        .send()
        .await?;
    if !(r.status() == 201 || r.status() == 409) {
        bail!("register {email}: {}", r.status());
    }
    let token: Value = http
        .post(format!("{base}/api/users/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    token["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access token")
}

struct Shared {
    http: reqwest::Client,
    base: String,
    skus: Vec<String>,
    latencies: Mutex<Vec<Duration>>,
    confirmed: AtomicU64,
    cancelled: AtomicU64,
    errors: AtomicU64,
    seq: AtomicU64,
}

impl Shared {
    /// One checkout by `token`; latency counted from `due`.
    async fn checkout(&self, token: &str, due: Instant) {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) as usize;
        let sku = &self.skus[n % self.skus.len()];
        let added = self
            .http
            .post(format!("{}/api/cart/items", self.base))
            .bearer_auth(token)
            .json(&json!({"sku": sku, "quantity": 1}))
            .send()
            .await;
        if !added.is_ok_and(|r| r.status().is_success()) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let body = json!({
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"},
            "shipping_address": {"name": "Load", "line1": "1 Bench St", "city": "Perf",
                                 "postal_code": "1", "country": "US"},
        });
        let result = self
            .http
            .post(format!("{}/api/orders", self.base))
            .bearer_auth(token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await;
        let status = match result {
            Ok(r) if r.status().is_success() => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_string)),
            _ => None,
        };
        let took = due.elapsed();
        match status.as_deref() {
            Some("CONFIRMED") => self.confirmed.fetch_add(1, Ordering::Relaxed),
            Some("CANCELLED") => self.cancelled.fetch_add(1, Ordering::Relaxed),
            _ => self.errors.fetch_add(1, Ordering::Relaxed),
        };
        self.latencies.lock().await.push(took);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build()?;
    let base = args.base.trim_end_matches('/').to_string();

    let admin = sign_up(&http, &base, &args.admin).await?;
    let page: Value = http
        .get(format!("{base}/api/catalog/products?limit=100&sort=name"))
        .send()
        .await?
        .json()
        .await?;
    let mut skus = Vec::new();
    for p in page["items"]
        .as_array()
        .context("products")?
        .iter()
        .take(args.skus)
    {
        let sku = p["sku"].as_str().context("sku")?.to_string();
        // Inventory learns products from catalog's events: wait for it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = http
                .put(format!("{base}/api/inventory/{sku}"))
                .bearer_auth(&admin)
                .json(&json!({"available": 100_000_000}))
                .send()
                .await?;
            if r.status().is_success() {
                break;
            }
            if r.status() == 403 {
                bail!(
                    "{} is not an admin: start emporium with EMPORIUM__USERS__ADMIN_EMAILS",
                    args.admin
                );
            }
            if Instant::now() > deadline {
                bail!("cannot stock {sku}: {}", r.status());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        skus.push(sku);
    }
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mut tokens = Vec::new();
    for chunk in (0..args.users).collect::<Vec<_>>().chunks(8) {
        let signed = futures::future::join_all(chunk.iter().map(|i| {
            let email = format!("load-{}-{i}@example.com", &tag[..8]);
            let http = http.clone();
            let base = base.clone();
            async move { sign_up(&http, &base, &email).await }
        }))
        .await;
        for t in signed {
            tokens.push(t?);
        }
    }

    let shared = Arc::new(Shared {
        http,
        base,
        skus,
        latencies: Mutex::new(Vec::new()),
        confirmed: AtomicU64::new(0),
        cancelled: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        seq: AtomicU64::new(0),
    });
    let started = Instant::now();
    let end = started + Duration::from_secs(args.seconds);
    match args.rate {
        None => {
            let workers = tokens.into_iter().map(|token| {
                let shared = shared.clone();
                tokio::spawn(async move {
                    while Instant::now() < end {
                        shared.checkout(&token, Instant::now()).await;
                    }
                })
            });
            futures::future::join_all(workers).await;
        }
        Some(rate) => {
            // Shoppers take turns; a checkout due while all are busy waits for one,
            // and its latency includes the wait.
            let (idle_tx, idle_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            for t in tokens {
                idle_tx.send(t)?;
            }
            let idle_rx = Arc::new(Mutex::new(idle_rx));
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut tasks = Vec::new();
            let mut due = started;
            while due < end {
                tokio::time::sleep_until(due.into()).await;
                let (shared, idle_rx, idle_tx) = (shared.clone(), idle_rx.clone(), idle_tx.clone());
                let scheduled = due;
                tasks.push(tokio::spawn(async move {
                    let token = idle_rx.lock().await.recv().await;
                    if let Some(token) = token {
                        shared.checkout(&token, scheduled).await;
                        let _ = idle_tx.send(token);
                    }
                }));
                due += interval;
            }
            futures::future::join_all(tasks).await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = shared.latencies.lock().await.clone();
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    let confirmed = shared.confirmed.load(Ordering::Relaxed);
    println!(
        "{}",
        json!({
            "mode": if args.rate.is_some() { "open" } else { "closed" },
            "rate": args.rate,
            "users": args.users,
            "seconds": elapsed,
            "completed": lat.len(),
            "confirmed": confirmed,
            "cancelled": shared.cancelled.load(Ordering::Relaxed),
            "errors": shared.errors.load(Ordering::Relaxed),
            "checkouts_per_s": confirmed as f64 / elapsed,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
    Ok(())
}
