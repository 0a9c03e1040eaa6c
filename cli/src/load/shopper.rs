//! What a shopper does: the steps of a journey, each one measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::report::Report;

/// A measured step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    SignUp,
    SignIn,
    Index,
    Browse,
    ViewCart,
    AddToCart,
    Checkout,
    /// `/api/search` for one word of a product's name.
    SearchWord,
    /// `/api/search` for two words of a product's name, one with a typo.
    SearchTypo,
    /// `/api/search` with no text: a category, in stock, cheapest first.
    SearchFacets,
    /// `/api/search/suggest` for the first letters of a word.
    Suggest,
    /// `/api/catalog/products` with the same filter as `SearchFacets`.
    ListCategory,
}

impl Step {
    pub const ALL: [Step; 12] = [
        Step::SignUp,
        Step::SignIn,
        Step::Index,
        Step::Browse,
        Step::ViewCart,
        Step::AddToCart,
        Step::Checkout,
        Step::SearchWord,
        Step::SearchTypo,
        Step::SearchFacets,
        Step::Suggest,
        Step::ListCategory,
    ];

    /// Whether the step is one idempotent read (a GET), which a retry can
    /// always repeat.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Step::Index
                | Step::Browse
                | Step::ViewCart
                | Step::SearchWord
                | Step::SearchTypo
                | Step::SearchFacets
                | Step::Suggest
                | Step::ListCategory
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::SignUp => "sign_up",
            Step::SignIn => "sign_in",
            Step::Index => "index",
            Step::Browse => "browse_product",
            Step::ViewCart => "view_cart",
            Step::AddToCart => "add_to_cart",
            Step::Checkout => "checkout",
            Step::SearchWord => "search_word",
            Step::SearchTypo => "search_typo",
            Step::SearchFacets => "search_facets",
            Step::Suggest => "suggest",
            Step::ListCategory => "list_category",
        }
    }

    /// Done once per shopper before the journeys (not reset by the warm-up).
    pub fn is_setup(self) -> bool {
        matches!(self, Step::SignUp | Step::SignIn)
    }
}

/// A product the journeys use.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub category: String,
}

impl Product {
    /// The words of its name, letters only.
    fn words(&self) -> Vec<&str> {
        self.name
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() >= 3)
            .collect()
    }
}

/// `word` with one typo (a letter dropped) when it is long enough to allow one.
fn with_typo(word: &str, at: usize) -> String {
    let chars: Vec<char> = word.chars().collect();
    if chars.len() < 5 {
        return word.to_string();
    }
    let drop = 1 + at % (chars.len() - 1);
    chars
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != drop)
        .map(|(_, c)| c)
        .collect()
}

/// The shop under test, through its gateway.
pub struct Shop {
    http: reqwest::Client,
    base: String,
    report: Arc<Report>,
    pub products: Vec<Product>,
    /// Journeys through the storefront's pages (as a browser without scripts)
    /// rather than the API.
    pub pages: bool,
    /// The running shop's registry, as its operator: confirms the shoppers'
    /// addresses.
    pub operator: Option<emporium_client::RegistryClient>,
    /// Whether a confirmation failed already (warned once).
    unconfirmed: std::sync::atomic::AtomicBool,
}

/// The CSRF token a page-browsing shopper sends, as cookie and form field alike
/// (the double-submit check only wants them equal).
const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const PASSWORD: &str = "correct horse battery";
/// Most tries of one request of the setup (sign-up, sign-in) the shop sheds.
const SETUP_TRIES: u32 = 10;

/// What went wrong in a step, as a kind to count.
fn kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if let Some(status) = e.status() {
        format!("HTTP {}", status.as_u16())
    } else {
        "transport".into()
    }
}

/// Longest `Retry-After` a shopper heeds: a longer one is waited this long.
const MOST_RETRY_AFTER: Duration = Duration::from_secs(10);

/// A step that failed: the kind it is counted as, and how long the shop asked
/// to be left alone before the next (its `Retry-After` in seconds), if it did.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: String,
    pub retry_after: Option<Duration>,
}

impl From<String> for Failure {
    fn from(kind: String) -> Self {
        Self {
            kind,
            retry_after: None,
        }
    }
}

/// An answer's `Retry-After` in seconds (a date is not heeded).
fn retry_after_secs(r: &reqwest::Response) -> Option<u64> {
    r.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// How long to wait when asked to wait `asked`, with `unit` drawn uniformly
/// from [0, 1): between once and twice as long. `Retry-After` is whole seconds
/// and the same for everyone a shedding server refuses at once, so shoppers who
/// each waited exactly that came back together, and the server, at its lowest
/// limit, admitted a few of the herd and sent the rest away again for another
/// second: after an overload, 64 shoppers without think time confirmed 31–47
/// checkouts a second against 232–282 before it, and 137–169 with the wait
/// spread (AWS's "Exponential Backoff and Jitter" makes the same case).
pub fn spread(asked: Duration, unit: f64) -> Duration {
    asked + asked.mul_f64(unit.clamp(0.0, 1.0))
}

impl Failure {
    /// An answer that is not a success, with its `Retry-After`.
    fn answer(r: &reqwest::Response) -> Self {
        let retry_after = retry_after_secs(r).map(|s| Duration::from_secs(s).min(MOST_RETRY_AFTER));
        Self {
            kind: format!("HTTP {}", r.status().as_u16()),
            retry_after,
        }
    }

    /// The failure of a step inside a journey, counted under the step's name.
    fn within(self, step: &str) -> Self {
        Self {
            kind: format!("{step}: {}", self.kind),
            ..self
        }
    }
}

/// The outcome of a request whose answer only needs to be a success: read to its
/// last byte (a response is done when its body is), then judged by its status.
async fn done(sent: Result<reqwest::Response, reqwest::Error>) -> Result<(), Failure> {
    let r = sent.map_err(|e| kind(&e))?;
    let failed = (!r.status().is_success()).then(|| Failure::answer(&r));
    r.bytes().await.map_err(|e| kind(&e))?;
    failed.map_or(Ok(()), Err)
}

impl Shop {
    pub fn new(base: &str, report: Arc<Report>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4096)
            // Page journeys follow redirects themselves, counting each request.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            report,
            products: Vec::new(),
            pages: false,
            operator: None,
            unconfirmed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The first `n` products of the catalog, by name.
    pub async fn fetch_products(&self, n: usize) -> anyhow::Result<Vec<Product>> {
        let limit = n.clamp(1, 100);
        let page: Value = self
            .http
            .get(format!(
                "{}/api/catalog/products?limit={limit}&sort=name",
                self.base
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("listing products at {}", self.base))?
            .json()
            .await?;
        let products: Vec<Product> = page["items"]
            .as_array()
            .context("a product page has items")?
            .iter()
            .filter_map(|p| {
                Some(Product {
                    id: p["id"].as_str()?.to_string(),
                    sku: p["sku"].as_str()?.to_string(),
                    name: p["name"].as_str()?.to_string(),
                    category: p["category"].as_str()?.to_string(),
                })
            })
            .collect();
        if products.is_empty() {
            bail!("the catalog is empty");
        }
        Ok(products)
    }

    /// Stocks every product plentifully as `admin`, once inventory knows it.
    pub async fn stock(&self, admin: &str) -> anyhow::Result<()> {
        let token = self.sign_up(admin).await?;
        for p in &self.products {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = self
                    .http
                    .put(format!("{}/api/inventory/{}", self.base, p.sku))
                    .bearer_auth(&token)
                    .json(&json!({"available": 100_000_000}))
                    .send()
                    .await?;
                if r.status().is_success() {
                    break;
                }
                if r.status() == 403 {
                    bail!(
                        "{admin} is not an admin: grant it the role with \
                         `emporium admin grant {admin}` (before or after it registers)"
                    );
                }
                // 404 until inventory has applied the product's event.
                if Instant::now() > deadline {
                    bail!("cannot stock {}: {}", p.sku, r.status());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Sends a request of the setup, again after its `Retry-After` while the shop
    /// sheds it (503): hashing passwords is the costliest thing users does, and a
    /// few at once can be more than it admits. At most [`SETUP_TRIES`] tries.
    async fn setup_call(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let mut tries = 1;
        loop {
            let r = request().send().await?;
            if r.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE || tries >= SETUP_TRIES {
                return Ok(r);
            }
            let wait = retry_after_secs(&r).unwrap_or(1).clamp(1, 5);
            tokio::time::sleep(spread(Duration::from_secs(wait), fastrand::f64())).await;
            tries += 1;
        }
    }

    /// Signs up `email` (or finds it registered) and signs in: an access token.
    pub async fn sign_up(&self, email: &str) -> anyhow::Result<String> {
        let started = Instant::now();
        let r = self
            .setup_call(|| {
                self.http
                    .post(format!("{}/api/users/register", self.base))
                    .json(&json!({"email": email, "password": PASSWORD, "name": "Load Tester"}))
            })
            .await;
        let outcome = match &r {
            Ok(r) if r.status() == 201 || r.status() == 409 => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(kind(e)),
        };
        self.report.record(Step::SignUp, started, outcome.clone());
        if let Err(why) = outcome {
            bail!("signing up {email}: {why}");
        }
        // Confirmed by the operator, as if the shopper had opened the mailed link
        // (before signing in: the access token says so).
        if let Some(registry) = &self.operator
            && let Err(e) = crate::operations::vouch(registry, email).await
            && !self
                .unconfirmed
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!("warning: cannot confirm shoppers' addresses: {e:#}");
        }
        let started = Instant::now();
        let token = async {
            let body: Value = self
                .setup_call(|| {
                    self.http
                        .post(format!("{}/api/users/login", self.base))
                        .json(&json!({"email": email, "password": PASSWORD}))
                })
                .await?
                .error_for_status()?
                .json()
                .await?;
            Ok::<_, reqwest::Error>(body["access_token"].as_str().map(str::to_string))
        }
        .await;
        let token = match token {
            Ok(Some(token)) => Ok(token),
            Ok(None) => Err("no access token".to_string()),
            Err(e) => Err(kind(&e)),
        };
        self.report.record(
            Step::SignIn,
            started,
            token.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        token.map_err(|why| anyhow::anyhow!("signing in {email}: {why}"))
    }

    /// One journey of `step` by the shopper holding `token`, measured from `due`.
    /// Makes one journey and records it; how it failed, if it did.
    pub async fn journey(
        &self,
        step: Step,
        token: &str,
        dice: &mut Dice,
        due: Instant,
    ) -> Result<(), Failure> {
        let product = &self.products[dice.below(self.products.len())];
        let outcome = if self.pages {
            self.page_journey(step, token, product).await
        } else {
            self.api_journey(step, token, dice, product).await
        };
        self.report
            .record(step, due, outcome.clone().map_err(|f| f.kind));
        outcome
    }

    /// The journeys through the public API.
    async fn api_journey(
        &self,
        step: Step,
        token: &str,
        dice: &mut Dice,
        product: &Product,
    ) -> Result<(), Failure> {
        match step {
            Step::Index => self.get("/api/catalog/products?limit=20", None).await,
            Step::Browse => {
                self.get(&format!("/api/catalog/products/{}", product.id), None)
                    .await
            }
            Step::ViewCart => self.get("/api/cart", Some(token)).await,
            Step::AddToCart => self.add(token, &product.sku).await,
            Step::Checkout => match self.add(token, &product.sku).await {
                Ok(()) => self.check_out(token).await,
                Err(why) => Err(why.within("add")),
            },
            Step::SearchWord | Step::SearchTypo | Step::Suggest => {
                let words = product.words();
                let pick = dice.below(words.len().max(1));
                let word = words.get(pick).copied().unwrap_or("lamp");
                let path = match step {
                    Step::SearchWord => format!("/api/search?q={word}"),
                    Step::SearchTypo => {
                        let other = words.get((pick + 1) % words.len().max(1)).copied();
                        let typo = with_typo(word, dice.below(8));
                        format!("/api/search?q={}%20{typo}", other.unwrap_or(""))
                    }
                    _ => format!("/api/search/suggest?q={}", &word[..word.len().min(4)]),
                };
                self.get(&path, None).await
            }
            Step::SearchFacets => {
                let path = format!(
                    "/api/search?category={}&in_stock=true&sort=price",
                    product.category
                );
                self.get(&path, None).await
            }
            Step::ListCategory => {
                let path = format!(
                    "/api/catalog/products?category={}&sort=price",
                    product.category
                );
                self.get(&path, None).await
            }
            Step::SignUp | Step::SignIn => Ok(()),
        }
    }

    /// The same journeys through the storefront: the pages a browser without
    /// scripts asks for, with the session cookie (the token) and the CSRF pair.
    /// Every request, redirects followed, is counted.
    async fn page_journey(
        &self,
        step: Step,
        token: &str,
        product: &Product,
    ) -> Result<(), Failure> {
        match step {
            Step::Index => self.page(token, "/").await.map(drop),
            Step::Browse => self
                .page(token, &format!("/products/{}", product.sku))
                .await
                .map(drop),
            Step::ViewCart => self.page(token, "/cart").await.map(drop),
            Step::AddToCart => self.page_add(token, &product.sku).await,
            Step::Checkout => {
                self.page_add(token, &product.sku)
                    .await
                    .map_err(|why| why.within("add"))?;
                let key = uuid::Uuid::new_v4().to_string();
                let order = self
                    .form(
                        token,
                        "/checkout",
                        &[
                            ("key", key.as_str()),
                            ("name", "Load Tester"),
                            ("line1", "1 Bench St"),
                            ("city", "Perf"),
                            ("postal_code", "1"),
                            ("country", "US"),
                            ("number", "4242424242424242"),
                            ("exp_month", "12"),
                            ("exp_year", "2035"),
                            ("cvc", "123"),
                        ],
                    )
                    .await?;
                if order.contains("class=\"status confirmed\"") {
                    Ok(())
                } else if order.contains("class=\"status cancelled\"") {
                    Err(String::from("cancelled").into())
                } else {
                    Err(String::from("not confirmed").into())
                }
            }
            _ => self.page(token, "/search?q=lamp").await.map(drop),
        }
    }

    fn cookies(token: &str) -> String {
        format!("emporium_session={token}; emporium_csrf={CSRF}")
    }

    /// A page's HTML.
    async fn page(&self, token: &str, path: &str) -> Result<String, Failure> {
        self.report.request();
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, Self::cookies(token))
            .send()
            .await
            .map_err(|e| kind(&e))?;
        let failed = (!r.status().is_success()).then(|| Failure::answer(&r));
        let html = r.text().await.map_err(|e| kind(&e))?;
        failed.map_or(Ok(html), Err)
    }

    /// Posts a form as the shop's own page would, follows its redirect, and gives
    /// the page it lands on.
    async fn form(
        &self,
        token: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<String, Failure> {
        let body = {
            let mut body = form_urlencoded::Serializer::new(String::new());
            body.append_pair("csrf", CSRF);
            for (k, v) in fields {
                body.append_pair(k, v);
            }
            body.finish()
        };
        self.report.request();
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, Self::cookies(token))
            .header(reqwest::header::ORIGIN, &self.base)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| kind(&e))?;
        let status = r.status();
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let failed = Failure::answer(&r);
        r.bytes().await.map_err(|e| kind(&e))?;
        match (status.as_u16(), location) {
            (303, Some(to)) => self.page(token, &to).await,
            _ => Err(failed),
        }
    }

    async fn page_add(&self, token: &str, sku: &str) -> Result<(), Failure> {
        self.form(token, "/cart/items", &[("sku", sku), ("quantity", "1")])
            .await
            .map(drop)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Result<(), Failure> {
        self.report.request();
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        done(request.send().await).await
    }

    async fn add(&self, token: &str, sku: &str) -> Result<(), Failure> {
        self.report.request();
        let sent = self
            .http
            .post(format!("{}/api/cart/items", self.base))
            .bearer_auth(token)
            // Keyed, as a careful client does: the gateway may then send it
            // again after a reset connection without adding twice.
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&json!({"sku": sku, "quantity": 1}))
            .send()
            .await;
        done(sent).await
    }

    async fn check_out(&self, token: &str) -> Result<(), Failure> {
        let body = json!({
            "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"},
            "shipping_address": {"name": "Load Tester", "line1": "1 Bench St", "city": "Perf",
                                 "postal_code": "1", "country": "US"},
        });
        self.report.request();
        let r = self
            .http
            .post(format!("{}/api/orders", self.base))
            .bearer_auth(token)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await
            .map_err(|e| kind(&e))?;
        if !r.status().is_success() {
            return Err(Failure::answer(&r));
        }
        let order: Value = r.json().await.map_err(|e| kind(&e))?;
        match order["status"].as_str() {
            Some("CONFIRMED") => Ok(()),
            Some("CANCELLED") => Err(format!(
                "cancelled: {}",
                order["reason"].as_str().unwrap_or("no reason")
            )
            .into()),
            Some(other) => Err(format!("still {other}").into()),
            None => Err(String::from("no order status").into()),
        }
    }
}

/// A shopper's dice: xorshift64*, seeded per shopper, so a run's mix is the same
/// every time and needs no shared random source.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number drawn uniformly from [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `min..=max`.
    pub fn between(&mut self, min: u64, max: u64) -> u64 {
        min + self.next() % (max - min + 1)
    }

    /// A step, with the chances `weights` give.
    pub fn pick(&mut self, weights: &[(Step, u32)]) -> Step {
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        let mut roll = (self.next() % u64::from(total.max(1))) as u32;
        for &(step, weight) in weights {
            if roll < weight {
                return step;
            }
            roll -= weight;
        }
        weights[0].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, retry_after: Option<&str>) -> reqwest::Response {
        let mut r = http::Response::builder().status(status);
        if let Some(value) = retry_after {
            r = r.header("retry-after", value);
        }
        reqwest::Response::from(r.body("").expect("response"))
    }

    #[test]
    fn a_shed_request_says_how_long_to_wait() {
        let shed = Failure::answer(&answer(503, Some("1")));
        assert_eq!(shed.kind, "HTTP 503");
        assert_eq!(shed.retry_after, Some(Duration::from_secs(1)));
        let inside = shed.within("add");
        assert_eq!(inside.kind, "add: HTTP 503");
        assert_eq!(inside.retry_after, Some(Duration::from_secs(1)), "kept");
        assert_eq!(
            Failure::answer(&answer(503, Some("3600"))).retry_after,
            Some(MOST_RETRY_AFTER),
            "a long one is cut short"
        );
        assert_eq!(Failure::answer(&answer(500, None)).retry_after, None);
        assert_eq!(
            Failure::answer(&answer(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"))).retry_after,
            None,
            "a date is not heeded"
        );
    }

    #[test]
    fn shoppers_asked_to_wait_together_come_back_spread_out() {
        let second = Duration::from_secs(1);
        assert_eq!(spread(second, 0.0), second, "never sooner than asked");
        assert!(spread(second, 1.0) <= 2 * second);
        // A herd of 64 refused at once: their returns spread over the second
        // after the one asked, a tenth of a second holding a handful of them.
        let mut dice = Dice::new(3);
        let mut tenths = [0u32; 10];
        for _ in 0..64 {
            let wait = spread(second, dice.unit());
            assert!((second..2 * second).contains(&wait), "{wait:?}");
            tenths[((wait - second).as_millis() / 100) as usize] += 1;
        }
        assert!(tenths.iter().all(|&n| (1..=16).contains(&n)), "{tenths:?}");
    }

    #[test]
    fn a_typo_drops_one_letter_of_a_long_word_only() {
        assert_eq!(with_typo("lamp", 3), "lamp");
        let typo = with_typo("Headphones", 2);
        assert_eq!(typo.chars().count(), 9);
        assert!(typo.starts_with('H'), "the first letter stays: {typo}");
        assert_ne!(typo, "Headphones");
    }

    #[test]
    fn the_dice_follow_the_weights() {
        let weights = [(Step::Browse, 10), (Step::ViewCart, 3), (Step::Checkout, 1)];
        let mut dice = Dice::new(7);
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..14_000 {
            *counts.entry(dice.pick(&weights)).or_insert(0) += 1;
        }
        let share = |s| f64::from(counts[&s]) / 14_000.0;
        assert!(
            (share(Step::Browse) - 10.0 / 14.0).abs() < 0.02,
            "{counts:?}"
        );
        assert!(
            (share(Step::ViewCart) - 3.0 / 14.0).abs() < 0.02,
            "{counts:?}"
        );
        assert!(
            (share(Step::Checkout) - 1.0 / 14.0).abs() < 0.02,
            "{counts:?}"
        );
        let t = (0..1000).map(|_| dice.between(5, 9)).collect::<Vec<_>>();
        assert!(t.iter().all(|v| (5..=9).contains(v)));
        assert!(t.contains(&5) && t.contains(&9));
    }
}
