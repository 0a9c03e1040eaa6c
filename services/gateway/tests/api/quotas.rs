//! Quotas held across gateway instances (through the registry), each instance
//! limiting on its own when the registry is gone, and rate limits changed live.

use std::time::Duration;

use emporium_client::RegistryClient;
use emporium_gateway::{Gateway, GatewaySettings};
use emporium_testkit::{Spawned, client};

use super::{Shop, shop};

/// A path the route table answers itself (404), so only the rate limit decides.
const PATH: &str = "/api/no-such-area";

fn tight(gateway: &mut GatewaySettings) {
    gateway.rate_limit.per_second = 1;
    gateway.rate_limit.burst = 10;
    gateway.rate_limit.share_every_ms = 100;
}

/// How many of `n` requests to `gateway` were admitted (anything but 429).
async fn admitted_of(gateway: &Spawned, n: usize) -> usize {
    let mut admitted = 0;
    for _ in 0..n {
        let r = client().get(gateway.at(PATH)).send().await.expect("send");
        assert!(
            r.status() == 404 || r.status() == 429,
            "unexpected {}",
            r.status()
        );
        if r.status() == 404 {
            admitted += 1;
        }
    }
    admitted
}

async fn second_gateway(shop: &Shop) -> Spawned {
    let mut settings = shop.env.settings::<GatewaySettings>(Some(&shop.registry));
    tight(&mut settings.service);
    shop.env.spawn(Gateway, settings).await
}

#[tokio::test]
async fn a_clients_quota_holds_across_gateway_instances() {
    let shop = shop(|gateway, _| tight(gateway)).await;
    let second = second_gateway(&shop).await;
    // The client spends its burst at the first gateway...
    let first = admitted_of(&shop.gateway, 15).await;
    assert!(first <= 11, "{first} of a burst of 10 admitted");
    // ...and once the gateways have exchanged what they admitted (every 100 ms;
    // an idle one asks every 800 ms), the second knows it: about one request a
    // second has come back, not a burst of ten.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let at_second = admitted_of(&second, 10).await;
    assert!(
        at_second <= 3,
        "the second gateway admitted {at_second} of 10: the quota is per instance"
    );
}

#[tokio::test]
async fn a_client_alternating_between_gateways_gets_one_sustained_rate() {
    let steady = |gateway: &mut GatewaySettings| {
        gateway.rate_limit.per_second = 10;
        gateway.rate_limit.burst = 10;
        gateway.rate_limit.share_every_ms = 100;
    };
    let shop = shop(|gateway, _| steady(gateway)).await;
    let mut settings = shop.env.settings::<GatewaySettings>(Some(&shop.registry));
    steady(&mut settings.service);
    let second = shop.env.spawn(Gateway, settings).await;
    // Both gateways flooded by one client for 3 s: one burst and 10/s between
    // them (40), give or take what one exchange lags; each on its own would
    // admit its own 40.
    let started = std::time::Instant::now();
    let mut admitted = 0;
    while started.elapsed() < Duration::from_secs(3) {
        admitted += admitted_of(&shop.gateway, 1).await + admitted_of(&second, 1).await;
    }
    assert!(
        (30..=50).contains(&admitted),
        "{admitted} admitted in 3 s at 10/s with a burst of 10 over two gateways"
    );
}

#[tokio::test]
async fn without_the_registry_each_gateway_limits_on_its_own() {
    let shop = shop(|gateway, _| tight(gateway)).await;
    let second = second_gateway(&shop).await;
    let Shop {
        registry, gateway, ..
    } = shop;
    registry.stop().await.expect("registry stops");
    // Nothing fails for want of the registry; each instance keeps its own limit.
    for gateway in [&gateway, &second] {
        let admitted = admitted_of(gateway, 15).await;
        assert!(
            (9..=11).contains(&admitted),
            "{admitted} of 15 admitted by one gateway alone"
        );
    }
}

#[tokio::test]
async fn rate_limits_change_live_from_the_config_store() {
    let shop = shop(|gateway, _| tight(gateway)).await;
    let admitted = admitted_of(&shop.gateway, 15).await;
    assert!(admitted <= 11, "{admitted} of a burst of 10 admitted");
    let operator = RegistryClient::new(
        &shop.registry.url,
        emporium_testkit::identity::operator_clients(),
    );
    operator
        .config_put("gateway.rate_limit.per_second", "1000")
        .await
        .expect("config set");
    let mut admitted = 0;
    for _ in 0..50 {
        admitted = admitted_of(&shop.gateway, 5).await;
        if admitted == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(admitted, 5, "the live rate never applied");
    // Deleted, the file's rate applies again.
    operator
        .config_delete("gateway.rate_limit.per_second")
        .await
        .expect("config delete");
    let mut back = false;
    for _ in 0..50 {
        if admitted_of(&shop.gateway, 15).await <= 11 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the file's rate never came back");
}

#[tokio::test]
async fn a_client_over_its_quota_still_reaches_the_health_probes() {
    let shop = shop(|gateway, _| tight(gateway)).await;
    let admitted = admitted_of(&shop.gateway, 15).await;
    assert!(admitted <= 11, "{admitted} of a burst of 10 admitted");
    // The quota is spent (the next request to a route is refused)...
    let refused = client()
        .get(shop.gateway.at(PATH))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 429);
    // ...and the probes still answer: an orchestrator polling them from the same
    // address must never see the gateway as down for it.
    for path in ["/livez", "/readyz"] {
        for _ in 0..5 {
            let r = client()
                .get(shop.gateway.at(path))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{path}");
        }
    }
}
