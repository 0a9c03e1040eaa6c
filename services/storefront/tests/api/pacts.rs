//! What the storefront relies on from the services behind its shopping pages, as
//! pacts (`crates/contracts/pacts/storefront-<provider>.json`, verified by each
//! provider's API tests). The storefront runs here with every call it makes
//! answered from the pacts, and the pages are opened as the gateway forwards them:
//! the home page, search results, a product page, the cart and an order signed
//! in, an add to the cart, signing in (a wrong password, then the right one), the
//! pages account mails link to, and the back office as a member of staff.
//! So the pacts say what the page code itself sends and reads: a call no
//! interaction expects, or an interaction no page needs, fails the test, and each
//! page is checked for the main things it shows from what it read.

use std::sync::Arc;

use emporium_contracts::headers;
use emporium_storefront::{CSRF_COOKIE, CSRF_FIELD, Storefront, StorefrontSettings};
use emporium_testkit::TestEnv;
use emporium_testkit::pact::{EACH, Interaction, Pacts};
use reqwest::cookie::CookieStore;
use serde_json::{Value, json};

const SKU: &str = "TEA-EARL-GREY";
const PRODUCT_ID: &str = "0192f4a4-0000-7000-8000-00000000c0de";
const SHOPPER: &str = "0192f4a4-0000-7000-8000-00000000beef";
const WORD: &str = "teapot";
const ORDER_ID: &str = "0192f4a4-0000-7000-8000-0000000004d3";
const EMAIL: &str = "ada@example.com";
const NEW_EMAIL: &str = "grace@example.com";
const REFRESH: &str = "a-refresh-token";
const PASSWORD: &str = "correct horse battery";
/// A link's token as a mail carries it.
const LINK: &str = "a-link-from-a-mail";
const DEAD_LINK: &str = "a-link-used-already";
const NEW_PASSWORD: &str = "a brand new passphrase";
const ADMIN: &str = "0192f4a4-0000-7000-8000-00000000ad01";
const NEW_SKU: &str = "TEA-NEW-0001";
const REVIEW_ID: &str = "0192f4a4-0000-7000-8000-0000000002e1";
/// A query nothing matches, whose first three letters begin a word of a product's
/// name (search suggests names by the starts of their words).
const NO_MATCH: &str = "teaxqzv";
const PREFIX: &str = "tea";

fn money(amount: i64) -> Value {
    json!({ "amount": amount, "currency": "EUR" })
}

/// A search hit as the result cards read it.
fn hit() -> Value {
    json!({
        "sku": SKU,
        "name": "Earl Grey, loose leaf",
        "price": money(1250),
        "image_url": "/api/catalog/images/TEA-EARL-GREY",
        "rating": { "count": 3, "average": 4.5 },
        "stock": "in_stock",
        "snippet": "Bergamot and black tea.",
    })
}

/// An access token as users issues one: the storefront reads the shopper from
/// its claims (users signs it; the gateway checks the signature).
fn access_token() -> String {
    use base64::Engine as _;
    let part = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({
        "sub": SHOPPER, "iss": "emporium-users", "aud": "emporium",
        "iat": 1_796_400_000, "nbf": 1_796_400_000, "exp": 1_796_400_900,
        "jti": "0192f4a4-0000-7000-8000-000000000001",
        "roles": ["customer"], "email_verified": true,
    });
    format!(
        "{}.{}.c2lnbmF0dXJl",
        part(json!({ "alg": "EdDSA", "typ": "JWT" })),
        part(claims)
    )
}

/// What users answers a sign-in with.
fn tokens() -> Value {
    json!({
        "access_token": access_token(),
        "expires_in": 900,
        "refresh_token": REFRESH,
        "refresh_expires_in": 2_592_000,
    })
}

fn declare() -> Pacts {
    let mut pacts = Pacts::declare(
        "storefront",
        &[
            "catalog",
            "inventory",
            "cart",
            "reviews",
            "search",
            "orders",
            "users",
            "notifications",
        ],
    );
    pacts.interaction(
        "catalog",
        Interaction::new("the categories")
            .given("products are on sale")
            .request("GET", "/api/catalog/categories", None)
            .responds(
                200,
                json!({ "items": [{ "id": "teas", "name": "Teas", "product_count": 12 }] }),
                &[],
            ),
    );
    pacts.interaction(
        "catalog",
        Interaction::new("a product by its SKU")
            .given("a product is on sale")
            .param("sku", SKU)
            .param("product_id", PRODUCT_ID)
            .request("GET", &format!("/api/catalog/products/sku/{SKU}"), None)
            .responds(200, product(), &["/id", "/sku"]),
    );
    pacts.interaction(
        "inventory",
        Interaction::new("the stock of a SKU")
            .given("a SKU has 2 units or more")
            .param("sku", SKU)
            .request("GET", &format!("/api/inventory/{SKU}"), None)
            .responds(200, json!({ "available": 50 }), &[]),
    );
    pacts.interaction(
        "cart",
        Interaction::new("a shopper's cart")
            .given("a shopper has 2 of a SKU in the cart")
            .as_shopper(SHOPPER)
            .param("sku", SKU)
            .request("GET", "/api/cart", None)
            .responds(
                200,
                json!({
                    "items": [{
                        "sku": SKU,
                        "name": "Earl Grey, loose leaf",
                        "unit_price": money(1250),
                        "quantity": 2,
                        "line_total": money(2500),
                    }],
                    "item_count": 2,
                    "total": money(2500),
                }),
                &["/items/0/sku", "/items/0/quantity", "/item_count"],
            ),
    );
    pacts.interaction(
        "cart",
        Interaction::new("an add to a shopper's cart")
            .given("a SKU is on sale")
            .as_shopper(SHOPPER)
            // Minted with the page's form: cart adds once per key.
            .header_any(
                headers::IDEMPOTENCY_KEY,
                "0192f4a4-0000-7000-8000-00000000add1",
            )
            .param("sku", SKU)
            .request(
                "POST",
                "/api/cart/items",
                Some(json!({ "sku": SKU, "quantity": 1 })),
            )
            .responds(
                200,
                json!({
                    "items": [{
                        "sku": SKU,
                        "name": "Earl Grey, loose leaf",
                        "unit_price": money(1250),
                        "quantity": 1,
                        "line_total": money(1250),
                    }],
                    "item_count": 1,
                    "total": money(1250),
                }),
                &["/items/0/sku", "/items/0/quantity"],
            ),
    );
    pacts.interaction(
        "reviews",
        Interaction::new("a product's rating")
            .given("a product has a review")
            .param("product_id", PRODUCT_ID)
            .request(
                "GET",
                &format!("/api/reviews/summary?product_id={PRODUCT_ID}"),
                None,
            )
            .responds(
                200,
                json!({ "count": 1, "average": 4.0, "histogram": [0, 0, 0, 1, 0] }),
                &["/count"],
            ),
    );
    pacts.interaction(
        "reviews",
        Interaction::new("a product's reviews, a page at a time")
            .given("a product has a review")
            .param("product_id", PRODUCT_ID)
            .request(
                "GET",
                &format!("/api/reviews?product_id={PRODUCT_ID}&limit=5"),
                None,
            )
            .responds(200, json!({ "items": [review()], "next": null }), &[]),
    );
    pacts.interaction(
        "search",
        Interaction::new("the newest products")
            .given("products are indexed")
            .request("GET", "/api/search?sort=new&limit=8", None)
            .responds(200, json!({ "items": [hit()], "total": 1 }), &[]),
    );
    pacts.interaction(
        "search",
        Interaction::new("the best rated products")
            .given("products are indexed")
            .request("GET", "/api/search?sort=rating&min_rating=1&limit=8", None)
            .responds(200, json!({ "items": [], "total": 0 }), &[]),
    );
    pacts.interaction(
        "search",
        Interaction::new("products matching a word, with facets")
            .given("products are indexed")
            .param("q", WORD)
            .request("GET", &format!("/api/search?q={WORD}&limit=24"), None)
            .responds(
                200,
                json!({
                    "items": [hit()],
                    "total": 1,
                    "facets": {
                        "category": { EACH: 1 },
                        // The last band has no top.
                        "price": [{ "min": 0, "max": null, "count": 1 }],
                        "rating": [{ "min": 4, "count": 1 }],
                        "in_stock": 1,
                    },
                    "next": null,
                }),
                &[],
            ),
    );
    pacts.interaction(
        "orders",
        Interaction::new("a shopper's order, with its timeline")
            .given("a shopper has placed an order")
            .as_shopper(SHOPPER)
            .param("order_id", ORDER_ID)
            .request("GET", &format!("/api/orders/{ORDER_ID}"), None)
            .responds(
                200,
                {
                    let mut order = order();
                    order["timeline"] = json!([
                        { "at": "2026-12-04T12:00:00Z", "event": "placed", "detail": "" }
                    ]);
                    order
                },
                &["/id"],
            ),
    );
    pacts.interaction(
        "users",
        Interaction::new("signing in with an account's password")
            .given("a user has an account")
            .param("email", EMAIL)
            .request(
                "POST",
                "/api/users/login",
                Some(json!({ "email": EMAIL, "password": PASSWORD })),
            )
            .responds(200, tokens(), &[]),
    );
    pacts.interaction(
        "users",
        Interaction::new("signing in with a wrong password")
            .given("a user has an account")
            .param("email", EMAIL)
            .request(
                "POST",
                "/api/users/login",
                Some(json!({ "email": EMAIL, "password": "not the password" })),
            )
            .responds(401, json!({ "status": 401 }), &["/status"]),
    );
    declare_more(&mut pacts);
    account_mail(&mut pacts);
    back_office(&mut pacts);
    did_you_mean(&mut pacts);
    pacts.interaction(
        "users",
        Interaction::new("a signed-in user's own account")
            .given("a user has an account")
            .as_shopper(SHOPPER)
            .request("GET", "/api/users/me", None)
            .responds(200, json!({ "name": "Ada Lovelace" }), &[]),
    );
    pacts
}

/// An order as orders shows it to its shopper.
fn order() -> Value {
    json!({
        "id": ORDER_ID,
        "status": "CONFIRMED",
        "reason": null,
        "total": money(2500),
        "lines": [{
            "sku": SKU,
            "name": "Earl Grey, loose leaf",
            "unit_price": money(1250),
            "quantity": 2,
        }],
        "shipping_address": {
            "name": "Ada Lovelace",
            "line1": "12 St James's Square",
            "line2": null,
            "city": "London",
            "postal_code": "SW1Y 4JH",
            "country": "GB",
        },
        "card": { "brand": "visa", "last4": "4242" },
        "created_at": "2026-12-04T12:00:00Z",
    })
}

/// A cart of `quantity` of the tea.
fn cart_of(quantity: i64) -> Value {
    let lines = if quantity > 0 {
        json!([{
            "sku": SKU,
            "name": "Earl Grey, loose leaf",
            "unit_price": money(1250),
            "quantity": quantity,
            "line_total": money(1250 * quantity),
        }])
    } else {
        json!([])
    };
    json!({
        "items": lines,
        "item_count": quantity,
        "total": if quantity > 0 { money(1250 * quantity) } else { Value::Null },
    })
}

/// The checkout, order history, cart changes, a review, the inbox, signing up
/// and signing out.
fn declare_more(pacts: &mut Pacts) {
    pacts.interaction(
        "orders",
        Interaction::new("placing an order for a shopper's cart")
            .given("a shopper has a cart of stocked products")
            .as_shopper(SHOPPER)
            .header(headers::USER_EMAIL_VERIFIED, "true")
            // Minted with the checkout form: one order per form.
            .header_any(
                headers::IDEMPOTENCY_KEY,
                "0192f4a4-0000-7000-8000-00000000c4ec",
            )
            .request(
                "POST",
                "/api/orders",
                Some(json!({
                    "card": {
                        "number": "4242424242424242",
                        "exp_month": 12,
                        "exp_year": 2099,
                        "cvc": "123",
                    },
                    "shipping_address": {
                        "name": "Ada Lovelace",
                        "line1": "12 St James's Square",
                        "city": "London",
                        "postal_code": "SW1Y 4JH",
                        "country": "GB",
                    },
                })),
            )
            .responds(202, order(), &[]),
    );
    pacts.interaction(
        "orders",
        Interaction::new("a shopper's orders, newest first")
            .given("a shopper has placed an order")
            .as_shopper(SHOPPER)
            .request("GET", "/api/orders?limit=20", None)
            .responds(
                200,
                json!({ "items": [order()], "total": 1, "next": null }),
                &["/total"],
            ),
    );
    pacts.interaction(
        "cart",
        Interaction::new("a new quantity for a line")
            .given("a shopper has 2 of a SKU in the cart")
            .as_shopper(SHOPPER)
            .param("sku", SKU)
            .request(
                "PATCH",
                &format!("/api/cart/items/{SKU}"),
                Some(json!({ "quantity": 3 })),
            )
            .responds(200, cart_of(3), &["/items/0/quantity", "/item_count"]),
    );
    pacts.interaction(
        "cart",
        Interaction::new("a line removed")
            .given("a shopper has 2 of a SKU in the cart")
            .as_shopper(SHOPPER)
            .param("sku", SKU)
            .request("DELETE", &format!("/api/cart/items/{SKU}"), None)
            .responds(200, cart_of(0), &["/item_count"]),
    );
    pacts.interaction(
        "reviews",
        Interaction::new("a buyer's review of a product")
            .given("a shopper bought a product")
            .as_shopper(SHOPPER)
            .param("product_id", PRODUCT_ID)
            .request(
                "POST",
                "/api/reviews",
                Some(json!({
                    "product_id": PRODUCT_ID,
                    "rating": 5,
                    "title": "A proper cup",
                    "text": "Strong and fragrant.",
                })),
            )
            .responds(201, json!({ "product_id": PRODUCT_ID }), &["/product_id"]),
    );
    pacts.interaction(
        "notifications",
        Interaction::new("the mail sent to a shopper")
            .given("a shopper has been mailed")
            .as_shopper(SHOPPER)
            .request("GET", "/api/notifications", None)
            .responds(
                200,
                json!({
                    "items": [{
                        "subject": "Welcome to Emporium",
                        "body": "Hello Ada,",
                        "status": "sent",
                        "created_at": "2026-12-04T12:00:00Z",
                    }],
                }),
                &[],
            ),
    );
    pacts.interaction(
        "users",
        Interaction::new("signing up with a new email")
            .given("no account has an email")
            .param("email", NEW_EMAIL)
            .request(
                "POST",
                "/api/users/register",
                Some(json!({ "email": NEW_EMAIL, "password": PASSWORD, "name": "Grace Hopper" })),
            )
            .responds(201, json!({}), &[]),
    );
    pacts.interaction(
        "users",
        Interaction::new("signing up with an email that has an account")
            .given("a user has an account")
            .param("email", EMAIL)
            .request(
                "POST",
                "/api/users/register",
                Some(json!({ "email": EMAIL, "password": PASSWORD, "name": "Ada Lovelace" })),
            )
            .responds(409, json!({ "status": 409 }), &["/status"]),
    );
    pacts.interaction(
        "users",
        Interaction::new("signing in right after signing up")
            .given("a user has an account")
            .param("email", NEW_EMAIL)
            .request(
                "POST",
                "/api/users/login",
                Some(json!({ "email": NEW_EMAIL, "password": PASSWORD })),
            )
            .responds(200, tokens(), &[]),
    );
    pacts.interaction(
        "users",
        Interaction::new("signing out a session")
            .given("a user is signed in")
            .param("refresh_token", REFRESH)
            .request(
                "POST",
                "/api/users/logout",
                Some(json!({ "refresh_token": REFRESH })),
            )
            .responds(204, Value::Null, &[]),
    );
}

/// A search that finds nothing offers names: none for the whole query, so names
/// with a word starting with its first three letters.
fn did_you_mean(pacts: &mut Pacts) {
    pacts.interaction(
        "search",
        Interaction::new("a search nothing matches")
            .given("no product matches a query")
            .param("q", NO_MATCH)
            .request("GET", &format!("/api/search?q={NO_MATCH}&limit=24"), None)
            .responds(
                200,
                json!({ "items": [], "total": 0, "next": null }),
                &["/total"],
            ),
    );
    pacts.interaction(
        "search",
        Interaction::new("no names for a query nothing matches")
            .given("no product matches a query")
            .param("q", NO_MATCH)
            .request("GET", &format!("/api/search/suggest?q={NO_MATCH}"), None)
            .responds(200, json!({ "items": [] }), &["/items"]),
    );
    pacts.interaction(
        "search",
        Interaction::new("names with a word starting with three letters")
            .given("products are indexed")
            .param("prefix", PREFIX)
            .request("GET", &format!("/api/search/suggest?q={PREFIX}"), None)
            .responds(200, json!({ "items": ["Earl Grey, loose leaf"] }), &[]),
    );
}

/// A review as a product page lists it.
fn review() -> Value {
    json!({
        "author": "Ada",
        "rating": 4,
        "title": "A proper cup",
        "text": "Strong and fragrant.",
        "created_at": "2026-12-04T12:00:00Z",
    })
}

/// A product as catalog answers for one.
fn product() -> Value {
    json!({
        "id": PRODUCT_ID,
        "sku": SKU,
        "name": "Earl Grey, loose leaf",
        "description": "Bergamot and black tea.",
        "category": "teas",
        "price": money(1250),
        "image_url": "/api/catalog/images/TEA-EARL-GREY",
        "attributes": { EACH: "Kiln & Oak" },
    })
}

/// The back office: products with their stock, a new product, an edit, a
/// restock, every order, reviews to moderate.
fn back_office(pacts: &mut Pacts) {
    pacts.interaction(
        "catalog",
        Interaction::new("a page of products for the back office")
            .given("products are on sale")
            .request("GET", "/api/catalog/products?limit=50", None)
            .responds(
                200,
                json!({ "items": [product()], "total": 120, "next": "an-opaque-cursor" }),
                &[],
            ),
    );
    pacts.interaction(
        "catalog",
        Interaction::new("one product, to learn the shop's currency")
            .given("products are on sale")
            .request("GET", "/api/catalog/products?limit=1", None)
            .responds(200, json!({ "items": [product()], "total": 120 }), &[]),
    );
    pacts.interaction(
        "catalog",
        Interaction::new("a product by its id")
            .given("a product is on sale")
            .param("product_id", PRODUCT_ID)
            .param("sku", SKU)
            .request("GET", &format!("/api/catalog/products/{PRODUCT_ID}"), None)
            .responds(200, product(), &["/id", "/sku"]),
    );
    pacts.interaction(
        "catalog",
        Interaction::new("a new product")
            .given("no product has a SKU")
            .as_admin(ADMIN)
            .param("sku", NEW_SKU)
            .param("category", "teas")
            .param("currency", "EUR")
            .request(
                "POST",
                "/api/catalog/products",
                Some(json!({
                    "sku": NEW_SKU,
                    "name": "Sencha",
                    "description": "Grassy and bright.",
                    "category": "teas",
                    "price": money(990),
                })),
            )
            .responds(
                201,
                {
                    let mut p = product();
                    p["sku"] = json!(NEW_SKU);
                    p["name"] = json!("Sencha");
                    p["description"] = json!("Grassy and bright.");
                    p["price"] = money(990);
                    // A new product has none yet (the page does not read them).
                    p.as_object_mut().map(|o| o.remove("attributes"));
                    p
                },
                &["/sku", "/name"],
            ),
    );
    pacts.interaction(
        "catalog",
        Interaction::new("a product's new name and price")
            .given("a product is on sale")
            .as_admin(ADMIN)
            .param("product_id", PRODUCT_ID)
            .param("category", "teas")
            .param("currency", "EUR")
            .request(
                "PATCH",
                &format!("/api/catalog/products/{PRODUCT_ID}"),
                Some(json!({
                    "name": "Earl Grey, first flush",
                    "description": "Bergamot and black tea.",
                    "category": "teas",
                    "price": money(1390),
                })),
            )
            .responds(
                200,
                {
                    let mut p = product();
                    p["name"] = json!("Earl Grey, first flush");
                    p["price"] = money(1390);
                    p
                },
                &["/id", "/name", "/price"],
            ),
    );
    pacts.interaction(
        "inventory",
        Interaction::new("a SKU's stock set by hand")
            .given("a SKU has 2 units or more")
            .as_admin(ADMIN)
            .param("sku", SKU)
            .request(
                "PUT",
                &format!("/api/inventory/{SKU}"),
                Some(json!({ "available": 40 })),
            )
            .responds(200, json!({ "available": 40 }), &["/available"]),
    );
    pacts.interaction(
        "orders",
        Interaction::new("every shopper's orders, newest first")
            .given("a shopper has placed an order")
            .as_admin(ADMIN)
            .request("GET", "/api/orders?scope=all&limit=50", None)
            .responds(
                200,
                json!({ "items": [order()], "total": 1, "next": null }),
                &[],
            ),
    );
    pacts.interaction(
        "reviews",
        Interaction::new("reviews to moderate, newest first")
            .given("a product has a review")
            .as_admin(ADMIN)
            .request("GET", "/api/reviews?limit=50", None)
            .responds(
                200,
                {
                    let mut moderated = review();
                    moderated["id"] = json!(REVIEW_ID);
                    moderated["product_id"] = json!(PRODUCT_ID);
                    json!({ "items": [moderated], "next": null })
                },
                &[],
            ),
    );
    pacts.interaction(
        "reviews",
        Interaction::new("a review hidden")
            .given("a product has a review")
            .as_admin(ADMIN)
            .param("review_id", REVIEW_ID)
            .request("POST", &format!("/api/reviews/{REVIEW_ID}/hide"), None)
            .responds(200, json!({}), &[]),
    );
}

/// The pages a mail's link opens: confirming an address, a password reset.
fn account_mail(pacts: &mut Pacts) {
    pacts.interaction(
        "users",
        Interaction::new("confirming an email address with a mail's link")
            .given("a user has a link to confirm their email")
            .param("token", LINK)
            .request("POST", "/api/users/verify", Some(json!({ "token": LINK })))
            .responds(200, json!({}), &[]),
    );
    pacts.interaction(
        "users",
        Interaction::new("confirming an email address with a dead link")
            .given("a user has used a link to confirm their email")
            .param("token", DEAD_LINK)
            .request(
                "POST",
                "/api/users/verify",
                Some(json!({ "token": DEAD_LINK })),
            )
            .responds(400, json!({ "status": 400 }), &["/status"]),
    );
    pacts.interaction(
        "users",
        Interaction::new("asking for a new link right after signing up")
            .given("a user signed up a moment ago")
            .as_shopper(SHOPPER)
            .request("POST", "/api/users/verification", None)
            .responds(429, json!({ "status": 429 }), &["/status"]),
    );
    pacts.interaction(
        "users",
        Interaction::new("asking for a password reset link")
            .given("a user has an account")
            .param("email", EMAIL)
            .request(
                "POST",
                "/api/users/password-reset",
                Some(json!({ "email": EMAIL })),
            )
            .responds(202, Value::Null, &[]),
    );
    pacts.interaction(
        "users",
        Interaction::new("choosing a new password with a reset link")
            .given("a user has a password reset link")
            .param("token", LINK)
            .request(
                "POST",
                "/api/users/password-reset/confirm",
                Some(json!({ "token": LINK, "password": NEW_PASSWORD })),
            )
            .responds(204, Value::Null, &[]),
    );
    pacts.interaction(
        "users",
        Interaction::new("choosing a new password with a dead link")
            .given("a user has used a password reset link")
            .param("token", DEAD_LINK)
            .request(
                "POST",
                "/api/users/password-reset/confirm",
                Some(json!({ "token": DEAD_LINK, "password": NEW_PASSWORD })),
            )
            .responds(400, json!({ "status": 400 }), &["/status"]),
    );
}

#[tokio::test]
async fn the_shopping_pages_rely_on_their_services_for_what_they_show() {
    let env = TestEnv::new();
    let pacts = declare();
    let storefront = env
        .spawn_calling(
            Storefront,
            env.settings::<StorefrontSettings>(None),
            pacts.transport(),
        )
        .await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    // Pages come through the gateway, which calls as itself and names the shopper.
    let browser = emporium_testkit::identity::builder_as("gateway")
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let shopper = |req: reqwest::RequestBuilder| {
        req.header(headers::USER_ID, SHOPPER)
            .header(headers::USER_ROLES, "customer")
            .header(headers::USER_EMAIL_VERIFIED, "true")
    };
    let open = |path: &str, signed_in: bool| {
        let mut req = browser.get(storefront.at(path));
        if signed_in {
            req = shopper(req);
        }
        async move {
            let r = req.send().await.expect("page");
            assert_eq!(r.status(), 200, "{}", r.url());
            r.text().await.expect("html")
        }
    };
    let csrf = || {
        let url = storefront.at("/").parse().expect("url");
        jar.cookies(&url)
            .and_then(|h| h.to_str().ok().map(str::to_string))
            .and_then(|h| {
                h.split("; ")
                    .filter_map(|c| c.split_once('='))
                    .find(|(n, _)| *n == CSRF_COOKIE)
                    .map(|(_, v)| v.to_string())
            })
            .expect("the CSRF cookie")
    };
    // A form as the page sends it, with the page's CSRF token.
    let submit = |path: &str, signed_in: bool, fields: &[(&str, &str)]| {
        let token = csrf();
        let mut form: Vec<(String, String)> = vec![(CSRF_FIELD.into(), token)];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut req = browser.post(storefront.at(path)).form(&form);
        if signed_in {
            req = shopper(req);
        }
        async move { req.send().await.expect("form") }
    };
    let redirected = |r: &reqwest::Response| {
        assert_eq!(r.status(), 303, "{}", r.url());
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };

    let home = open("/", false).await;
    assert!(home.contains("Teas"), "categories on the home page");
    assert!(home.contains("Earl Grey, loose leaf"), "new arrivals");

    let results = open(&format!("/search?q={WORD}"), false).await;
    assert!(results.contains("Earl Grey, loose leaf"), "a result card");
    assert!(results.contains("12.50"), "its price");
    let nothing = open(&format!("/search?q={NO_MATCH}"), false).await;
    assert!(
        nothing.contains(r#"href="/search?q=Earl+Grey%2C+loose+leaf""#),
        "offers a name: {nothing}"
    );

    let product = open(&format!("/products/{SKU}"), true).await;
    assert!(
        product.contains("Bergamot and black tea."),
        "the description"
    );
    assert!(product.contains("A proper cup"), "a review");
    assert!(product.contains("In stock"), "the stock");
    let key = uuid::Uuid::new_v4().to_string();
    let r = submit(
        "/cart/items",
        true,
        &[("sku", SKU), ("quantity", "1"), ("key", &key)],
    )
    .await;
    assert_eq!(redirected(&r), "/cart?n=added");
    let r = submit(
        &format!("/products/{SKU}/reviews"),
        true,
        &[
            ("rating", "5"),
            ("title", "A proper cup"),
            ("text", "Strong and fragrant."),
        ],
    )
    .await;
    assert!(redirected(&r).contains("n=reviewed"), "reviewed");

    let cart = open("/cart", true).await;
    assert!(cart.contains("25.00"), "the cart's total");
    let r = submit(&format!("/cart/items/{SKU}"), true, &[("quantity", "3")]).await;
    assert_eq!(redirected(&r), "/cart?n=updated");
    let r = submit(&format!("/cart/items/{SKU}/remove"), true, &[]).await;
    assert_eq!(redirected(&r), "/cart?n=removed");

    let checkout = open("/checkout", true).await;
    assert!(checkout.contains("25.00"), "the total to pay");
    let key = uuid::Uuid::new_v4().to_string();
    let r = submit(
        "/checkout",
        true,
        &[
            ("key", &key),
            ("name", "Ada Lovelace"),
            ("line1", "12 St James's Square"),
            ("line2", ""),
            ("city", "London"),
            ("postal_code", "SW1Y 4JH"),
            ("country", "GB"),
            ("number", "4242424242424242"),
            ("exp_month", "12"),
            ("exp_year", "2099"),
            ("cvc", "123"),
        ],
    )
    .await;
    assert_eq!(redirected(&r), format!("/orders/{ORDER_ID}"), "the order");
    let order = open(&format!("/orders/{ORDER_ID}"), true).await;
    assert!(order.contains("ending in 4242"), "the card");
    assert!(order.contains("SW1Y 4JH"), "the address");
    // What the order page's script polls: the same answer, read for its status.
    let status = open(&format!("/orders/{ORDER_ID}/status"), true).await;
    assert_eq!(status, r#"{"status":"CONFIRMED"}"#);
    let history = open("/orders", true).await;
    assert!(
        history.contains(&format!("/orders/{ORDER_ID}")),
        "links the order"
    );

    let inbox = open("/inbox", true).await;
    assert!(inbox.contains("Welcome to Emporium"), "a mail's subject");

    // The links in account mails, and asking for them.
    let r = submit("/verify", false, &[("token", LINK)]).await;
    assert_eq!(redirected(&r), "/?n=verified");
    let r = submit("/verify", false, &[("token", DEAD_LINK)]).await;
    assert_eq!(r.status(), 200, "the form again");
    let page = r.text().await.expect("html");
    assert!(page.contains("This link no longer works"), "says why");
    let r = submit("/verification", true, &[]).await;
    assert_eq!(redirected(&r), "/?n=verification-wait");
    let r = submit("/reset", false, &[("email", EMAIL)]).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("html");
    assert!(page.contains("a link to choose a new password is on its way"));
    let r = submit(
        "/reset/confirm",
        false,
        &[("token", LINK), ("password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(redirected(&r), "/signin?n=password-reset");
    let r = submit(
        "/reset/confirm",
        false,
        &[("token", DEAD_LINK), ("password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 200, "the form again");
    let page = r.text().await.expect("html");
    assert!(page.contains("This link no longer works"), "says why");

    // The back office, as a member of staff.
    let staff = |req: reqwest::RequestBuilder| {
        req.header(headers::USER_ID, ADMIN)
            .header(headers::USER_ROLES, emporium_testkit::pact::STAFF_ROLES)
            .header(headers::USER_EMAIL_VERIFIED, "true")
    };
    let page = |path: &str| {
        let req = staff(browser.get(storefront.at(path)));
        async move {
            let r = req.send().await.expect("page");
            assert_eq!(r.status(), 200, "{}", r.url());
            r.text().await.expect("html")
        }
    };
    let post = |path: &str, fields: &[(&str, &str)]| {
        let mut form: Vec<(String, String)> = vec![(CSRF_FIELD.into(), csrf())];
        form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let req = staff(browser.post(storefront.at(path)).form(&form));
        async move { req.send().await.expect("form") }
    };
    let products = page("/admin/products").await;
    assert!(products.contains("Earl Grey, loose leaf"), "a product");
    assert!(products.contains(r#"value="50""#), "its stock");
    let form = page("/admin/products/new").await;
    assert!(form.contains("EUR"), "the shop's currency");
    let r = post(
        "/admin/products",
        &[
            ("sku", NEW_SKU),
            ("name", "Sencha"),
            ("description", "Grassy and bright."),
            ("category", "teas"),
            ("price", "9.90"),
            ("currency", "EUR"),
        ],
    )
    .await;
    assert_eq!(
        redirected(&r),
        format!("/admin/products/{PRODUCT_ID}?n=created")
    );
    let edit = page(&format!("/admin/products/{PRODUCT_ID}")).await;
    assert!(edit.contains("12.50"), "the price to edit");
    let r = post(
        &format!("/admin/products/{PRODUCT_ID}"),
        &[
            ("name", "Earl Grey, first flush"),
            ("description", "Bergamot and black tea."),
            ("category", "teas"),
            ("price", "13.90"),
            ("currency", "EUR"),
        ],
    )
    .await;
    assert_eq!(
        redirected(&r),
        format!("/admin/products/{PRODUCT_ID}?n=saved")
    );
    let r = post(
        &format!("/admin/stock/{SKU}"),
        &[("available", "40"), ("back", "/admin/products")],
    )
    .await;
    assert_eq!(redirected(&r), "/admin/products?n=restocked");
    let orders = page("/admin/orders").await;
    assert!(orders.contains(&format!("/orders/{ORDER_ID}")), "an order");
    let reviews = page("/admin/reviews").await;
    assert!(reviews.contains("A proper cup"), "a review");
    let r = post(&format!("/admin/reviews/{REVIEW_ID}/hide"), &[]).await;
    assert_eq!(redirected(&r), "/admin/reviews?n=hidden");

    let sign_in = |password: &'static str| {
        submit(
            "/signin",
            false,
            &[("email", EMAIL), ("password", password), ("next", "/cart")],
        )
    };
    let r = sign_in("not the password").await;
    assert_eq!(r.status(), 200, "the form again");
    let page = r.text().await.expect("html");
    assert!(page.contains("do not match an account"), "says why");
    let r = sign_in(PASSWORD).await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    assert_eq!(redirected(&r), "/cart", "signed in, then back");
    assert!(
        cookies.iter().any(|c| c.starts_with("emporium_name=Ada")),
        "the name from the account: {cookies:?}"
    );
    // Signed out as the gateway forwards it: the session still valid, and its
    // refresh token ended at users (the cookies go, so the sign-up below is a
    // visitor's without a session).
    let r = submit("/signout", true, &[]).await;
    assert_eq!(redirected(&r), "/?n=signed-out");
    let sign_up = |email: &'static str, name: &'static str| {
        submit(
            "/signup",
            false,
            &[("name", name), ("email", email), ("password", PASSWORD)],
        )
    };
    let r = sign_up(EMAIL, "Ada Lovelace").await;
    assert_eq!(r.status(), 200, "the form again");
    let page = r.text().await.expect("html");
    assert!(
        page.contains("An account with this email exists"),
        "says why"
    );
    let r = sign_up(NEW_EMAIL, "Grace Hopper").await;
    assert_eq!(redirected(&r), "/?n=welcome", "signed up and in");

    pacts.finish();
}
