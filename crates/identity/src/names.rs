//! Who a certificate says its holder is: SPIFFE-style ids and the DNS names
//! clients check.

use std::fmt;

/// The trust domain every Emporium identity lives in.
pub const TRUST_DOMAIN: &str = "emporium.local";

/// A workload (one service, any of its instances) or the operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Service(String),
    /// Whoever holds the platform's CA: the CLI, tests, scripts. Allowed everywhere.
    Operator,
}

impl Principal {
    pub fn service(name: &str) -> Self {
        Principal::Service(name.to_string())
    }

    /// `spiffe://emporium.local/service/orders`, `spiffe://emporium.local/operator`.
    pub fn spiffe_id(&self) -> String {
        match self {
            Principal::Service(name) => format!("spiffe://{TRUST_DOMAIN}/service/{name}"),
            Principal::Operator => format!("spiffe://{TRUST_DOMAIN}/operator"),
        }
    }

    /// The principal a SPIFFE id names, if it is one of ours.
    pub fn from_spiffe_id(id: &str) -> Option<Self> {
        let path = id.strip_prefix("spiffe://")?.strip_prefix(TRUST_DOMAIN)?;
        match path {
            "/operator" => Some(Principal::Operator),
            _ => {
                let name = path.strip_prefix("/service/")?;
                valid_service_name(name).then(|| Principal::service(name))
            }
        }
    }

    /// The service's name, if it is a service.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Principal::Service(name) => Some(name),
            Principal::Operator => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Service(name) => f.write_str(name),
            Principal::Operator => f.write_str("operator"),
        }
    }
}

/// The DNS name in a service's certificate, which its callers verify:
/// `orders.svc.emporium.local`. Never resolved; instances are found through the
/// registry and reached by address.
pub fn dns_name(service: &str) -> String {
    format!("{service}.svc.{TRUST_DOMAIN}")
}

/// A service name a certificate may carry: 1-64 of `[a-z0-9-]`, not "operator".
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "operator"
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_strangers_are_refused() {
        for p in [Principal::service("orders"), Principal::Operator] {
            assert_eq!(Principal::from_spiffe_id(&p.spiffe_id()), Some(p));
        }
        assert_eq!(
            Principal::from_spiffe_id("spiffe://evil.example/service/orders"),
            None
        );
        assert_eq!(
            Principal::from_spiffe_id("spiffe://emporium.local/service/a/b"),
            None
        );
        assert_eq!(
            Principal::from_spiffe_id("spiffe://emporium.local/service/operator"),
            None
        );
        assert_eq!(dns_name("cart"), "cart.svc.emporium.local");
    }
}
