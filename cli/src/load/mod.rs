//! `emporium load`: journeys through the gateway, as shoppers make them, with the
//! numbers a capacity test needs.
//!
//! - **Journeys, not single calls.** The default mix is Online Boutique's
//!   locustfile: browse a product 10, view the cart 3, add to the cart 2, the index
//!   (a product listing) 1, check out 1 (add one unit, then `POST /api/orders`,
//!   which answers once the saga is done), plus search 2 (a word of a product's
//!   name, or two with a typo). `--mix checkout` only checks out; `--mix browse`
//!   only reads; `--mix search` only searches (a word, two words with a typo, a
//!   facet filter, a suggestion) beside catalog's listing of the same filter;
//!   `--mix storefront` makes Online Boutique's journeys through the storefront's
//!   pages instead of the API (forms, redirects followed). Every shopper signs up
//!   and signs in first, and those steps are measured too. Every request a journey
//!   sends is counted (`requests_per_s`).
//! - **Open or closed loop.** `--rate R` starts R journeys a second whatever the
//!   latency, each measured from the moment it was due, so a slow system cannot
//!   hide its queue (no coordinated omission); without it, `--users` shoppers each
//!   start their next journey as the last one ends, after `--think` (none by
//!   default, or `MIN-MAX` ms).
//! - **Warm-up, then measurement.** Nothing of the `--warmup` is counted.
//! - **Per step:** an HDR histogram (1 µs to 60 s, 3 significant digits), errors by
//!   kind (status code, timeout, connection, a checkout not confirmed); a live
//!   progress line on a terminal, then a table, or one JSON object with `--json`.
//!
//! Products are stocked plentifully first when `--admin` names an admin account
//! (`emporium admin grant EMAIL`), so checkouts measure the shop rather than sold-out stock.

pub mod report;
mod shopper;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Args, ValueEnum};

use report::Report;
use shopper::{Shop, Step};

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base: String,
    /// Which journeys.
    #[arg(long, value_enum, default_value_t = Mix::Boutique)]
    pub mix: Mix,
    /// Shoppers (each signs up and signs in first).
    #[arg(long, default_value_t = 32)]
    pub users: usize,
    /// Open loop at this many journeys a second (default: closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured time, in seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Uncounted time before it, in seconds.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Think time between a shopper's journeys (closed loop): `MIN-MAX` ms, or 0.
    #[arg(long, default_value = "0", value_parser = parse_think)]
    pub think: (u64, u64),
    /// Products the journeys use (the first N of the catalog).
    #[arg(long, default_value_t = 20)]
    pub skus: usize,
    /// An admin account (`emporium admin grant EMAIL`) that stocks those products
    /// first; registered if new.
    #[arg(long)]
    pub admin: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The data folder of the `emporium up` under load: the shoppers' addresses are
    /// confirmed as its operator (checking out needs a confirmed address). By
    /// default the shop `emporium up` last ran.
    #[arg(long, env = "EMPORIUM_LOAD_DATA_DIR")]
    pub data_dir: Option<std::path::PathBuf>,
}

/// Which journeys a run makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mix {
    /// Online Boutique's locustfile: browse 10, view cart 3, add 2, index 1, checkout 1;
    /// plus search 2 (a word, or two with a typo).
    Boutique,
    /// Checkouts only (add one unit, then place the order).
    Checkout,
    /// Reads only: browse 10, index 1.
    Browse,
    /// Search only: a word, two words with a typo, a facet filter, a suggestion,
    /// and catalog's listing of the same filter to compare.
    Search,
    /// Online Boutique's locustfile through the storefront's pages, as a browser
    /// without scripts: the product page 10, the cart 3, add to the cart (the form,
    /// then the cart it leads to) 2, the home page 1, check out (add, the checkout
    /// form, the order page) 1.
    Storefront,
}

impl Mix {
    /// The journeys and their weights.
    fn weights(self) -> &'static [(Step, u32)] {
        match self {
            Mix::Boutique => &[
                (Step::Browse, 10),
                (Step::ViewCart, 3),
                (Step::AddToCart, 2),
                (Step::Index, 1),
                (Step::Checkout, 1),
                (Step::SearchWord, 1),
                (Step::SearchTypo, 1),
            ],
            Mix::Checkout => &[(Step::Checkout, 1)],
            Mix::Storefront => &[
                (Step::Browse, 10),
                (Step::ViewCart, 3),
                (Step::AddToCart, 2),
                (Step::Index, 1),
                (Step::Checkout, 1),
            ],
            Mix::Browse => &[(Step::Browse, 10), (Step::Index, 1)],
            Mix::Search => &[
                (Step::SearchWord, 1),
                (Step::SearchTypo, 1),
                (Step::SearchFacets, 1),
                (Step::Suggest, 1),
                (Step::ListCategory, 1),
            ],
        }
    }
}

fn parse_think(text: &str) -> Result<(u64, u64), String> {
    let bad = || format!("`{text}`: expected 0 or MIN-MAX milliseconds, e.g. 1000-10000");
    match text.split_once('-') {
        None => text.trim().parse().map(|ms| (ms, ms)).map_err(|_| bad()),
        Some((min, max)) => {
            let min: u64 = min.trim().parse().map_err(|_| bad())?;
            let max: u64 = max.trim().parse().map_err(|_| bad())?;
            if min > max {
                return Err(bad());
            }
            Ok((min, max))
        }
    }
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let (report, shop, tokens) = prepare(&args).await?;
    let progress = report::Progress::start(report.clone(), args.json, args.warmup + args.seconds);
    if args.warmup > 0 {
        drive(&args, &shop, &tokens, Duration::from_secs(args.warmup)).await;
    }
    report.reset();
    let started = Instant::now();
    drive(&args, &shop, &tokens, Duration::from_secs(args.seconds)).await;
    let elapsed = started.elapsed();
    progress.finish();
    let summary = report.summary(elapsed, &args);
    if args.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.table());
    }
    Ok(())
}

/// The shoppers of a run, signed up and in, and the products stocked: what
/// `emporium load` and `emporium soak` start from.
pub async fn prepare(args: &LoadArgs) -> anyhow::Result<(Arc<Report>, Arc<Shop>, Vec<String>)> {
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        bail!("--rate must be a positive number of journeys a second");
    }
    let report = Arc::new(Report::new());
    let mut shop = Shop::new(&args.base, report.clone())?;
    shop.pages = args.mix == Mix::Storefront;
    shop.operator = match crate::operator::registry(None, args.data_dir.clone()) {
        Ok(registry) => Some(registry),
        Err(e) => {
            eprintln!(
                "warning: no running shop's data folder ({e:#}); shoppers' addresses stay \
                 unconfirmed and their checkouts are refused unless \
                 orders.require_verified_email = false"
            );
            None
        }
    };
    shop.products = shop.fetch_products(args.skus).await?;
    if let Some(admin) = &args.admin {
        shop.stock(admin).await?;
    }
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let emails: Vec<String> = (0..args.users)
        .map(|i| format!("load-{}-{i}@example.com", &tag[..8]))
        .collect();
    let mut tokens = Vec::with_capacity(args.users);
    // Sign-ups hash passwords (argon2): a few at a time.
    for chunk in emails.chunks(8) {
        let signed = futures::future::join_all(chunk.iter().map(|e| shop.sign_up(e))).await;
        for token in signed {
            tokens.push(token?);
        }
    }
    Ok((report, Arc::new(shop), tokens))
}

/// How long a closed-loop shopper waits after a failed journey, unless the shop
/// asked for longer with `Retry-After` (a shed request does); either is spread
/// to up to twice as long (`shopper::spread`).
const FAILURE_PAUSE: Duration = Duration::from_millis(250);

/// Makes journeys for `length`, in the loop the arguments ask for.
pub async fn drive(args: &LoadArgs, shop: &Arc<Shop>, tokens: &[String], length: Duration) {
    let end = Instant::now() + length;
    let weights = args.mix.weights();
    match args.rate {
        None => {
            let shoppers = tokens.iter().enumerate().map(|(i, token)| {
                let shop = shop.clone();
                let token = token.clone();
                let think = args.think;
                tokio::spawn(async move {
                    let mut dice = shopper::Dice::new(i as u64);
                    while Instant::now() < end {
                        let step = dice.pick(weights);
                        if let Err(failure) =
                            shop.journey(step, &token, &mut dice, Instant::now()).await
                        {
                            // As a person would: a moment before trying again, rather
                            // than a loop of instant failures against a shop that is
                            // down, and as long as the shop asked when it shed the
                            // request (within the run).
                            // Spread, so shoppers refused together do not return
                            // together (see `shopper::spread`).
                            let pause = failure.retry_after.unwrap_or(FAILURE_PAUSE);
                            let pause = shopper::spread(pause.max(FAILURE_PAUSE), dice.unit());
                            let left = end.saturating_duration_since(Instant::now());
                            tokio::time::sleep(pause.min(left)).await;
                        }
                        let pause = dice.between(think.0, think.1);
                        if pause > 0 {
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        }
                    }
                })
            });
            futures::future::join_all(shoppers).await;
        }
        Some(rate) => {
            // Journeys are due at a fixed rate; one due while every shopper is busy
            // waits for one, and its latency includes the wait.
            let (idle_tx, idle_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            for token in tokens {
                let _ = idle_tx.send(token.clone());
            }
            let idle_rx = Arc::new(tokio::sync::Mutex::new(idle_rx));
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut dice = shopper::Dice::new(u64::MAX);
            let mut running = Vec::new();
            let mut due = Instant::now();
            while due < end {
                tokio::time::sleep_until(due.into()).await;
                let step = dice.pick(weights);
                let mut own = shopper::Dice::new(dice.next());
                let (shop, idle_rx, idle_tx) = (shop.clone(), idle_rx.clone(), idle_tx.clone());
                let scheduled = due;
                running.push(tokio::spawn(async move {
                    let token = idle_rx.lock().await.recv().await;
                    if let Some(token) = token {
                        let _ = shop.journey(step, &token, &mut own, scheduled).await;
                        let _ = idle_tx.send(token);
                    }
                }));
                due += interval;
            }
            futures::future::join_all(running).await;
        }
    }
}
