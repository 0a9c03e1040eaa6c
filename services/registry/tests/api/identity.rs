//! The registry as the platform's CA and as a registry that believes only
//! certificates: an instance gets a certificate for its own service with its
//! join token, registers only as that service, and only the operator writes
//! config.

use emporium_catalog::CatalogSettings;
use emporium_client::RegistryClient;
use emporium_config::Secret;
use emporium_contracts::registry::{CERTIFICATES, Registration, UsageReport};
use emporium_identity::{Principal, token};
use emporium_registry::{RegistryService, RegistrySettings};
use emporium_testkit::identity::{anonymous, clients_as, operator_clients, plain};
use emporium_testkit::{Spawned, TestEnv, client, problem};
use serde_json::json;

use super::{eventually, healthy};

async fn issuing_registry(env: &TestEnv, secret: &str) -> Spawned {
    let mut settings = env.settings::<RegistrySettings>(None);
    settings.common.identity.bootstrap_secret = Some(Secret::new(secret.to_string()));
    env.spawn(RegistryService, settings).await
}

fn registration(service: &str, id: &str) -> Registration {
    Registration {
        service: service.into(),
        instance_id: id.into(),
        address: "127.0.0.1:9".into(),
        version: "0".into(),
        metadata: Default::default(),
        ttl_ms: 60_000,
        ready: None,
    }
}

#[tokio::test]
async fn an_instance_with_its_join_token_gets_a_certificate_and_registers_with_it() {
    let env = TestEnv::new();
    let secret = token::new_secret().expect("secret");
    let registry = issuing_registry(&env, &secret).await;
    // Catalog holds no CA key, only its token: the registry issues its certificate.
    let mut settings = env.settings::<CatalogSettings>(Some(&registry));
    settings.common.identity.ca_key = None;
    settings.common.identity.tokens.insert(
        "catalog".into(),
        Secret::new(token::join_token(&secret, "catalog")),
    );
    let catalog = env.spawn(emporium_catalog::Catalog, settings).await;
    let addr = catalog.addr.to_string();
    eventually("catalog registered", async || {
        healthy(&registry, "catalog")
            .await
            .instances
            .iter()
            .any(|i| i.address == addr)
    })
    .await;
    // And it serves with that certificate: the operator's client checks it.
    let r = client()
        .get(catalog.at("/api/catalog/products?limit=1"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn certificates_need_the_services_own_join_token() {
    let env = TestEnv::new();
    let secret = token::new_secret().expect("secret");
    let registry = issuing_registry(&env, &secret).await;
    let key = emporium_identity::new_key().expect("key");
    let public_key = base64_der(&key);
    let ask = |service: &str, token: String| {
        anonymous()
            .post(registry.at(CERTIFICATES))
            .json(&json!({"service": service, "public_key": public_key, "token": token}))
            .send()
    };
    // Orders' token does not get a certificate for payments.
    let orders_token = token::join_token(&secret, "orders");
    problem(
        ask("payments", orders_token.clone()).await.expect("send"),
        403,
    )
    .await;
    // A token under another secret gets nothing.
    let stranger = token::join_token(&token::new_secret().expect("secret"), "orders");
    problem(ask("orders", stranger).await.expect("send"), 403).await;
    // Over plain HTTP the endpoint is not even reached (the token would travel
    // in clear).
    let http = format!("http://{}{CERTIFICATES}", registry.addr);
    let r = plain()
        .post(http)
        .json(&json!({"service": "orders", "public_key": public_key, "token": orders_token}))
        .send()
        .await
        .expect("send");
    problem(r, 401).await;
    // The right token does.
    let r = ask("orders", orders_token).await.expect("send");
    assert_eq!(r.status(), 200);
    let grant: serde_json::Value = r.json().await.expect("json");
    let pem = grant["certificate"].as_str().expect("pem");
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map(|c: rustls_pki_types::CertificateDer<'static>| c)
        .expect("a certificate");
    assert_eq!(
        emporium_identity::principal_of(&der),
        Some(Principal::service("orders"))
    );
}

fn base64_der(key: &emporium_identity::KeyPair) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(emporium_identity::public_key_der(key))
}

#[tokio::test]
async fn nobody_registers_heartbeats_or_deregisters_for_another_service() {
    let env = TestEnv::new();
    let registry = super::spawn_registry(&env, None).await;
    let as_orders = RegistryClient::new(&registry.url, clients_as("orders"));
    let as_payments = RegistryClient::new(&registry.url, clients_as("payments"));
    // A fake payments instance, registered by orders: refused.
    let e = as_orders
        .register(&registration("payments", "payments-fake"))
        .await
        .expect_err("orders registered a payments instance");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403));
    // Without a certificate: refused before the registry looks.
    let r = plain()
        .put(format!(
            "http://{}/internal/registry/instances/payments-fake",
            registry.addr
        ))
        .json(&registration("payments", "payments-fake"))
        .send()
        .await
        .expect("send");
    problem(r, 401).await;
    assert!(healthy(&registry, "payments").await.instances.is_empty());
    // Payments registers itself; orders can neither take over its id, beat for
    // it nor remove it.
    as_payments
        .register(&registration("payments", "payments-1"))
        .await
        .expect("payments registers itself");
    let e = as_orders
        .register(&registration("orders", "payments-1"))
        .await
        .expect_err("took over another service's instance id");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403));
    let beat =
        client_as_orders_put(&registry, "payments-1/heartbeat", json!({"ready": false})).await;
    problem(beat, 403).await;
    let r = emporium_testkit::identity::client_as("orders")
        .delete(registry.at("/internal/registry/instances/payments-1"))
        .send()
        .await
        .expect("send");
    problem(r, 403).await;
    let listed = healthy(&registry, "payments").await.instances;
    assert_eq!(listed.len(), 1, "payments-1 is still listed and healthy");
    // The config store: services read, the operator writes.
    let e = as_orders
        .config_put("checkout/enabled", "false")
        .await
        .expect_err("a service wrote config");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403));
    let operator = RegistryClient::new(&registry.url, operator_clients());
    operator
        .config_put("checkout/enabled", "true")
        .await
        .expect("the operator writes config");
    let read = as_orders
        .config_get("checkout/enabled")
        .await
        .expect("services read config")
        .expect("the value");
    assert_eq!(read.value, "true");
    // Shared rate-limit usage: only a gateway reports, and reads, the gateways'.
    let report = |instance: &str| UsageReport {
        service: "gateway".into(),
        instance_id: instance.into(),
        after: None,
        usage: [("ip".to_string(), [("203.0.113.9".to_string(), 5)].into())].into(),
    };
    let e = as_orders
        .exchange_usage(&report("gateway-fake"))
        .await
        .expect_err("orders reported a gateway's usage");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403));
    let as_gateway = RegistryClient::new(&registry.url, clients_as("gateway"));
    as_gateway
        .exchange_usage(&report("gateway-1"))
        .await
        .expect("a gateway reports");
    let seen = as_gateway
        .exchange_usage(&report("gateway-2"))
        .await
        .expect("another gateway reports");
    assert_eq!(
        seen.reports.len(),
        1,
        "gateway-2 learns what gateway-1 admitted"
    );
    assert_eq!(seen.reports[0].usage["ip"]["203.0.113.9"], 5);
}

async fn client_as_orders_put(
    registry: &Spawned,
    rest: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    emporium_testkit::identity::client_as("orders")
        .put(registry.at(&format!("/internal/registry/instances/{rest}")))
        .json(&body)
        .send()
        .await
        .expect("send")
}
