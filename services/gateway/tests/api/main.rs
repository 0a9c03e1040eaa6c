//! The gateway in front of real users, catalog and registry services (in-process,
//! over real sockets): routing, authentication, identity forwarding, rate limits,
//! size limits, upstream failures and the combined API document.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emporium_catalog::CatalogSettings;
use emporium_client::RegistryClient;
use emporium_contracts::headers;
use emporium_contracts::registry::Registration;
use emporium_gateway::GatewaySettings;
use emporium_registry::RegistrySettings;
use emporium_testkit::{Spawned, TestEnv, client, problem};
use emporium_users::{UserView, UsersSettings};
use serde_json::{Value, json};

mod pacts;
mod quotas;

struct Shop {
    env: TestEnv,
    registry: Spawned,
    catalog: Option<Spawned>,
    gateway: Spawned,
    users: Option<Spawned>,
}

async fn shop(configure: impl FnOnce(&mut GatewaySettings, &mut UsersSettings)) -> Shop {
    let env = TestEnv::new();
    let registry = env
        .spawn(
            emporium_registry::RegistryService,
            env.settings::<RegistrySettings>(None),
        )
        .await;
    let mut users = env.settings::<UsersSettings>(Some(&registry));
    let mut gateway = env.settings::<GatewaySettings>(Some(&registry));
    configure(&mut gateway.service, &mut users.service);
    let users = env.spawn(emporium_users::Users, users).await;
    emporium_testkit::grant_admin(&users.url, "boss@example.com").await;
    let catalog = env
        .spawn(
            emporium_catalog::Catalog,
            env.settings::<CatalogSettings>(Some(&registry)),
        )
        .await;
    let gateway = env.spawn(emporium_gateway::Gateway, gateway).await;
    let shop = Shop {
        env,
        registry,
        catalog: Some(catalog),
        gateway,
        users: Some(users),
    };
    shop.until_status("/api/catalog/categories", 200).await;
    shop.until_status("/.well-known/jwks.json", 200).await;
    shop
}

impl Shop {
    fn at(&self, path: &str) -> String {
        self.gateway.at(path)
    }

    /// Polls `path` through the gateway until it answers `status` (10 s at most).
    async fn until_status(&self, path: &str, status: u16) -> reqwest::Response {
        for _ in 0..200 {
            let r = client().get(self.at(path)).send().await.expect("send");
            if r.status().as_u16() == status {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} never answered {status}");
    }

    /// A new account: its id and an access token.
    /// A new account with its address confirmed (the operator vouches), signed in.
    async fn account(&self, email: &str) -> (String, String) {
        let (id, _) = emporium_testkit::sign_up(&self.gateway.url, email).await;
        if let Some(users) = &self.users {
            emporium_testkit::vouch(&users.url, email).await;
        }
        (
            id,
            emporium_testkit::sign_in(&self.gateway.url, email).await,
        )
    }
}

fn product() -> Value {
    json!({"sku": "GW-00001", "name": "Gateway Mug", "description": "Holds coffee.", "category": "home-kitchen",
           "price": {"amount": 1200, "currency": "USD"}})
}

#[tokio::test]
async fn shoppers_and_admins_through_the_gateway() {
    let shop = shop(|_, _| {}).await;
    let (ada, token) = shop.account("ada@example.com").await;
    let me: UserView = client()
        .get(shop.at("/api/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("me");
    assert_eq!(me.id, ada);

    // An identity header from a client is never believed.
    let (bob, _) = shop.account("bob@example.com").await;
    let spoofed: UserView = client()
        .get(shop.at("/api/users/me"))
        .bearer_auth(&token)
        .header(headers::USER_ID, &bob)
        .header(headers::USER_ROLES, "admin")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("me");
    assert_eq!(spoofed.id, ada);
    let no_token = client()
        .get(shop.at("/api/users/me"))
        .header(headers::USER_ID, &bob)
        .send()
        .await
        .expect("send");
    problem(no_token, 401).await;

    // The public cannot shorten the gateway's deadlines into errors.
    let zero_budget = client()
        .get(shop.at("/api/catalog/categories"))
        .header(headers::TIMEOUT_MS, "0")
        .send()
        .await
        .expect("send");
    assert_eq!(zero_budget.status(), 200);

    // Browsing needs no account.
    let page: Value = client()
        .get(shop.at("/api/catalog/products?category=toys&limit=5"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));

    // Changing the catalog needs the admin role.
    let as_customer = client()
        .post(shop.at("/api/catalog/products"))
        .bearer_auth(&token)
        .json(&product())
        .send()
        .await
        .expect("send");
    problem(as_customer, 403).await;
    let spoofed_admin = client()
        .post(shop.at("/api/catalog/products"))
        .bearer_auth(&token)
        .header(headers::USER_ROLES, "admin")
        .json(&product())
        .send()
        .await
        .expect("send");
    problem(spoofed_admin, 403).await;
    let (_, admin_token) = shop.account("boss@example.com").await;
    let created = client()
        .post(shop.at("/api/catalog/products"))
        .bearer_auth(&admin_token)
        .json(&product())
        .send()
        .await
        .expect("send");
    assert_eq!(created.status(), 201);
    let anonymous = client()
        .post(shop.at("/api/catalog/products"))
        .json(&product())
        .send()
        .await
        .expect("send");
    problem(anonymous, 401).await;
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let shop = shop(|_, _| {}).await;
    let (user, token) = shop.account("eve@example.com").await;
    let parts: Vec<&str> = token.split('.').collect();
    // One bit of the signature flipped: still well-formed base64 of 64 bytes, so
    // only the signature check can refuse it.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
    sig[0] ^= 0x01;
    let tampered_signature = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    let now = 4_000_000_000u64;
    let claims = json!({"sub": user, "iss": "emporium-users", "aud": "emporium", "iat": 1, "exp": now, "jti": "x", "roles": ["admin"]});
    let tampered_claims = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let hs256 = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "x"})),
        b64(&claims),
        parts[2]
    );
    let unknown_kid = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "forged"})),
        parts[1],
        parts[2]
    );
    for bad in [
        tampered_signature,
        tampered_claims,
        alg_none,
        hs256,
        unknown_kid,
        "garbage".into(),
        "a.b.c".into(),
    ] {
        let r = client()
            .get(shop.at("/api/users/me"))
            .bearer_auth(&bad)
            .send()
            .await
            .expect("send");
        let p = problem(r, 401).await;
        assert!(
            p.detail.starts_with("invalid access token"),
            "{bad}: {}",
            p.detail
        );
    }
    let basic = client()
        .get(shop.at("/api/users/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .expect("send");
    problem(basic, 401).await;
    // A bad token is refused even on a public route.
    let r = client()
        .get(shop.at("/api/catalog/categories"))
        .bearer_auth("garbage")
        .send()
        .await
        .expect("send");
    problem(r, 401).await;
}

#[tokio::test]
async fn expired_tokens_are_401() {
    let shop = shop(|gateway, users| {
        gateway.jwt_leeway_secs = 0;
        users.access_token_ttl_secs = 1;
    })
    .await;
    let (_, token) = shop.account("old@example.com").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = client()
        .get(shop.at("/api/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        problem(r, 401).await.detail,
        "invalid access token: expired"
    );
    // A client that sends its expired token along on every call can still
    // refresh and sign out: there the refresh token is the credential.
    let session: Value = client()
        .post(shop.at("/api/users/login"))
        .json(&json!({"email": "old@example.com", "password": emporium_testkit::PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("tokens");
    for (path, status) in [("/api/users/token", 200), ("/api/users/logout", 204)] {
        let r = client()
            .post(shop.at(path))
            .bearer_auth(&token)
            .json(&json!({"refresh_token": session["refresh_token"]}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), status, "{path} with an expired bearer");
    }
}

#[tokio::test]
async fn internal_and_unknown_paths_are_never_routed() {
    let shop = shop(|_, _| {}).await;
    for path in [
        "/internal/registry/instances",
        "/internal/openapi.json",
        "/api/catalog/internal/openapi.json",
        "/api/registry/internal/registry/instances",
        "/api/nowhere/at/all",
        "/INTERNAL/status",
        "/%69nternal/status",
    ] {
        let r = client().get(shop.at(path)).send().await.expect("send");
        problem(r, 404).await;
    }
    // Encoded dot segments and internal segments, sent as written (an HTTP client
    // library would normalise `%2e%2e` to `..` before it left, and the gateway
    // never see it), to an upstream that answers anything it is sent: only the
    // gateway's refusal keeps them from it.
    let upstream = any_answer_upstream(&shop, "reviews").await;
    assert_eq!(
        raw_get(shop.gateway.addr, "/api/reviews/x").await,
        200,
        "the upstream answers"
    );
    let before = upstream.load(Ordering::SeqCst);
    for path in [
        "/api/reviews/%2e%2e/internal/openapi.json",
        "/api/reviews/%2E%2E/%2e%2e/internal/registry/instances",
        "/api/reviews/%69nternal/status",
        "/api/reviews/x/%2e%2e/%2e%2e/%2e%2e/internal/status",
    ] {
        let status = raw_get(shop.gateway.addr, path).await;
        // 400 for a dot segment (malformed), 404 for an internal one.
        assert!(matches!(status, 400 | 404), "{path}: {status}");
    }
    assert_eq!(
        upstream.load(Ordering::SeqCst),
        before,
        "a refused path reached the upstream"
    );
}

#[tokio::test]
async fn a_request_target_past_12_kib_is_refused_at_the_gateway() {
    let shop = shop(|_, _| {}).await;
    let upstream = any_answer_upstream(&shop, "reviews").await;
    let target = |len: usize| {
        let path = "/api/reviews/x?q=";
        format!("{path}{}", "a".repeat(len - path.len()))
    };
    // The longest the gateway forwards reaches the service (over HTTP/2, whose
    // server takes 16 KiB of headers).
    assert_eq!(raw_get(shop.gateway.addr, &target(12 * 1024)).await, 200);
    let before = upstream.load(Ordering::SeqCst);
    assert_eq!(
        raw_get(shop.gateway.addr, &target(12 * 1024 + 1)).await,
        414
    );
    assert_eq!(raw_get(shop.gateway.addr, &target(20 * 1024)).await, 414);
    assert_eq!(upstream.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn an_http2_client_is_served_and_the_host_it_named_is_forwarded_over_http2() {
    use http_body_util::BodyExt;
    let shop = shop(|_, _| {}).await;
    // The storefront checks form posts' origins against the forwarded host.
    let app = axum::Router::new().fallback(|request: axum::extract::Request| async move {
        let host = request
            .headers()
            .get("x-forwarded-host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("(none)");
        format!("{host} {:?}", request.version())
    });
    serve_fake(&shop, "storefront", app).await;
    // HTTP/2 from the first byte (h2c): the host is in the URI, not in a header.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<axum::body::Body>();
    let authority = shop.gateway.addr.to_string();
    let request = http::Request::get(format!("http://{authority}/cart"))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = client.request(request).await.expect("answer");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    // The gateway's upstream calls speak HTTP/2 too (`http2_calls`).
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("{authority} HTTP/2.0")
    );
}

/// Registers an instance of `service` that answers 200 to any request,
/// counting them.
async fn any_answer_upstream(shop: &Shop, service: &'static str) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "anything" }
    });
    serve_fake(shop, service, app).await;
    seen
}

/// Serves `app` as an instance of `service` (over mTLS as `service`, or the
/// gateway would refuse it before asking) and registers it.
async fn serve_fake(shop: &Shop, service: &'static str, app: axum::Router) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let credentials =
        emporium_testkit::identity::credentials(emporium_identity::Principal::service(service));
    let listener =
        emporium_identity::Listener::new(tcp, Some(credentials.server_config().expect("tls")))
            .expect("listener");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    register_fake(shop, service, addr).await;
}

/// Registers an instance of `service` at `addr` as the operator, for a minute.
async fn register_fake(shop: &Shop, service: &str, addr: std::net::SocketAddr) {
    RegistryClient::new(
        &shop.registry.url,
        emporium_testkit::identity::operator_clients(),
    )
    .register(&Registration {
        service: service.into(),
        instance_id: format!("{service}-fake"),
        address: addr.to_string(),
        version: "0".into(),
        metadata: Default::default(),
        ttl_ms: 60_000,
        ready: None,
    })
    .await
    .expect("register");
}

/// The status of `GET path` sent byte for byte, with no normalisation.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer}"))
}

/// How many of `n` requests, each claiming to come from `xff(i)`, got 429.
async fn limited_of(shop: &Shop, n: usize, xff: impl Fn(usize) -> String) -> usize {
    let mut limited = 0;
    for i in 0..n {
        let r = client()
            .get(shop.at("/api/catalog/categories"))
            .header("x-forwarded-for", xff(i))
            .send()
            .await
            .expect("send");
        if r.status() == 429 {
            limited += 1;
        }
    }
    limited
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // A client writing X-Forwarded-For itself does not escape its own limit.
    let open = shop(|gateway, _| {
        gateway.rate_limit.per_second = 1;
        gateway.rate_limit.burst = 3;
    })
    .await;
    let spoofed = limited_of(&open, 10, |i| format!("198.51.100.{i}")).await;
    assert!(
        spoofed >= 6,
        "only {spoofed} of 10 spoofed requests were limited"
    );
    // Behind a trusted proxy (this test, on loopback) each forwarded client has
    // its own limit...
    let behind = shop(|gateway, _| {
        gateway.rate_limit.per_second = 1;
        gateway.rate_limit.burst = 3;
        gateway.trusted_proxies = vec!["127.0.0.1/32".into(), "::1".into()];
    })
    .await;
    let distinct = limited_of(&behind, 10, |i| format!("198.51.100.{i}")).await;
    assert_eq!(
        distinct, 0,
        "distinct clients behind the proxy were limited"
    );
    // ...and one client sending through it is limited as itself.
    let same = limited_of(&behind, 10, |_| "203.0.113.7".into()).await;
    assert!(
        same >= 6,
        "only {same} of 10 requests from one client were limited"
    );
}

#[tokio::test]
async fn each_signed_in_user_has_a_rate_of_their_own() {
    let shop = shop(|gateway, _| {
        gateway.rate_limit.user_per_second = 1;
        gateway.rate_limit.user_burst = 3;
    })
    .await;
    let (_, ada) = shop.account("ada@example.com").await;
    let (_, bob) = shop.account("bob@example.com").await;
    let mut limited = 0;
    for _ in 0..10 {
        let r = client()
            .get(shop.at("/api/users/me"))
            .bearer_auth(&ada)
            .send()
            .await
            .expect("send");
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(limited >= 6, "only {limited} of 10 were limited");
    // Another user on the same address, and anonymous browsing, go on.
    let r = client()
        .get(shop.at("/api/users/me"))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = client()
        .get(shop.at("/api/catalog/categories"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn rate_limits_per_client_ip() {
    let shop = shop(|gateway, _| {
        gateway.rate_limit.per_second = 1;
        gateway.rate_limit.burst = 3;
    })
    .await;
    // The setup already spent some of the burst; drain it.
    let mut limited = None;
    for _ in 0..10 {
        let r = client()
            .get(shop.at("/api/catalog/categories"))
            .send()
            .await
            .expect("send");
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the burst runs out");
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    problem(r, 429).await;
    // Health probes are not rate limited.
    assert_eq!(
        client()
            .get(shop.at("/livez"))
            .send()
            .await
            .expect("send")
            .status(),
        200
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let shop = shop(|_, _| {}).await;
    let body = json!({"email": "x@example.com", "password": "y".repeat(100_000), "name": "X"});
    let r = client()
        .post(shop.at("/api/users/register"))
        .json(&body)
        .send()
        .await
        .expect("send");
    problem(r, 413).await;
}

#[tokio::test]
async fn upstream_failures_are_502_503_504() {
    let shop = shop(|gateway, _| {
        gateway.upstream_timeout_ms = 300;
    })
    .await;
    // A service that answers too slowly.
    let late = axum::Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    });
    serve_fake(&shop, "search", late).await;
    // A service whose only instance refuses connections.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let closed_addr = closed.local_addr().expect("addr");
    drop(closed);
    register_fake(&shop, "reviews", closed_addr).await;
    let p = problem(
        client()
            .get(shop.at("/api/search?q=mug"))
            .send()
            .await
            .expect("send"),
        504,
    )
    .await;
    assert_eq!(p.code, "timeout");
    problem(
        client()
            .get(shop.at("/api/reviews?product_id=x"))
            .send()
            .await
            .expect("send"),
        502,
    )
    .await;
    // Nobody registered cart at all.
    let (_, token) = shop.account("c@example.com").await;
    problem(
        client()
            .get(shop.at("/api/cart"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send"),
        503,
    )
    .await;
}

/// A cart whose every second answer is a 502, counting the requests.
async fn flaky_cart(shop: &Shop) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n.is_multiple_of(2) {
                (http::StatusCode::BAD_GATEWAY, "flaky")
            } else {
                (http::StatusCode::OK, "added")
            }
        }
    });
    serve_fake(shop, "cart", app).await;
    seen
}

#[tokio::test]
async fn a_command_is_sent_again_only_where_the_service_dedupes_by_its_key() {
    let shop = shop(|_, _| {}).await;
    let seen = flaky_cart(&shop).await;
    let (_, token) = shop.account("k@example.com").await;
    let post = |path: &str, key: Option<&str>| {
        let mut r = client()
            .post(shop.at(path))
            .bearer_auth(&token)
            .json(&json!({"sku": "BEA-00001", "quantity": 1}));
        if let Some(key) = key {
            r = r.header("idempotency-key", key);
        }
        r.send()
    };
    // Keyed on a keyed route: the 502 is retried, and the second answer stands.
    let r = post("/api/cart/items", Some("add-1")).await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    // Without a key, or on a route whose service does not dedupe: sent once.
    let r = post("/api/cart/items", None).await.expect("send");
    assert_eq!(r.status(), 502);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    let _ = post("/api/cart/items", None).await.expect("send");
    let r = post("/api/cart/items/BEA-00001", Some("add-2"))
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    assert_eq!(seen.load(Ordering::SeqCst), 5);
    // A key named hop-by-hop never reaches cart: not retried either.
    let _ = post("/api/cart/items", None).await.expect("send");
    let r = client()
        .post(shop.at("/api/cart/items"))
        .bearer_auth(&token)
        .header("connection", "idempotency-key")
        .header("idempotency-key", "add-3")
        .json(&json!({"sku": "BEA-00001", "quantity": 1}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    assert_eq!(seen.load(Ordering::SeqCst), 7);
}

/// An orders that sheds every checkout (503, `Retry-After` and the shed mark, as
/// every service's concurrency limit answers), counting them.
async fn shedding_orders(shop: &Shop) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            (
                http::StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1"), (headers::SHED, "1")],
                "overloaded",
            )
        }
    });
    serve_fake(shop, "orders", app).await;
    seen
}

#[tokio::test]
async fn while_orders_sheds_checkouts_the_gateway_refuses_new_adds_to_the_cart() {
    let shop = shop(|_, _| {}).await;
    let carts = any_answer_upstream(&shop, "cart").await;
    let orders = shedding_orders(&shop).await;
    let (_, token) = shop.account("brownout@example.com").await;
    let add = || {
        client()
            .post(shop.at("/api/cart/items"))
            .bearer_auth(&token)
            .json(&json!({"sku": "BEA-00001", "quantity": 1}))
            .send()
    };
    let adds = |n: usize| async move {
        let mut refused = 0;
        for _ in 0..n {
            let r = add().await.expect("send");
            if r.status() == 503 {
                assert_eq!(r.headers()["retry-after"], "1");
                assert!(r.headers().contains_key(headers::SHED));
                refused += 1;
            } else {
                assert_eq!(r.status(), 200);
            }
        }
        refused
    };
    assert_eq!(adds(10).await, 0, "nothing refused before any checkout");
    assert_eq!(carts.load(Ordering::SeqCst), 10);

    for _ in 0..40 {
        let r = client()
            .post(shop.at("/api/orders"))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 503);
    }
    assert_eq!(orders.load(Ordering::SeqCst), 40);
    // A few ticks of the controller.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = adds(20).await;
    assert!(refused >= 12, "{refused} of 20 adds refused");
    assert_eq!(
        carts.load(Ordering::SeqCst),
        10 + 20 - refused,
        "a refused add never reaches cart"
    );
    // Refused before anything is spent on them, the token's check included: an
    // add with a token that would fail it is refused all the same.
    let mut shed = 0;
    for _ in 0..10 {
        let r = client()
            .post(shop.at("/api/cart/items"))
            .bearer_auth("not-a-token")
            .json(&json!({"sku": "BEA-00001", "quantity": 1}))
            .send()
            .await
            .expect("send");
        match r.status().as_u16() {
            503 => shed += 1,
            401 => {}
            other => panic!("an add with a bad token answered {other}"),
        }
    }
    assert!(
        shed >= 3,
        "{shed} of 10 refused before the token was checked"
    );
    assert_eq!(carts.load(Ordering::SeqCst), 10 + 20 - refused);
    // Another request, even from the same shopper, is not refused.
    let r = client()
        .get(shop.at("/api/cart"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);

    // No checkout shed for a while: adds go through again.
    let mut again = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if adds(5).await == 0 {
            again = true;
            break;
        }
    }
    assert!(
        again,
        "adds still refused 10 s after the last shed checkout"
    );
}

#[tokio::test]
async fn a_crashed_service_is_dropped_and_its_routes_come_back() {
    let mut shop = shop(|_, _| {}).await;
    let catalog = shop.catalog.take().expect("catalog");
    let catalog_addr = catalog.addr;
    catalog.crash();
    // Refused connections, then (after the TTL) no instance at all: never a 200, never a 500.
    let r = client()
        .get(shop.at("/api/catalog/categories"))
        .send()
        .await
        .expect("send");
    assert!([502, 503].contains(&r.status().as_u16()), "{}", r.status());
    shop.until_status("/api/catalog/categories", 503).await;
    let mut settings = shop.env.settings::<CatalogSettings>(Some(&shop.registry));
    settings.listen = catalog_addr;
    let _back = shop.env.spawn(emporium_catalog::Catalog, settings).await;
    shop.until_status("/api/catalog/categories", 200).await;
}

#[tokio::test]
async fn one_api_document_and_a_browsable_ui() {
    let shop = shop(|_, _| {}).await;
    let doc: Value = client()
        .get(shop.at("/api/openapi.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("doc");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1"))
    );
    for path in [
        "/api/users/register",
        "/api/users/login",
        "/api/users/me",
        "/api/catalog/products",
        "/api/catalog/products/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    let ui = client().get(shop.at("/docs/")).send().await.expect("send");
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.expect("html").contains("swagger"));
    // Its files are kept gzipped: sent so to a browser, unpacked for others.
    let bundle = "/docs/swagger-ui-bundle.js";
    let packed = client()
        .get(shop.at(bundle))
        .header("accept-encoding", "gzip, deflate")
        .send()
        .await
        .expect("send");
    assert_eq!(packed.status(), 200);
    assert_eq!(packed.headers()["content-encoding"], "gzip");
    assert_eq!(packed.headers()["vary"], "accept-encoding");
    let packed = packed.bytes().await.expect("body");
    let plain = client().get(shop.at(bundle)).send().await.expect("send");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.expect("body");
    assert!(
        plain.len() > 3 * packed.len(),
        "{} bytes unpacked from {}",
        plain.len(),
        packed.len()
    );
    assert!(std::str::from_utf8(&plain).is_ok_and(|js| js.contains("SwaggerUIBundle")));
    let landing = client().get(shop.at("/api")).send().await.expect("send");
    assert_eq!(landing.status(), 200);
    assert!(landing.text().await.expect("html").contains("Swagger UI"));
    // Every other path is the storefront's; with none running, a browser gets an
    // HTML page saying so.
    let shop_page = client().get(shop.at("/")).send().await.expect("send");
    assert_eq!(shop_page.status(), 503);
    assert!(
        shop_page
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.starts_with("text/html")))
    );
    assert!(
        shop_page
            .text()
            .await
            .expect("html")
            .contains("unavailable")
    );
}

#[tokio::test]
async fn a_new_signing_key_is_fetched_when_its_first_token_arrives() {
    let mut shop = shop(|gateway, _| {
        gateway.jwks_refetch_interval_ms = 0;
    })
    .await;
    let (_, first) = shop.account("first@example.com").await;
    let r = client()
        .get(shop.at("/api/users/me"))
        .bearer_auth(&first)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "the gateway has fetched the first key");

    // users comes back with a new key (its data is gone).
    shop.users.take().expect("users").crash();
    std::fs::remove_dir_all(shop.env.dir.path().join("users")).expect("wipe users data");
    let settings = shop.env.settings::<UsersSettings>(Some(&shop.registry));
    let users = shop.env.spawn(emporium_users::Users, settings).await;
    // Through the gateway once it has heard of the new instance (the registry
    // still lists the dead one until its lease runs out).
    let keys: Value = client()
        .get(users.at("/.well-known/jwks.json"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("jwks");
    shop.users = Some(users);
    emporium_testkit::eventually("the gateway reaches the new users", || async {
        let r = client()
            .get(shop.at("/.well-known/jwks.json"))
            .send()
            .await
            .ok()?;
        (r.json::<Value>().await.ok()? == keys).then_some(())
    })
    .await;
    let (_, second) = shop.account("second@example.com").await;
    let kid = |t: &str| jsonwebtoken_kid(t);
    assert_ne!(kid(&first), kid(&second), "a new key");
    // Many first requests with the new key at once: one fetch, and all of them pass.
    let calls = (0..10).map(|_| {
        client()
            .get(shop.at("/api/users/me"))
            .bearer_auth(&second)
            .send()
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(
            r.expect("send").status(),
            200,
            "the unknown kid made the gateway refetch the JWKS"
        );
    }
    // The first key is gone from the JWKS, so its tokens stop verifying.
    let r = client()
        .get(shop.at("/api/users/me"))
        .bearer_auth(&first)
        .send()
        .await
        .expect("send");
    problem(r, 401).await;
}

fn jsonwebtoken_kid(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let v: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    v["kid"].as_str().expect("kid").to_string()
}

/// A self-signed certificate for `localhost` written to `dir`; its PEM.
fn edge_certificate(dir: &std::path::Path) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    // Key first: the gateway reloads once both files changed.
    std::fs::write(dir.join("edge.key"), made.signing_key.serialize_pem()).expect("key");
    std::fs::write(dir.join("edge.pem"), made.cert.pem()).expect("cert");
    made.cert.pem()
}

/// A client that trusts `pem` alone and finds `localhost` at `addr`.
fn trusting(pem: &str, addr: std::net::SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).expect("pem")])
        .resolve("localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// A registry and a gateway serving the public over TLS with the certificate in
/// `certs` (see [`edge_certificate`]), HSTS for `hsts_max_age_s`, and `tweak`'s
/// settings.
async fn tls_edge(
    env: &TestEnv,
    certs: &std::path::Path,
    hsts_max_age_s: u64,
    tweak: impl FnOnce(&mut GatewaySettings),
) -> (Spawned, Spawned) {
    let registry = env
        .spawn(
            emporium_registry::RegistryService,
            env.settings::<RegistrySettings>(None),
        )
        .await;
    let mut settings = env.settings::<GatewaySettings>(Some(&registry));
    settings.service.tls = Some(emporium_gateway::edge::EdgeTls {
        cert: certs.join("edge.pem"),
        key: certs.join("edge.key"),
        hsts_max_age_s,
    });
    tweak(&mut settings.service);
    let gateway = env.spawn(emporium_gateway::Gateway, settings).await;
    (registry, gateway)
}

#[tokio::test]
async fn at_a_tls_edge_plain_http_is_redirected_before_the_rate_limit_and_refusals_carry_hsts() {
    let env = TestEnv::new();
    let certs = tempfile::tempdir().expect("dir");
    let pem = edge_certificate(certs.path());
    let (_registry, gateway) = tls_edge(&env, certs.path(), 600, |gateway| {
        gateway.rate_limit.per_second = 1;
        gateway.rate_limit.burst = 10;
    })
    .await;
    let addr = gateway.addr;
    let https = trusting(&pem, addr);
    let url = format!("https://localhost:{}/api", addr.port());
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let over_plain_http = || async {
        plain
            .get(format!("http://{addr}/api"))
            .send()
            .await
            .expect("http")
            .status()
    };
    // Plain HTTP is sent to HTTPS, and not counted: a redirect is not the work
    // the quota guards...
    for _ in 0..15 {
        assert_eq!(over_plain_http().await, 308);
    }
    // ...so the address still has its burst of 10 over TLS...
    for n in 0..8 {
        let r = https.get(&url).send().await.expect("https");
        assert_eq!(r.status(), 200, "request {n} over TLS");
    }
    // ...and, once that is spent, is refused with HSTS still on the answer.
    let mut last = None;
    for _ in 0..7 {
        last = Some(https.get(&url).send().await.expect("https"));
    }
    let refused = last.expect("an answer");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["strict-transport-security"],
        "max-age=600"
    );
    // Plain HTTP from the address over its quota is still redirected.
    assert_eq!(over_plain_http().await, 308);
}

#[tokio::test]
async fn the_public_edge_serves_tls_with_hsts_redirects_plain_http_and_reloads_its_certificate() {
    let env = TestEnv::new();
    let certs = tempfile::tempdir().expect("dir");
    let first = edge_certificate(certs.path());
    let (_registry, gateway) = tls_edge(&env, certs.path(), 31_536_000, |_| {}).await;
    let addr = gateway.addr;
    let https = format!("https://localhost:{}/api", addr.port());

    let r = trusting(&first, addr)
        .get(&https)
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    // Plain HTTP: sent to HTTPS, except the probes.
    let plain = emporium_testkit::identity::plain();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("http://{addr}/api?x=1"))
        .send()
        .await
        .expect("http");
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://{addr}/api?x=1").as_str()
    );
    let r = plain
        .get(format!("http://{addr}/livez"))
        .send()
        .await
        .expect("probe");
    assert_eq!(r.status(), 200);

    // A new certificate in the files is served within seconds, no restart.
    let second = edge_certificate(certs.path());
    emporium_testkit::eventually("the new certificate served", || async {
        trusting(&second, addr)
            .get(&https)
            .send()
            .await
            .ok()
            .map(|r| r.status())
    })
    .await;
    assert!(
        trusting(&first, addr).get(&https).send().await.is_err(),
        "the old certificate is still served"
    );
}
