//! The storefront in a real Chromium (Debian's chromium and chromium-driver, over
//! WebDriver), against the real `emporium up`: what a person does and sees.
//!
//! Each journey runs in a fresh browser session as a fresh shopper and asserts on
//! the page's text. On failure the journey saves a screenshot and the page's HTML
//! under the test's temporary folder (kept) and prints their paths. The backend
//! and shape do not matter to a browser, so `scripts/test` runs these in the
//! embedded pass only.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::checkout::{APPROVE, available, set_stock, shopper, stocked_sku};
use super::{Frozen, Up, http};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = emporium_testkit::PASSWORD;

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    /// Starts chromedriver; None (the test says SKIPPED) when Chromium is not
    /// installed and the run does not require it.
    fn start(test: &str) -> Option<Self> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            let missing = "chromium and chromium-driver (apt-get install chromium chromium-driver)";
            if emporium_testkit::servers::required() {
                panic!("{test} needs {missing}");
            }
            eprintln!("SKIPPED {test}: {missing}");
            return None;
        }
        let port = super::checkout::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Some(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while http()
            .get(format!("{}/status", self.url))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium with an empty profile; JavaScript on or off.
    async fn session(&self, profile: &Path, javascript: bool) -> Client {
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-quic",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if !javascript {
            options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let caps = json!({"browserName": "chrome", "goog:chromeOptions": options});
        let Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session on the shop, as one person.
struct Page {
    c: Client,
    base: String,
    /// Where the shop's mail lands: the shopper's mailbox.
    mail_dir: std::path::PathBuf,
}

impl Page {
    async fn goto(&self, path: &str) -> anyhow::Result<()> {
        self.c
            .goto(&format!("{}{path}", self.base))
            .await
            .with_context(|| format!("open {path}"))
    }

    async fn find(&self, locator: Locator<'_>) -> anyhow::Result<fantoccini::elements::Element> {
        self.c
            .find(locator)
            .await
            .with_context(|| format!("find {locator:?}"))
    }

    /// Clicks `css`, which navigates: returns once the next page has loaded.
    async fn click(&self, css: &str) -> anyhow::Result<()> {
        let target = self.find(Locator::Css(css)).await?;
        self.navigating(|| async { target.click().await })
            .await
            .with_context(|| format!("click {css}"))
    }

    /// Clicks `css`, which changes only this page (a radio button).
    async fn choose(&self, css: &str) -> anyhow::Result<()> {
        Ok(self.find(Locator::Css(css)).await?.click().await?)
    }

    /// Clicks the link whose text is `text`, and waits for its page.
    async fn follow(&self, text: &str) -> anyhow::Result<()> {
        let link = self.find(Locator::LinkText(text)).await?;
        self.navigating(|| async { link.click().await })
            .await
            .with_context(|| format!("follow {text:?}"))
    }

    /// Runs `act`, then waits until the document it started on is gone and the
    /// next one has loaded (WebDriver's click may return before either).
    async fn navigating<F, Fut>(&self, act: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let old = self.c.find(Locator::Css("html")).await?;
        act().await?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while old.tag_name().await.is_ok() {
            ensure!(Instant::now() < deadline, "the page did not change");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.loaded(deadline).await
    }

    async fn loaded(&self, deadline: Instant) -> anyhow::Result<()> {
        loop {
            match self.c.execute("return document.readyState", vec![]).await {
                Ok(state) if state.as_str() == Some("complete") => return Ok(()),
                Ok(_) => {}
                // Scripts may be off: a body is the best sign left.
                Err(_) if self.c.find(Locator::Css("body")).await.is_ok() => return Ok(()),
                Err(_) => {}
            }
            ensure!(Instant::now() < deadline, "the page did not finish loading");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Types `value` into the input `css`, replacing what was there.
    async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let input = self.find(Locator::Css(css)).await?;
        input.clear().await?;
        Ok(input.send_keys(value).await?)
    }

    /// Whether the page's script ran (it marks `<html class="js">`).
    async fn scripted(&self) -> anyhow::Result<bool> {
        let class = self
            .c
            .find(Locator::Css("html"))
            .await?
            .attr("class")
            .await?;
        Ok(class.is_some_and(|c| c.split_whitespace().any(|c| c == "js")))
    }

    /// What the page shows, as text.
    async fn text(&self) -> anyhow::Result<String> {
        Ok(self.c.find(Locator::Css("body")).await?.text().await?)
    }

    async fn path(&self) -> anyhow::Result<String> {
        let url = self.c.current_url().await?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        })
    }

    /// Waits (10 s at most) until the page shows `needle`, reloading every half
    /// second when `reload` (for what another service delivers later).
    async fn until_shown(&self, needle: &str, reload: bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Between two documents there may be no body for a moment.
            let text = self.text().await.unwrap_or_default();
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() > deadline {
                bail!("the page never showed {needle:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(if reload { 500 } else { 100 })).await;
            if reload {
                self.c.refresh().await?;
                self.loaded(deadline + Duration::from_secs(5)).await?;
            }
        }
    }

    async fn sign_up(&self, name: &str, email: &str) -> anyhow::Result<()> {
        self.goto("/signup").await?;
        self.fill("#name", name).await?;
        self.fill("#email", email).await?;
        self.fill("#password", PASSWORD).await?;
        self.click("form.narrow button[type=submit]").await?;
        self.until_shown("Welcome! Your account is ready.", false)
            .await?;
        self.confirm_email(email).await
    }

    /// Opens the link in the mail that confirms `email` and presses its button, as
    /// its owner would (checking out needs it).
    async fn confirm_email(&self, email: &str) -> anyhow::Result<()> {
        let token = emporium_testkit::mail::mailed_token(&self.mail_dir, email, "/verify").await;
        self.goto(&format!("/verify?token={token}")).await?;
        self.click("form.confirm button[type=submit]").await?;
        self.until_shown("Your email address is confirmed.", false)
            .await?;
        Ok(())
    }

    async fn sign_in(&self, email: &str) -> anyhow::Result<()> {
        self.fill("#email", email).await?;
        self.fill("#password", PASSWORD).await?;
        self.click("form.narrow button[type=submit]").await
    }

    /// Opens `sku`'s page and adds `quantity` to the cart.
    async fn add(&self, sku: &str, quantity: i64) -> anyhow::Result<()> {
        self.goto(&format!("/products/{sku}")).await?;
        self.fill("#quantity", &quantity.to_string()).await?;
        self.click("form.add button[type=submit]").await
    }

    /// Fills the checkout form (the page must be open) with `card`.
    async fn fill_checkout(&self, card: &str) -> anyhow::Result<()> {
        for (field, value) in [
            ("#name", "Ada Lovelace"),
            ("#line1", "1 Analytical Way"),
            ("#city", "London"),
            ("#postal_code", "N1 1AA"),
            ("#country", "GB"),
            ("#number", card),
            ("#exp_month", "12"),
            ("#exp_year", "2035"),
            ("#cvc", "123"),
        ] {
            self.fill(field, value).await?;
        }
        Ok(())
    }

    /// Fills the open checkout form with `card`, places the order, and waits for
    /// its page to show `outcome` (`Confirmed`, `Cancelled`): the page's text.
    async fn place_order(&self, card: &str, outcome: &str) -> anyhow::Result<String> {
        self.fill_checkout(card).await?;
        self.click("form.checkout-form button[type=submit]").await?;
        self.until_shown(outcome, true).await
    }

    /// The order number the confirmation page shows (`Order 1a2b3c4d`).
    async fn order_number(&self) -> anyhow::Result<String> {
        let h1 = self.c.find(Locator::Css("h1")).await?.text().await?;
        h1.strip_prefix("Order ")
            .map(str::to_string)
            .ok_or_else(|| anyhow!("not an order page: {h1}"))
    }
}

/// Runs `journey` in a fresh session; on failure saves the page's screenshot and
/// HTML under `artifacts` and returns the error with their paths.
async fn journey<F, Fut>(
    name: &str,
    up: &Up,
    driver: &Driver,
    artifacts: &Path,
    javascript: bool,
    steps: F,
) -> Result<(), String>
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = (Page, anyhow::Result<()>)>,
{
    let profile = artifacts.join(format!("{name}-profile"));
    let c = driver.session(&profile, javascript).await;
    let page = Page {
        c,
        base: up.base.clone(),
        mail_dir: up.mail_dir(),
    };
    let started = Instant::now();
    let (page, result) = steps(page).await;
    let outcome = match result {
        Ok(()) => {
            eprintln!("journey {name}: ok in {:?}", started.elapsed());
            Ok(())
        }
        Err(e) => {
            let shot = artifacts.join(format!("{name}.png"));
            let html = artifacts.join(format!("{name}.html"));
            if let Ok(png) = page.c.screenshot().await {
                let _ = std::fs::write(&shot, png);
            }
            if let Ok(source) = page.c.source().await {
                let _ = std::fs::write(&html, source);
            }
            let at = page.path().await.unwrap_or_default();
            Err(format!(
                "journey {name} failed at {at}: {e:#}\n  screenshot: {}\n  html: {}",
                shot.display(),
                html.display()
            ))
        }
    };
    let _ = page.c.close().await;
    outcome
}

/// Keeps `dir` when journeys failed, so their screenshots stay; reports them.
fn report(dir: tempfile::TempDir, failures: Vec<String>) {
    if failures.is_empty() {
        return;
    }
    let kept: PathBuf = dir.keep();
    panic!(
        "{} journey(s) failed (artifacts in {}):\n{}",
        failures.len(),
        kept.display(),
        failures.join("\n")
    );
}

/// Wraps a journey's steps so the page comes back with the result.
macro_rules! steps {
    (|$p:ident| $body:block) => {
        |$p: Page| async move {
            let result: anyhow::Result<()> = async { $body }.await;
            ($p, result)
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_buy_review_and_recover_in_chromium() {
    let Some(driver) = Driver::start("browser journeys") else {
        return;
    };
    let data = tempfile::tempdir().expect("data dir");
    let artifacts = tempfile::tempdir().expect("artifacts dir");
    let up = Up::start(data.path());
    driver.ready().await;
    let dir = artifacts.path();
    let mut failures = Vec::new();
    let admin = shopper(&up, "boss@example.com").await;
    let sku = stocked_sku(&up, 0).await;
    let sku: &str = &sku;
    let up: &Up = &up;
    let driver = &driver;

    // Sign up → search with a typo → a facet → the product → add 2 → the cart →
    // 3 → checkout → confirmed → in the history → the mail in the inbox.
    let r = journey(
        "purchase",
        up,
        driver,
        dir,
        true,
        steps!(|p| {
            p.sign_up("Ada", "ada@example.com").await?;
            ensure!(p.scripted().await?, "JavaScript runs in this session");
            p.fill("#q", "hydratng face").await?;
            p.click("form.search button").await?;
            let results = p.until_shown("Results for “hydratng face”", false).await?;
            ensure!(
                results.contains("Hydrating Face"),
                "the typo still finds: {results}"
            );
            p.follow("Beauty & Care").await?;
            ensure!(
                p.path().await?.contains("category=beauty"),
                "the facet is applied"
            );
            p.until_shown("Beauty & Care ✕", false).await?;
            // The first result with plenty in stock (a low one could sell out under us).
            let mut links = Vec::new();
            for a in p.c.find_all(Locator::Css(".grid .card a")).await? {
                links.extend(a.attr("href").await?);
            }
            let mut chosen = None;
            for href in links {
                p.goto(&href).await?;
                if p.text().await?.contains("In stock") {
                    chosen = Some(href);
                    break;
                }
            }
            let href = chosen.ok_or_else(|| anyhow!("no result in stock"))?;
            let sku = href.trim_start_matches("/products/").to_string();
            p.fill("#quantity", "2").await?;
            p.click("form.add button[type=submit]").await?;
            let cart = p.until_shown("Added to your cart.", false).await?;
            ensure!(p.path().await?.starts_with("/cart"), "on the cart");
            ensure!(cart.contains("Total (2 items)"), "{cart}");
            p.fill(&format!("tr[data-sku='{sku}'] input[name=quantity]"), "3")
                .await?;
            p.click(&format!("tr[data-sku='{sku}'] form.qty button"))
                .await?;
            p.until_shown("Total (3 items)", false).await?;
            let badge =
                p.c.find(Locator::Css("[data-cart-count]"))
                    .await?
                    .text()
                    .await?;
            ensure!(badge == "3", "the badge says {badge}");
            p.follow("Check out").await?;
            p.place_order("4242 4242 4242 4242", "Confirmed").await?;
            let number = p.order_number().await?;
            p.follow("All your orders").await?;
            let history = p.until_shown(&number, false).await?;
            ensure!(history.contains("1 order"), "{history}");
            p.goto("/inbox").await?;
            p.until_shown(&format!("Order {number} confirmed"), true)
                .await?;
            Ok(())
        }),
    )
    .await;
    failures.extend(r.err());

    // A declined card: the reason in words, and the cart as it was.
    let r = journey(
        "declined",
        up,
        driver,
        dir,
        true,
        steps!(|p| {
            p.sign_up("Bo", "bo@example.com").await?;
            p.add(sku, 1).await?;
            p.follow("Check out").await?;
            let page = p.place_order("4000 0000 0000 0002", "Cancelled").await?;
            ensure!(
                page.contains("Your card was declined. Nothing was charged"),
                "{page}"
            );
            p.follow("Back to your cart").await?;
            p.until_shown("Total (1 item)", false).await?;
            Ok(())
        }),
    )
    .await;
    failures.extend(r.err());

    // With JavaScript off, the whole purchase; "Place order" clicked twice and
    // the confirmation reloaded make one order.
    let r = journey(
        "no-javascript",
        up,
        driver,
        dir,
        false,
        steps!(|p| {
            p.sign_up("Cy", "cy@example.com").await?;
            ensure!(!p.scripted().await?, "JavaScript is off in this session");
            p.fill("#q", sku).await?;
            p.click("form.search button").await?;
            p.click(".grid .card a").await?;
            p.fill("#quantity", "1").await?;
            p.click("form.add button[type=submit]").await?;
            p.until_shown("Total (1 item)", false).await?;
            p.follow("Check out").await?;
            p.fill_checkout("4242 4242 4242 4242").await?;
            let button =
                p.c.find(Locator::Css("form.checkout-form button[type=submit]"))
                    .await?;
            let left = MOUSE_BUTTON_LEFT;
            let actions = MouseActions::new("mouse".into())
                .then(PointerAction::MoveToElement {
                    element: button,
                    duration: None,
                    x: 0.0,
                    y: 0.0,
                })
                .then(PointerAction::Down { button: left })
                .then(PointerAction::Up { button: left })
                .then(PointerAction::Down { button: left })
                .then(PointerAction::Up { button: left });
            p.c.perform_actions(actions).await?;
            p.until_shown("Confirmed", true).await?;
            p.c.refresh().await?;
            p.c.refresh().await?;
            p.until_shown("Confirmed", false).await?;
            p.goto("/orders").await?;
            let history = p.text().await?;
            ensure!(history.contains("1 order"), "one order: {history}");
            Ok(())
        }),
    )
    .await;
    failures.extend(r.err());

    // Signed out → add to cart → asked to sign in → back in the cart with it.
    emporium_testkit::sign_up(&up.base, "dee@example.com").await;
    emporium_testkit::confirm_email(&up.base, &up.mail_dir(), "dee@example.com").await;
    let r = journey(
        "sign-in-detour",
        up,
        driver,
        dir,
        true,
        steps!(|p| {
            p.add(sku, 2).await?;
            p.until_shown("Sign in to add this to your cart.", false)
                .await?;
            p.sign_in("dee@example.com").await?;
            let cart = p.until_shown("Total (2 items)", false).await?;
            ensure!(p.path().await? == "/cart", "back to the cart");
            ensure!(cart.contains("Sign out"), "signed in");
            Ok(())
        }),
    )
    .await;
    failures.extend(r.err());

    // Sold out: nothing to add. Scarce: sold to someone else between the product
    // page and "Place order": a clear message, nothing charged.
    let sold_out = stocked_sku(up, 1).await;
    let scarce = stocked_sku(up, 2).await;
    set_stock(up, &admin, &sold_out, 0).await;
    set_stock(up, &admin, &scarce, 1).await;
    let rival = shopper(up, "rival@example.com").await;
    let (sold_out, scarce): (&str, &str) = (&sold_out, &scarce);
    let r = journey(
        "sold-out",
        up,
        driver,
        dir,
        true,
        steps!(|p| {
            p.sign_up("Eve", "eve@example.com").await?;
            p.goto(&format!("/products/{sold_out}")).await?;
            let page = p.until_shown("Sold out", false).await?;
            ensure!(!page.contains("Add to cart"), "{page}");
            let button =
                p.c.find(Locator::Css("form.add button[type=submit]"))
                    .await?;
            ensure!(!button.is_enabled().await?, "the add button is disabled");
            p.add(scarce, 1).await?;
            p.until_shown("Total (1 item)", false).await?;
            p.follow("Check out").await?;
            // Someone else buys the last unit first.
            ensure!(rival.add(up, scarce, 1).await.status() == 200, "rival adds");
            let order = rival.check_out(up, APPROVE, Duration::from_secs(20)).await;
            ensure!(order["status"] == "CONFIRMED", "rival bought it: {order}");
            let page = p.place_order("4242 4242 4242 4242", "Cancelled").await?;
            ensure!(
                page.contains("sold out before we could reserve it"),
                "{page}"
            );
            p.follow("Back to your cart").await?;
            p.until_shown("Sold out", false).await?;
            Ok(())
        }),
    )
    .await;
    failures.extend(r.err());
    assert_eq!(available(up, scarce).await, 0, "the scarce unit sold once");

    // A verified buyer reviews: on the product page at once, in search soon after.
    let buyer = shopper(up, "fay@example.com").await;
    let reviewed = stocked_sku(up, 3).await;
    let reviewed: &str = &reviewed;
    assert_eq!(buyer.add(up, reviewed, 1).await.status(), 200);
    let order = buyer.check_out(up, APPROVE, Duration::from_secs(20)).await;
    assert_eq!(order["status"], "CONFIRMED");
    let r = journey(
        "review",
        up,
        driver,
        dir,
        true,
        steps!(|p| {
            p.goto("/signin").await?;
            p.sign_in("fay@example.com").await?;
            p.until_shown("Sign out", false).await?;
            p.goto(&format!("/products/{reviewed}")).await?;
            // reviews learns the purchase from orders' event: retry until it has.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                p.choose("input[name=rating][value='4']").await?;
                p.fill("#title", "Does the job").await?;
                p.fill("#text", "Sturdy & <b>simple</b>.").await?;
                p.click("form.review-form button[type=submit]").await?;
                let page = p.text().await?;
                if page.contains("Thank you! Your review is published.") {
                    break;
                }
                ensure!(page.contains("Only shoppers who bought"), "{page}");
                ensure!(
                    Instant::now() < deadline,
                    "reviews never learnt the purchase"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let page = p.until_shown("Does the job", false).await?;
            ensure!(
                page.contains("Sturdy & <b>simple</b>."),
                "shown as text: {page}"
            );
            ensure!(page.contains("4.0 out of 5 · 1 review"), "{page}");
            // Search shows the rating as stars, in words for screen readers.
            p.goto(&format!("/search?q={reviewed}")).await?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let stars = p.c.find_all(Locator::Css(".card .stars")).await?;
                let label = match stars.first() {
                    Some(s) => s.attr("aria-label").await?,
                    None => None,
                };
                if label.as_deref() == Some("4.0 out of 5, 1 review") {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "search never showed the rating: {label:?}"
                );
                tokio::time::sleep(Duration::from_millis(300)).await;
                p.c.refresh().await?;
            }
            Ok(())
        }),
    )
    .await;
    failures.extend(r.err());

    // The back office: restock the sold-out product, hide the review; the ops
    // console lists every service.
    let product: Value = http()
        .get(up.at(&format!("/api/catalog/products/sku/{sold_out}")))
        .send()
        .await
        .expect("product")
        .json()
        .await
        .expect("json");
    let id = product["id"].as_str().expect("id").to_string();
    let id: &str = &id;
    let r = journey(
        "back-office",
        up,
        driver,
        dir,
        true,
        steps!(|p| {
            p.goto("/signin").await?;
            p.sign_in("boss@example.com").await?;
            p.follow("Back office").await?;
            p.goto(&format!("/admin/products/{id}")).await?;
            p.fill("#available", "9").await?;
            p.click("form.admin-form:last-of-type button[type=submit]")
                .await?;
            p.until_shown("Stock updated.", false).await?;
            p.goto(&format!("/products/{sold_out}")).await?;
            let page = p.until_shown("In stock", false).await?;
            ensure!(page.contains("Add to cart"), "restocked: {page}");
            p.goto("/admin/reviews").await?;
            p.click("button[aria-label='Hide the review “Does the job”']")
                .await?;
            p.until_shown("Review hidden.", false).await?;
            p.goto(&format!("/products/{reviewed}")).await?;
            let page = p.text().await?;
            ensure!(
                !page.contains("Does the job"),
                "the review is hidden: {page}"
            );
            p.follow("Back office").await?;
            p.follow("Ops console").await?;
            let ops = p.text().await?;
            for service in [
                "users",
                "catalog",
                "inventory",
                "payments",
                "cart",
                "orders",
                "notifications",
                "reviews",
                "search",
                "storefront",
                "gateway",
            ] {
                let row =
                    p.c.find_all(Locator::Css(&format!("tr[data-service='{service}']")))
                        .await?;
                ensure!(!row.is_empty(), "{service} in the ops console: {ops}");
            }
            ensure!(ops.contains("inventory.catalog"), "event delivery: {ops}");
            // An order, its page, and its trace across services.
            p.click(".admin-nav a[href='/admin/orders']").await?;
            p.click("table.admin tbody tr:first-child a").await?;
            p.follow("Trace across services").await?;
            let trace = p.until_shown("lines from", false).await?;
            for needle in ["order confirmed", "event handled", "gateway"] {
                ensure!(trace.contains(needle), "{needle} in the trace: {trace}");
            }
            Ok(())
        }),
    )
    .await;
    failures.extend(r.err());

    report(artifacts, failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_pages_and_checkout_work_in_chromium_while_search_and_reviews_hang() {
    let Some(driver) = Driver::start("browser journeys") else {
        return;
    };
    let data = tempfile::tempdir().expect("data dir");
    let artifacts = tempfile::tempdir().expect("artifacts dir");
    let up = Up::start_with(
        data.path(),
        &[("EMPORIUM__STOREFRONT__CALL_TIMEOUT_MS", "1000")],
    );
    driver.ready().await;
    let sku = stocked_sku(&up, 0).await;
    let frozen = Frozen::services(&up, &["search", "reviews"]);
    let r = journey(
        "search-and-reviews-down",
        &up,
        &driver,
        artifacts.path(),
        true,
        steps!(|p| {
            p.sign_up("Gus", "gus@example.com").await?;
            p.goto(&format!("/products/{sku}")).await?;
            let page = p.text().await?;
            ensure!(
                page.contains("Reviews are unavailable right now."),
                "{page}"
            );
            ensure!(page.contains("Add to cart"), "{page}");
            p.fill("#quantity", "1").await?;
            p.click("form.add button[type=submit]").await?;
            p.until_shown("Total (1 item)", false).await?;
            p.follow("Check out").await?;
            p.place_order("4242 4242 4242 4242", "Confirmed").await?;
            p.goto("/search?q=lamp").await?;
            p.until_shown("Search is unavailable right now", false)
                .await?;
            Ok(())
        }),
    )
    .await;
    drop(frozen);
    report(artifacts, r.err().into_iter().collect());
}
