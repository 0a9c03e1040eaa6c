//! Who calls whom across the network: the calls each service makes to another's
//! API, beside the event feeds in [`crate::events::CONSUMERS`]. The runtime refuses
//! (in debug builds) a client for a call that is not declared here, and the
//! Kubernetes NetworkPolicies are checked against it (`cli/tests/system/deploy.rs`),
//! so the firewall and the code cannot drift apart.

/// The registry: every process registers, heartbeats and reads configuration there.
pub const REGISTRY: &str = "registry";

/// The direct calls each service makes (`caller`, its targets).
pub const CALLS: &[(&str, &[&str])] = &[
    (
        "gateway",
        &[
            "users",
            "catalog",
            "inventory",
            "cart",
            "orders",
            "payments",
            "notifications",
            "search",
            "reviews",
            "storefront",
        ],
    ),
    (
        "storefront",
        &[
            "users",
            "catalog",
            "inventory",
            "cart",
            "orders",
            "notifications",
            "search",
            "reviews",
        ],
    ),
    ("orders", &["cart", "inventory", "payments"]),
    ("cart", &["catalog"]),
    ("notifications", &["users"]),
];

/// Services whose ops pages ask every instance of every service for its status
/// (`/internal/status`, dead letters): the storefront's ops console.
pub const FLEET_VIEWERS: &[&str] = &["storefront"];

/// Whether `caller` declares calls to `target`. Services not in the shop (tests'
/// own) are not checked.
pub fn may_call(caller: &str, target: &str) -> bool {
    if target == REGISTRY || FLEET_VIEWERS.contains(&caller) || !is_shop_service(caller) {
        return true;
    }
    CALLS
        .iter()
        .any(|(c, targets)| *c == caller && targets.contains(&target))
}

/// Every service that reaches `target` over the network: its direct callers, the
/// consumers of its events, the fleet viewers, and for the registry, everyone.
pub fn callers_of(target: &str) -> Vec<&'static str> {
    let mut callers: Vec<&'static str> = if target == REGISTRY {
        SERVICES
            .iter()
            .copied()
            .filter(|s| *s != REGISTRY)
            .collect()
    } else {
        CALLS
            .iter()
            .filter(|(_, targets)| targets.contains(&target))
            .map(|(caller, _)| *caller)
            .chain(crate::events::consumers_of(target).iter().copied())
            .chain(FLEET_VIEWERS.iter().copied())
            .filter(|c| *c != target)
            .collect()
    };
    callers.sort_unstable();
    callers.dedup();
    callers
}

/// Every service of the shop.
pub const SERVICES: &[&str] = &[
    "registry",
    "gateway",
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
];

fn is_shop_service(name: &str) -> bool {
    SERVICES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_include_direct_calls_event_consumers_and_the_fleet_viewer() {
        assert_eq!(
            callers_of("catalog"),
            ["cart", "gateway", "inventory", "search", "storefront"]
        );
        assert_eq!(callers_of("payments"), ["gateway", "orders", "storefront"]);
        assert_eq!(callers_of("registry").len(), SERVICES.len() - 1);
        assert!(may_call("orders", "payments"));
        assert!(!may_call("cart", "payments"));
        assert!(may_call("echo", "anything"));
    }

    #[test]
    fn every_named_service_is_a_service_of_the_shop() {
        for (caller, targets) in CALLS {
            assert!(is_shop_service(caller), "{caller}");
            for t in *targets {
                assert!(is_shop_service(t), "{caller} -> {t}");
            }
        }
        for (producer, consumers) in crate::events::CONSUMERS {
            assert!(is_shop_service(producer), "{producer}");
            for c in *consumers {
                assert!(is_shop_service(c), "{producer} -> {c}");
            }
        }
    }
}
