//! Who the client is when proxies stand in front of the gateway.
//!
//! `X-Forwarded-For`, `-Host` and `-Proto` are believed only from a peer in
//! `gateway.trusted_proxies` (a load balancer, an ingress). From anyone else they
//! are replaced: the client is the peer, the host is `Host`, the scheme is
//! `http`. Behind trusted proxies the client is the rightmost `X-Forwarded-For`
//! address that is not itself a trusted proxy (the leftmost entries are whatever
//! the client wrote).

use std::net::IpAddr;

use axum::extract::Request;
use emporium_http::names;
use http::{HeaderMap, HeaderValue, header};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From CIDRs (`10.0.0.0/8`) or single addresses (`127.0.0.1`).
    pub fn parse(entries: &[String]) -> anyhow::Result<Self> {
        entries
            .iter()
            .map(|e| {
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("gateway.trusted_proxies: {e:?} is not an address or CIDR")
                    })
            })
            .collect::<anyhow::Result<_>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, or behind trusted proxies the rightmost
    /// forwarded address that is not one of them.
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = peer(req)?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for entry in forwarded_for(req.headers()).rev() {
            match entry.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // Garbage in the chain: stop at the last address we could read.
                Err(_) => break,
            }
        }
        Some(client)
    }

    /// Rewrites the forwarding headers of a request from `peer` (that arrived
    /// over TLS or not) before it goes upstream: kept and extended behind a
    /// trusted proxy, replaced otherwise.
    pub fn rewrite(&self, headers: &mut HeaderMap, peer: Option<IpAddr>, tls: bool) {
        let trusted = peer.is_some_and(|ip| self.trusts(ip));
        if !trusted {
            headers.remove(names::X_FORWARDED_FOR);
            headers.remove(names::X_FORWARDED_PROTO);
            headers.remove(names::X_FORWARDED_HOST);
        }
        if let Some(ip) = peer {
            let xff = match headers
                .get(names::X_FORWARDED_FOR)
                .and_then(|v| v.to_str().ok())
            {
                Some(prior) => format!("{prior}, {ip}"),
                None => ip.to_string(),
            };
            if let Ok(v) = HeaderValue::try_from(xff) {
                headers.insert(names::X_FORWARDED_FOR, v);
            }
        }
        if !headers.contains_key(names::X_FORWARDED_HOST)
            && let Some(host) = headers.get(header::HOST).cloned()
        {
            headers.insert(names::X_FORWARDED_HOST, host);
        }
        // As the client reached us, unless a trusted proxy in front said.
        if !headers.contains_key(names::X_FORWARDED_PROTO) {
            let proto = if tls { "https" } else { "http" };
            headers.insert(names::X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        }
    }
}

/// The address of the connection's other end.
pub fn peer(req: &Request) -> Option<IpAddr> {
    emporium_http::guard::peer_addr(req.extensions()).map(|addr| addr.ip())
}

fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &str> {
    headers
        .get_all(names::X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;

    fn request(peer: &str, xff: Option<&str>) -> Request {
        let mut req = Request::new(axum::body::Body::empty());
        let addr: SocketAddr = format!("{peer}:1234").parse().expect("addr");
        req.extensions_mut().insert(ConnectInfo(addr));
        if let Some(xff) = xff {
            req.headers_mut().insert(
                "x-forwarded-for",
                HeaderValue::from_str(xff).expect("value"),
            );
        }
        req
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let none = TrustedProxies::default();
        let lb =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "192.168.1.1".into()]).expect("cidrs");
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        // A client writing the header itself changes nothing.
        assert_eq!(
            none.client_ip(&request("203.0.113.9", Some("1.2.3.4"))),
            ip("203.0.113.9")
        );
        assert_eq!(
            lb.client_ip(&request("203.0.113.9", Some("1.2.3.4"))),
            ip("203.0.113.9")
        );
        // Behind the load balancer: the address it saw, not what the client wrote.
        assert_eq!(
            lb.client_ip(&request("10.1.2.3", Some("6.6.6.6, 198.51.100.7"))),
            ip("198.51.100.7")
        );
        // Two trusted hops.
        assert_eq!(
            lb.client_ip(&request("10.1.2.3", Some("198.51.100.7, 192.168.1.1"))),
            ip("198.51.100.7")
        );
        assert!(TrustedProxies::parse(&["nonsense".into()]).is_err());
    }

    #[test]
    fn forwarding_headers_from_strangers_are_replaced() {
        let lb = TrustedProxies::parse(&["10.0.0.0/8".into()]).expect("cidrs");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(header::HOST, HeaderValue::from_static("shop.example"));
        let mut stranger = h.clone();
        lb.rewrite(&mut stranger, "203.0.113.9".parse().ok(), false);
        assert_eq!(stranger["x-forwarded-for"], "203.0.113.9");
        assert_eq!(stranger["x-forwarded-host"], "shop.example");
        assert_eq!(stranger["x-forwarded-proto"], "http");
        let mut proxied = h;
        lb.rewrite(&mut proxied, "10.0.0.2".parse().ok(), false);
        assert_eq!(proxied["x-forwarded-for"], "6.6.6.6, 10.0.0.2");
        assert_eq!(proxied["x-forwarded-host"], "evil.example");
        assert_eq!(proxied["x-forwarded-proto"], "https");
    }
}
