//! The storefront behind the real gateway, with every service it shows (in-process,
//! over real sockets), driven as a browser without JavaScript would: forms, cookies
//! and redirects. Sessions and CSRF, the security headers, the purchase journey with
//! one order per checkout form, field errors, a declined card, the sign-in detour of
//! a signed-out shopper, and pages that keep rendering while reviews or search are
//! down. (Journeys in a real Chromium are in the system tests.)

mod pacts;

use std::sync::Arc;
use std::time::Duration;

use emporium_cart::CartSettings;
use emporium_catalog::CatalogSettings;
use emporium_gateway::GatewaySettings;
use emporium_inventory::InventorySettings;
use emporium_notifications::NotificationsSettings;
use emporium_orders::OrdersSettings;
use emporium_payments::PaymentsSettings;
use emporium_registry::RegistrySettings;
use emporium_reviews::ReviewsSettings;
use emporium_search::SearchSettings;
use emporium_storefront::{CSRF_COOKIE, CSRF_FIELD, StorefrontSettings};
use emporium_testkit::mail::mailed_token;
use emporium_testkit::{Spawned, TestEnv, eventually, stocked};
use emporium_users::UsersSettings;
use reqwest::cookie::CookieStore;
use reqwest::redirect::Policy;

struct Shop {
    gateway: Spawned,
    catalog: String,
    inventory: String,
    inventory_instance: Option<Spawned>,
    reviews: Option<Spawned>,
    search: Option<Spawned>,
    _services: Vec<Spawned>,
    _env: TestEnv,
}

async fn shop() -> Shop {
    let env = TestEnv::new();
    let registry = env
        .spawn(
            emporium_registry::RegistryService,
            env.settings::<RegistrySettings>(None),
        )
        .await;
    let r = Some(&registry);
    let users = env
        .spawn(emporium_users::Users, env.settings::<UsersSettings>(r))
        .await;
    emporium_testkit::grant_admin(&users.url, "boss@example.com").await;
    let catalog = env
        .spawn(
            emporium_catalog::Catalog,
            env.settings::<CatalogSettings>(r),
        )
        .await;
    let inventory = env
        .spawn(
            emporium_inventory::Inventory,
            env.settings::<InventorySettings>(r),
        )
        .await;
    let payments = env
        .spawn(
            emporium_payments::Payments,
            env.settings::<PaymentsSettings>(r),
        )
        .await;
    let cart = env
        .spawn(emporium_cart::Cart, env.settings::<CartSettings>(r))
        .await;
    let orders = env
        .spawn(emporium_orders::Orders, env.settings::<OrdersSettings>(r))
        .await;
    let notifications = env
        .spawn(
            emporium_notifications::Notifications,
            env.settings::<NotificationsSettings>(r),
        )
        .await;
    let reviews = env
        .spawn(
            emporium_reviews::Reviews,
            env.settings::<ReviewsSettings>(r),
        )
        .await;
    let search = env
        .spawn(emporium_search::Search, env.settings::<SearchSettings>(r))
        .await;
    let storefront = env
        .spawn(
            emporium_storefront::Storefront,
            env.settings::<StorefrontSettings>(r),
        )
        .await;
    let gateway = env
        .spawn(
            emporium_gateway::Gateway,
            env.settings::<GatewaySettings>(r),
        )
        .await;
    let shop = Shop {
        catalog: catalog.url.clone(),
        inventory: inventory.url.clone(),
        gateway,
        inventory_instance: Some(inventory),
        reviews: Some(reviews),
        search: Some(search),
        _services: vec![
            registry,
            users,
            catalog,
            payments,
            cart,
            orders,
            notifications,
            storefront,
        ],
        _env: env,
    };
    // The gateway finds the storefront and users through the registry.
    let b = shop.browser();
    eventually("the shop's home page", || async {
        let (status, _) = b.get("/").await;
        (status == 200).then_some(())
    })
    .await;
    // Search serves once it has caught up with catalog (until then the storefront
    // falls back to catalog's listing).
    eventually("search's results", || async {
        let (status, page) = b.get("/search?q=soap").await;
        (status == 200 && !page.contains("Search is unavailable")).then_some(())
    })
    .await;
    shop
}

impl Shop {
    /// Where notifications writes the shop's mail.
    fn mail_dir(&self) -> std::path::PathBuf {
        self._env.dir.path().join("notifications").join("mail")
    }

    fn browser(&self) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Browser {
            base: self.gateway.url.clone(),
            client,
            jar,
            mail_dir: self.mail_dir(),
        }
    }

    /// A SKU with at least `min` units.
    async fn stocked(&self, min: i64) -> String {
        stocked(&self.catalog, &self.inventory, min).await.0
    }
}

/// A browser without JavaScript: cookies, forms, no automatic redirects.
struct Browser {
    base: String,
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    /// The shopper's mailbox: where the shop's mail lands.
    mail_dir: std::path::PathBuf,
}

impl Browser {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(path)).send().await.expect("get");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    /// The value of cookie `name`, as the browser holds it.
    fn cookie(&self, name: &str) -> Option<String> {
        let url = self.base.parse().expect("url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .filter_map(|c| c.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }

    /// Sets cookie `name` as a server would; an empty value with `Max-Age=0`
    /// drops it (a cookie that expired).
    fn set_cookie(&self, name: &str, value: &str) {
        let url = self.base.parse().expect("url");
        let age = if value.is_empty() { "; Max-Age=0" } else { "" };
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/{age}"), &url);
    }

    /// POSTs a form as a browser on this site would: with the page's CSRF token
    /// and this site as its Origin.
    async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let token = self.cookie(CSRF_COOKIE).unwrap_or_default();
        let mut form: Vec<(&str, &str)> = vec![(CSRF_FIELD, &token)];
        form.extend_from_slice(fields);
        self.client
            .post(self.url(path))
            .header("origin", &self.base)
            .form(&form)
            .send()
            .await
            .expect("post")
    }

    /// Opens `path` (for the CSRF cookie), then submits `fields` to it.
    async fn fill(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let (status, _) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}");
        self.submit(path, fields).await
    }

    async fn sign_up(&self, email: &str) {
        let r = self
            .fill(
                "/signup",
                &[
                    ("name", "Ada"),
                    ("email", email),
                    ("password", "correct horse battery"),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "signed up");
        assert!(self.cookie("emporium_session").is_some(), "a session");
        self.confirm_email(email).await;
    }

    /// Opens the link in the mail that confirms `email` and presses its button.
    async fn confirm_email(&self, email: &str) {
        let token = mailed_token(&self.mail_dir, email, "/verify").await;
        let (status, _) = self.get(&format!("/verify?token={token}")).await;
        assert_eq!(status, 200);
        let r = self.submit("/verify", &[("token", token.as_str())]).await;
        assert_eq!(location(&r), "/?n=verified", "{email} confirmed");
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The hidden input `name`'s value in a page.
fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let start = html.find(&needle).expect("the field") + needle.len();
    html[start..].split('"').next().expect("value").to_string()
}

const ADDRESS: [(&str, &str); 5] = [
    ("name", "Ada Lovelace"),
    ("line1", "1 Main St"),
    ("city", "London"),
    ("postal_code", "N1 1AA"),
    ("country", "GB"),
];

fn checkout_form<'a>(key: &'a str, card: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("key", key),
        ("number", card),
        ("exp_month", "12"),
        ("exp_year", "2099"),
        ("cvc", "123"),
    ];
    f.extend_from_slice(&ADDRESS);
    f
}

#[tokio::test]
async fn pages_carry_security_headers_and_the_session_stays_out_of_scripts_reach() {
    let shop = shop().await;
    let b = shop.browser();
    let r = b.client.get(b.url("/")).send().await.expect("home");
    assert_eq!(r.status(), 200);
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("referrer-policy"));
    assert!(
        h["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    let html = r.text().await.expect("html");
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "the page has its script");
    for s in scripts {
        let tag = s.split('>').next().unwrap_or_default();
        assert!(
            tag.contains(" src=\"/assets/"),
            "no inline script: <script{tag}>"
        );
    }
    assert!(!html.contains("style="), "no inline style");
    assert!(!html.contains("<style"), "no style element");

    b.sign_up("ada@example.com").await;
    let r = b.client.get(b.url("/")).send().await.expect("home");
    let html = r.text().await.expect("html");
    assert!(html.contains("Sign out"), "signed in: {html}");
    // The session cookie was set HttpOnly and SameSite=Lax.
    let r = b
        .fill(
            "/signin",
            &[
                ("email", "ada@example.com"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("emporium_session="))
        .expect("a session cookie");
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
}

#[tokio::test]
async fn forms_need_this_sites_token_and_origin() {
    let shop = shop().await;
    let b = shop.browser();
    let _ = b.get("/signup").await;
    let fields = [
        ("name", "Eve"),
        ("email", "eve@example.com"),
        ("password", "correct horse battery"),
    ];
    // No token.
    let r = b
        .client
        .post(b.url("/signup"))
        .form(&fields)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // A token that is not the cookie's.
    let mut forged: Vec<(&str, &str)> = vec![(CSRF_FIELD, "0".repeat(64).leak())];
    forged.extend_from_slice(&fields);
    let r = b
        .client
        .post(b.url("/signup"))
        .form(&forged)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    // The right token from another site's page.
    let token = b.cookie(CSRF_COOKIE).expect("csrf cookie");
    let mut other: Vec<(&str, &str)> = vec![(CSRF_FIELD, &token)];
    other.extend_from_slice(&fields);
    let r = b
        .client
        .post(b.url("/signup"))
        .header("origin", "http://evil.example")
        .form(&other)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    assert!(b.cookie("emporium_session").is_none(), "no account made");
    // As the shop's own form sends it.
    let r = b.submit("/signup", &fields).await;
    assert_eq!(r.status(), 303);
    assert!(b.cookie("emporium_session").is_some());
}

#[tokio::test]
async fn identity_comes_only_from_a_session_the_gateway_verified() {
    let shop = shop().await;
    let b = shop.browser();
    // A header naming a user is stripped by the gateway.
    let r = b
        .client
        .get(b.url("/cart"))
        .header("x-user-id", "00000000-0000-4000-8000-000000000001")
        .header("x-user-roles", "admin")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303, "asked to sign in");
    assert_eq!(location(&r), "/signin?next=%2Fcart");
    // A forged session cookie is refused, and cleared.
    let r = b
        .client
        .get(b.url("/cart"))
        .header("cookie", "emporium_session=eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303);
    let r = b
        .client
        .get(b.url("/"))
        .header("cookie", "emporium_session=eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .expect("get");
    let cleared = r.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.starts_with("emporium_session=;"))
    });
    assert!(cleared, "the stale session cookie is cleared");
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("Your session has ended")
    );
    // A real shopper's session with a forged admin role: still a shopper.
    b.sign_up("forger@example.com").await;
    let r = b
        .client
        .get(b.url("/admin"))
        .header("x-user-roles", "admin")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn an_add_to_cart_form_sent_twice_adds_once() {
    let shop = shop().await;
    let sku = shop.stocked(10).await;
    let b = shop.browser();
    b.sign_up("adder@example.com").await;
    let (_, product) = b.get(&format!("/products/{sku}")).await;
    let key = hidden(&product, "key");
    let form = [
        ("sku", sku.as_str()),
        ("quantity", "2"),
        ("key", key.as_str()),
    ];
    // A double click: the same form twice at once, then a third time.
    let (first, second) = tokio::join!(
        b.submit("/cart/items", &form),
        b.submit("/cart/items", &form)
    );
    let third = b.submit("/cart/items", &form).await;
    for r in [&first, &second, &third] {
        assert_eq!(location(r), "/cart?n=added");
    }
    let (_, cart) = b.get("/cart").await;
    assert!(cart.contains("data-cart-count>2<"), "added once: {cart}");
    // The same form back with another quantity: an add of its own.
    let changed = [
        ("sku", sku.as_str()),
        ("quantity", "1"),
        ("key", key.as_str()),
    ];
    let r = b.submit("/cart/items", &changed).await;
    assert_eq!(location(&r), "/cart?n=added");
    let (_, cart) = b.get("/cart").await;
    assert!(cart.contains("data-cart-count>3<"), "{cart}");
    // The page made again: a new key, a new add.
    let (_, product) = b.get(&format!("/products/{sku}")).await;
    let again = hidden(&product, "key");
    assert_ne!(again, key);
    let r = b
        .submit(
            "/cart/items",
            &[
                ("sku", sku.as_str()),
                ("quantity", "2"),
                ("key", again.as_str()),
            ],
        )
        .await;
    assert_eq!(location(&r), "/cart?n=added");
    let (_, cart) = b.get("/cart").await;
    assert!(cart.contains("data-cart-count>5<"), "{cart}");
}

#[tokio::test]
async fn one_order_per_checkout_form_however_often_it_is_sent() {
    let shop = shop().await;
    let sku = shop.stocked(3).await;
    let b = shop.browser();
    b.sign_up("buyer@example.com").await;
    let (status, product) = b.get(&format!("/products/{sku}")).await;
    assert_eq!(status, 200);
    assert!(product.contains("Add to cart"));
    let r = b
        .submit("/cart/items", &[("sku", sku.as_str()), ("quantity", "2")])
        .await;
    assert_eq!(location(&r), "/cart?n=added");
    let (_, cart) = b.get("/cart?n=added").await;
    assert!(cart.contains("Added to your cart."));
    assert!(cart.contains("data-cart-count>2<"), "badge shows 2: {cart}");

    let (status, page) = b.get("/checkout").await;
    assert_eq!(status, 200);
    assert!(page.contains("4242 4242 4242 4242"), "test cards listed");
    let key = hidden(&page, "key");
    let form = checkout_form(&key, "4242 4242 4242 4242");
    // A double click: the same form twice at once, then a third time.
    let (first, second) = tokio::join!(b.submit("/checkout", &form), b.submit("/checkout", &form));
    let third = b.submit("/checkout", &form).await;
    assert_eq!(first.status(), 303);
    let order = location(&first);
    assert!(order.starts_with("/orders/"), "{order}");
    assert_eq!(location(&second), order);
    assert_eq!(location(&third), order);
    let (_, history) = b.get("/orders").await;
    assert!(history.contains("1 order<"), "one order: {history}");
    let (_, shown) = b.get(&order).await;
    assert!(shown.contains("Confirmed"), "{shown}");
    // The confirmation mail reaches the inbox.
    let number = &order[order.len() - 8..];
    eventually("the confirmation in the inbox", || async {
        let (_, inbox) = b.get("/inbox").await;
        inbox
            .contains(&format!("Order {number} confirmed"))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn field_errors_show_next_to_their_fields_and_a_declined_card_keeps_the_cart() {
    let shop = shop().await;
    let sku = shop.stocked(2).await;
    let b = shop.browser();
    b.sign_up("decline@example.com").await;
    let r = b
        .submit("/cart/items", &[("sku", sku.as_str()), ("quantity", "1")])
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = b.get("/checkout").await;
    let key = hidden(&page, "key");
    // A card number that fails the Luhn check, and no city.
    let mut form = checkout_form(&key, "4242 4242 4242 4241");
    form.retain(|(k, _)| *k != "city");
    let r = b.submit("/checkout", &form).await;
    assert_eq!(r.status(), 200, "the form again");
    let html = r.text().await.expect("html");
    assert!(html.contains("id=\"number-error\""), "card error: {html}");
    assert!(html.contains("id=\"city-error\""), "city error");
    assert!(!html.contains("id=\"cvc-error\""));
    assert_eq!(hidden(&html, "key"), key, "no order yet: the same key");
    assert!(
        html.contains("value=\"Ada Lovelace\""),
        "what was typed stays"
    );

    let r = b
        .submit("/checkout", &checkout_form(&key, "4000 0000 0000 0002"))
        .await;
    let order = location(&r);
    let (_, shown) = b.get(&order).await;
    assert!(shown.contains("Cancelled"), "{shown}");
    assert!(
        shown.contains("Your card was declined"),
        "the reason in words"
    );
    let (_, cart) = b.get("/cart").await;
    assert!(cart.contains(&sku), "the cart is still there");
}

#[tokio::test]
async fn an_expired_session_is_refreshed_and_signing_out_ends_it_at_users() {
    let shop = shop().await;
    let b = shop.browser();
    b.sign_up("ada@example.com").await;
    let first = b.cookie("emporium_refresh").expect("a refresh cookie");
    // The access token expires: the browser drops its cookie.
    b.set_cookie("emporium_session", "");
    assert!(b.cookie("emporium_session").is_none());
    let (status, html) = b.get("/orders").await;
    assert_eq!(status, 200, "still signed in: {html}");
    assert!(html.contains("Sign out"));
    assert!(b.cookie("emporium_session").is_some(), "a new access token");
    let second = b.cookie("emporium_refresh").expect("a new refresh token");
    assert_ne!(first, second, "rotated");
    // The name stays in the header through a refresh.
    assert!(html.contains("Ada"), "{html}");

    // Signing out ends the session at users, not only in this browser: a copy of
    // the refresh cookie kept from before no longer signs anyone in.
    let r = b.submit("/signout", &[]).await;
    assert_eq!(location(&r), "/?n=signed-out");
    assert!(b.cookie("emporium_refresh").is_none());
    b.set_cookie("emporium_refresh", &second);
    let (status, _) = b.get("/orders").await;
    assert_eq!(status, 303, "signed out: to the sign-in page");
    assert!(
        b.cookie("emporium_refresh").is_none(),
        "the dead cookie is cleared"
    );
}

#[tokio::test]
async fn the_mailed_links_confirm_the_address_and_reset_a_forgotten_password() {
    let shop = shop().await;
    let b = shop.browser();
    // Signing up goes through the mailed link (see `Browser::sign_up`).
    b.sign_up("ada@example.com").await;
    let mail = shop.mail_dir();
    let token = mailed_token(&mail, "ada@example.com", "/verify").await;
    let r = b.submit("/verify", &[("token", token.as_str())]).await;
    let page = r.text().await.expect("page");
    assert!(page.contains("This link no longer works"), "once: {page}");

    // Forgot the password: ask by email (the same answer for unknown ones).
    b.submit("/signout", &[]).await;
    let other = shop.browser();
    let r = other
        .fill("/reset", &[("email", "nobody@example.com")])
        .await;
    let unknown = r.text().await.expect("page");
    assert!(
        unknown.contains("If an account has this email"),
        "{unknown}"
    );
    let r = other.fill("/reset", &[("email", "ada@example.com")]).await;
    assert_eq!(r.text().await.expect("page"), unknown, "the same answer");
    let token = mailed_token(&mail, "ada@example.com", "/reset").await;
    let token = token.as_str();
    let (status, page) = other.get(&format!("/reset?token={token}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Set my new password"), "{page}");
    let r = other
        .submit("/reset/confirm", &[("token", token), ("password", "short")])
        .await;
    let page = r.text().await.expect("page");
    assert!(page.contains("at least 10 characters"), "{page}");
    let r = other
        .submit(
            "/reset/confirm",
            &[("token", token), ("password", "a brand new passphrase")],
        )
        .await;
    assert_eq!(location(&r), "/signin?n=password-reset");
    let r = other
        .fill(
            "/signin",
            &[
                ("email", "ada@example.com"),
                ("password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "signed in with the new password");
}

#[tokio::test]
async fn a_signed_out_shopper_signs_in_and_lands_in_the_cart_with_the_item() {
    let shop = shop().await;
    let sku = shop.stocked(1).await;
    let b = shop.browser();
    b.sign_up("returning@example.com").await;
    let r = b.submit("/signout", &[]).await;
    assert_eq!(location(&r), "/?n=signed-out");
    assert!(b.cookie("emporium_session").is_none(), "signed out");

    let _ = b.get(&format!("/products/{sku}")).await;
    let r = b
        .submit("/cart/items", &[("sku", sku.as_str()), ("quantity", "3")])
        .await;
    let to = location(&r);
    assert!(to.starts_with("/signin?"), "{to}");
    let (_, page) = b.get(&to).await;
    assert!(page.contains("Sign in to add this to your cart."));
    let r = b
        .submit(
            "/signin",
            &[
                ("email", "returning@example.com"),
                ("password", "correct horse battery"),
                ("next", &hidden(&page, "next")),
                ("add", &hidden(&page, "add")),
                ("quantity", &hidden(&page, "quantity")),
            ],
        )
        .await;
    assert_eq!(location(&r), "/cart");
    let (_, cart) = b.get("/cart").await;
    assert!(cart.contains(&sku), "{cart}");
    assert!(cart.contains("data-cart-count>3<"));
    // `next` never leaves the site.
    let r = b
        .submit(
            "/signin",
            &[
                ("email", "returning@example.com"),
                ("password", "correct horse battery"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&r), "/");
    let r = b
        .submit(
            "/signin",
            &[("email", "returning@example.com"), ("password", "wrong")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("do not match an account")
    );
}

#[tokio::test]
async fn product_pages_and_the_catalog_answer_while_inventory_is_down() {
    let mut shop = shop().await;
    let sku = shop.stocked(1).await;
    let b = shop.browser();
    let (status, page) = b.get(&format!("/products/{sku}")).await;
    assert_eq!(status, 200);
    assert!(!page.contains("Stock unknown right now"), "{page}");

    shop.inventory_instance.take().expect("inventory").crash();
    let started = std::time::Instant::now();
    let (status, page) = b.get(&format!("/products/{sku}")).await;
    assert_eq!(status, 200, "the product page without inventory");
    assert!(page.contains("Stock unknown right now"), "{page}");
    assert!(page.contains("Add to cart"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the page waited {:?} for inventory",
        started.elapsed()
    );
    let (status, _) = b.get("/").await;
    assert_eq!(status, 200, "the home page");
    let (status, listing) = b.get("/search?category=books").await;
    assert_eq!(status, 200, "a category page");
    assert!(listing.contains("/products/"), "{listing}");
    let api = emporium_testkit::client()
        .get(shop.gateway.at(&format!("/api/catalog/products/sku/{sku}")))
        .send()
        .await
        .expect("send");
    assert_eq!(api.status(), 200, "the catalog's API");
}

#[tokio::test]
async fn pages_render_while_reviews_or_search_are_down() {
    let mut shop = shop().await;
    let sku = shop.stocked(1).await;
    let b = shop.browser();
    let (status, page) = b.get(&format!("/products/{sku}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("No reviews yet"));

    shop.reviews.take().expect("reviews").crash();
    let (status, page) = b.get(&format!("/products/{sku}")).await;
    assert_eq!(status, 200, "the product page without reviews");
    assert!(
        page.contains("Reviews are unavailable right now."),
        "{page}"
    );
    assert!(page.contains("Add to cart"));

    let (status, results) = b.get("/search?q=soap").await;
    assert_eq!(status, 200);
    assert!(!results.contains("Search is unavailable"));
    shop.search.take().expect("search").crash();
    let (status, results) = b.get("/search?category=books").await;
    assert_eq!(status, 200);
    assert!(
        results.contains("Search is unavailable right now"),
        "{results}"
    );
    assert!(results.contains("/products/"), "catalog's products instead");
    let (status, home) = b.get("/").await;
    assert_eq!(status, 200);
    assert!(home.contains("New arrivals are unavailable right now."));
    assert!(
        home.contains("/search?category=books"),
        "categories still there"
    );

    let (status, page) = b.get("/no/such/page").await;
    assert_eq!(status, 404);
    assert!(page.contains("Page not found"));
    let (status, _) = b.get("/products/NOPE-99999").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_back_office_and_ops_console_are_for_admins_and_change_the_shop() {
    let shop = shop().await;
    let sku = shop.stocked(2).await;
    let api = emporium_testkit::client();

    // Signed out: sign in first. A shopper: not allowed.
    let shopper = shop.browser();
    let (status, _) = shopper.get("/admin").await;
    assert_eq!(status, 303);
    shopper.sign_up("shopper@example.com").await;
    for path in ["/admin", "/admin/products", "/admin/orders", "/ops"] {
        let (status, _) = shopper.get(path).await;
        assert_eq!(status, 403, "{path} is for admins");
    }
    for (path, fields) in [
        (format!("/admin/stock/{sku}"), vec![("available", "0")]),
        (
            "/admin/products".to_string(),
            vec![
                ("sku", "TST-00009"),
                ("name", "X"),
                ("category", "books"),
                ("price", "1"),
                ("currency", "USD"),
            ],
        ),
        (
            "/admin/reviews/00000000-0000-4000-8000-000000000001/hide".to_string(),
            vec![],
        ),
        (
            "/admin/events/00000000-0000-4000-8000-000000000001/replay".to_string(),
            vec![],
        ),
    ] {
        let r = shopper.submit(&path, &fields).await;
        assert_eq!(r.status(), 403, "POST {path} is for admins");
    }
    let (status, _) = shopper.get("/ops/trace?order=x").await;
    assert_eq!(status, 403);

    // The shopper buys one, so there is an order and a review to moderate.
    let r = shopper
        .submit("/cart/items", &[("sku", sku.as_str()), ("quantity", "1")])
        .await;
    assert_eq!(r.status(), 303);
    let (_, page) = shopper.get("/checkout").await;
    let key = hidden(&page, "key");
    let r = shopper
        .submit("/checkout", &checkout_form(&key, "4242 4242 4242 4242"))
        .await;
    let order = location(&r);
    let number = order[order.len() - 8..].to_string();
    let product = format!("/products/{sku}");
    eventually("the purchase reaches reviews", || async {
        let r = shopper
            .submit(
                &format!("{product}/reviews"),
                &[("rating", "1"), ("title", "Rude words here"), ("text", "")],
            )
            .await;
        (location(&r).contains("n=reviewed")).then_some(())
    })
    .await;
    let (_, page) = shopper.get(&product).await;
    assert!(page.contains("Rude words here"));

    let boss = shop.browser();
    boss.sign_up("boss@example.com").await;
    let (status, home) = boss.get("/").await;
    assert_eq!(status, 200);
    assert!(
        home.contains("href=\"/admin\""),
        "a link to the back office"
    );

    // Stock and prices.
    let (status, products) = boss.get("/admin/products").await;
    assert_eq!(status, 200);
    assert!(products.contains("data-sku="), "{products}");
    let r = boss
        .submit(
            &format!("/admin/stock/{sku}"),
            &[("available", "42"), ("back", "/admin/products")],
        )
        .await;
    assert_eq!(location(&r), "/admin/products?n=restocked");
    assert_eq!(
        emporium_testkit::available(&shop.gateway.url, &sku).await,
        42
    );
    let (_, catalog_page) = boss.get(&product).await;
    let id = {
        let v: serde_json::Value = api
            .get(format!(
                "{}/api/catalog/products/sku/{sku}",
                shop.gateway.url
            ))
            .send()
            .await
            .expect("product")
            .json()
            .await
            .expect("json");
        v["id"].as_str().expect("id").to_string()
    };
    assert!(catalog_page.contains("In stock"));
    let (status, edit) = boss.get(&format!("/admin/products/{id}")).await;
    assert_eq!(status, 200);
    let name = hidden(&edit, "sku");
    assert_eq!(name, sku);
    let r = boss
        .submit(
            &format!("/admin/products/{id}"),
            &[
                ("sku", sku.as_str()),
                ("name", "Renamed by the boss"),
                ("description", "Now with a new price."),
                ("category", "books"),
                ("price", "12.34"),
                ("currency", "USD"),
            ],
        )
        .await;
    assert_eq!(location(&r), format!("/admin/products/{id}?n=saved"));
    let (_, page) = shopper.get(&product).await;
    assert!(
        page.contains("Renamed by the boss") && page.contains("$12.34"),
        "{page}"
    );
    // A bad price is shown next to its field; nothing changes.
    let r = boss
        .submit(
            &format!("/admin/products/{id}"),
            &[
                ("sku", sku.as_str()),
                ("name", "X"),
                ("category", "books"),
                ("price", "cheap"),
                ("currency", "USD"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("html").contains("id=\"price-error\""));
    // A new product.
    let r = boss
        .submit(
            "/admin/products",
            &[
                ("sku", "TST-00001"),
                ("name", "Test Notebook"),
                ("description", "Lined, 80 pages."),
                ("category", "office"),
                ("price", "3.50"),
                ("currency", "USD"),
            ],
        )
        .await;
    assert!(location(&r).ends_with("?n=created"), "{}", location(&r));
    let (status, _) = boss.get("/products/TST-00001").await;
    assert_eq!(status, 200);

    // Every order, by status.
    let (_, confirmed) = boss.get("/admin/orders?status=CONFIRMED").await;
    assert!(confirmed.contains(&number), "{confirmed}");
    let (_, cancelled) = boss.get("/admin/orders?status=CANCELLED").await;
    assert!(!cancelled.contains(&number));
    let (status, _) = boss.get(&order).await;
    assert_eq!(status, 200, "admins open any order");

    // Moderation.
    let (_, reviews) = boss.get("/admin/reviews").await;
    assert!(reviews.contains("Rude words here"), "{reviews}");
    let review = {
        let start = reviews.find("data-review=\"").expect("a review") + "data-review=\"".len();
        reviews[start..].split('"').next().expect("id").to_string()
    };
    let r = boss
        .submit(&format!("/admin/reviews/{review}/hide"), &[])
        .await;
    assert_eq!(location(&r), "/admin/reviews?n=hidden");
    let (_, page) = shopper.get(&product).await;
    assert!(
        !page.contains("Rude words here"),
        "hidden from the product page"
    );

    // Dead letters and the ops console.
    let (status, dead) = boss.get("/admin/events").await;
    assert_eq!(status, 200);
    assert!(dead.contains("No dead letters."), "{dead}");
    let (status, ops) = boss.get("/ops").await;
    assert_eq!(status, 200);
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
        assert!(
            ops.contains(&format!("data-service=\"{service}\"")),
            "{service} listed"
        );
    }
    assert!(
        ops.contains("inventory.catalog"),
        "event delivery per subscription"
    );
    assert!(
        ops.contains("Confirmed: <strong>"),
        "checkout outcomes: {ops}"
    );
}
