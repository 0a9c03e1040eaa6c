//! `emporium soak`: checkout journeys (or another mix) against the running shop while its
//! processes are killed one after another (and, with `--faults`, fault rules
//! slow, abort and reset calls between the services), then `emporium verify`.
//! It prints the load's table, the kills, and the verification; it exits
//! non-zero when an invariant broke.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use emporium_client::faults::now_ms;
use emporium_contracts::chaos::{FAULTS_PREFIX, Fault, FaultRule};

use crate::chaos::parse_duration;
use crate::load::{self, LoadArgs, Mix, report::Progress};

#[derive(clap::Args)]
pub struct SoakArgs {
    /// How long the load and the chaos last.
    #[arg(long = "for", value_parser = parse_duration, default_value = "10m")]
    duration: Duration,
    /// Kill one process this often, each service in turn (`emporium up`
    /// restarts it). The gateway and the registry are spared: every request
    /// goes through the one, and the kills are found through the other.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    kill_every: Duration,
    /// Also apply fault rules for the whole run: calls from orders to payments
    /// delayed, some calls to catalog aborted, some to cart reset.
    #[arg(long)]
    faults: bool,
    /// Shoppers, closed loop.
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Which journeys they make (as `emporium load --mix`): checkouts by default;
    /// `boutique` adds Online Boutique's reads, counted apart in the summary.
    #[arg(long, value_enum, default_value_t = Mix::Checkout)]
    mix: Mix,
    /// Services never killed, beside the gateway and the registry (comma-separated):
    /// one that runs a single instance where the others run two, say.
    #[arg(long, value_delimiter = ',')]
    spare: Vec<String>,
    /// The gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// The registry's URL; by default the one a running `emporium up` recorded.
    #[arg(long, env = "EMPORIUM__REGISTRY_URL")]
    registry: Option<String>,
    /// The data folder of the `emporium up` to soak.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The fault rules of `--faults`, lasting `ttl`.
fn rules(ttl: Duration) -> Vec<FaultRule> {
    let expires_at_ms = now_ms() + ttl.as_millis() as i64;
    let rule = |from: Option<&str>, to: &str, fault: Fault, percent: f64| FaultRule {
        from: from.map(str::to_string),
        to: to.to_string(),
        fault,
        percent,
        expires_at_ms,
    };
    vec![
        rule(
            Some("orders"),
            "payments",
            Fault::Delay {
                ms: 100,
                jitter_ms: 200,
            },
            30.0,
        ),
        rule(None, "catalog", Fault::Abort { status: 503 }, 10.0),
        rule(None, "cart", Fault::Reset, 5.0),
    ]
}

pub async fn run(args: SoakArgs) -> anyhow::Result<bool> {
    let registry = crate::operator::registry(args.registry.clone(), args.data_dir.clone())?;
    // An admin of the run's own stocks the products the shoppers buy.
    let admin = format!(
        "soak-{}@example.com",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    crate::operations::admin(
        crate::operations::AdminCommand::Grant {
            email: admin.clone(),
        },
        &registry,
    )
    .await?;
    let load_args = LoadArgs {
        base: args.base.clone(),
        mix: args.mix,
        users: args.users,
        rate: None,
        seconds: args.duration.as_secs(),
        warmup: 0,
        think: (0, 0),
        skus: 20,
        admin: Some(admin),
        json: false,
        data_dir: args.data_dir.clone(),
    };
    let (report, shop, tokens) = load::prepare(&load_args).await?;

    // Each backend service in turn, as listed now (a killed one may be missing
    // from the registry for a moment; its turn still comes).
    let mut running: Vec<String> = registry
        .instances()
        .await?
        .instances
        .into_iter()
        .map(|i| i.service)
        .collect();
    running.sort();
    running.dedup();
    let victims: Vec<String> = running
        .iter()
        .filter(|s| *s != "registry" && *s != "gateway" && !args.spare.contains(s))
        .cloned()
        .collect();
    if let Some(unknown) = args.spare.iter().find(|s| !running.contains(s)) {
        anyhow::bail!(
            "--spare {unknown}: no such service runs (running: {})",
            running.join(", ")
        );
    }
    let mut written = Vec::new();
    if args.faults {
        for (i, rule) in rules(args.duration + Duration::from_secs(60))
            .into_iter()
            .enumerate()
        {
            let key = format!("{FAULTS_PREFIX}soak-{i}");
            registry
                .config_put(&key, &serde_json::to_string(&rule)?)
                .await?;
            written.push(key);
        }
    }
    let progress = Progress::start(report.clone(), false, args.duration.as_secs());
    if args.faults {
        progress.note(&format!("{} fault rules on", written.len()));
    }
    anyhow::ensure!(!victims.is_empty(), "no service to kill");
    let started = Instant::now();
    let (chaos, notes) = {
        let registry = registry.clone();
        let every = args.kill_every;
        let end = started + args.duration;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let task = tokio::spawn(async move {
            let mut kills = Vec::new();
            let mut turn = 0usize;
            loop {
                tokio::time::sleep(every).await;
                if Instant::now() + Duration::from_millis(500) >= end {
                    return kills;
                }
                let service = &victims[turn % victims.len()];
                turn += 1;
                match crate::chaos::kill_once(&registry, service).await {
                    Ok(line) => {
                        let _ = tx.send(line.clone());
                        kills.push(line);
                    }
                    Err(e) => {
                        let _ = tx.send(format!("no kill this time: {e:#}"));
                    }
                }
            }
        });
        (task, rx)
    };
    let drive = load::drive(&load_args, &shop, &tokens, args.duration);
    tokio::pin!(drive);
    loop {
        tokio::select! {
            () = &mut drive => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                while let Ok(line) = notes.try_recv() {
                    progress.note(&line);
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let kills = chaos.await.unwrap_or_default();
    while let Ok(line) = notes.try_recv() {
        progress.note(&line);
    }
    progress.finish();
    for key in &written {
        let _ = registry.config_delete(key).await;
    }
    let summary = report.summary(elapsed, &load_args);
    print!("{}", summary.table());
    let (journeys, failed) = summary.totals();
    let share = if journeys == 0 {
        0.0
    } else {
        100.0 * (journeys - failed) as f64 / journeys as f64
    };
    // A journey stops at its first failed request: one failed request each.
    let requests = summary.requests();
    let requests_ok = if requests == 0 {
        0.0
    } else {
        100.0 * requests.saturating_sub(failed) as f64 / requests as f64
    };
    let (reads, failed_reads) = summary.reads();
    println!(
        "soak: {journeys} journeys, {failed} failed ({share:.2}% succeeded), \
         {requests} requests ({requests_ok:.2}% of requests succeeded), \
         {reads} reads ({failed_reads} failed), {} kills, fault rules {}",
        kills.len(),
        if args.faults { "on" } else { "off" }
    );
    // Sagas caught by the last kill finish (or compensate) before the check.
    tokio::time::sleep(Duration::from_secs(5)).await;
    crate::verify::run(args.registry, args.data_dir).await
}
