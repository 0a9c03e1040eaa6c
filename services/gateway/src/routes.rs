//! Which service serves a path, and which paths need a signed-in user.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::bail;
use http::Method;

/// The gateway's route table, checked at start.
pub struct RouteTable {
    areas: BTreeMap<String, Area>,
    public: Vec<(Method, String)>,
    keyed: Vec<(Method, String)>,
}

/// The first segment after `/api/`, and what serves it.
struct Area {
    service: String,
    /// Its metrics label (`/api/orders`), made once.
    label: Arc<str>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// To `service`; `public` when no token is needed; counted in metrics as
    /// `label`, its area.
    Service {
        service: &'a str,
        public: bool,
        label: &'a Arc<str>,
    },
    /// Nowhere: an unknown area, an internal path, or a malformed path.
    NotFound,
    Malformed,
}

impl RouteTable {
    pub fn new(
        areas: &BTreeMap<String, String>,
        public: &[String],
        keyed: &[String],
    ) -> anyhow::Result<Self> {
        Ok(Self {
            areas: areas
                .iter()
                .map(|(area, service)| {
                    let label = Arc::from(format!("/api/{area}"));
                    let service = service.clone();
                    (area.clone(), Area { service, label })
                })
                .collect(),
            public: parse("public", public)?,
            keyed: parse("keyed", keyed)?,
        })
    }

    /// Whether the service behind `method path` (exactly) dedupes by the
    /// `Idempotency-Key` header, so a request carrying one may be sent again.
    pub fn keyed(&self, method: &Method, path: &str) -> bool {
        lists(&self.keyed, method, path)
    }

    /// Every service some area routes to, once each.
    pub fn services(&self) -> Vec<&str> {
        let mut s: Vec<&str> = self.areas.values().map(|a| a.service.as_str()).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Routes `method path`. Paths with empty, `.` or `..` segments are malformed
    /// (they could escape the area after normalisation somewhere downstream), and no
    /// segment may be `internal`: internal endpoints are never reachable from outside.
    pub fn route(&self, method: &Method, path: &str) -> Route<'_> {
        let Some(rest) = path.strip_prefix("/api/") else {
            return Route::NotFound;
        };
        let mut segments = rest.split('/').peekable();
        let area = segments.peek().copied().unwrap_or_default();
        while let Some(s) = segments.next() {
            if s.is_empty() && segments.peek().is_some() {
                return Route::Malformed;
            }
            match segment(s) {
                Segment::Plain => {}
                Segment::Escaping => return Route::Malformed,
                Segment::Internal => return Route::NotFound,
            }
        }
        let Some(Area { service, label }) = self.areas.get(area) else {
            return Route::NotFound;
        };
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let public = self.public.iter().any(|(m, prefix)| {
            m == method
                && (path == prefix.trim_end_matches('/') || path.starts_with(prefix.as_str()))
        });
        Route::Service {
            service,
            public,
            label,
        }
    }
}

/// `METHOD /api/...` entries of the settings (`what` names the list in errors).
/// Whether `method path` is exactly one of `entries` (as [`parse`] made them).
pub(crate) fn lists(entries: &[(Method, String)], method: &Method, path: &str) -> bool {
    entries.iter().any(|(m, p)| m == method && p == path)
}

pub(crate) fn parse(what: &str, entries: &[String]) -> anyhow::Result<Vec<(Method, String)>> {
    let mut parsed = Vec::new();
    for entry in entries {
        let Some((method, prefix)) = entry.split_once(' ') else {
            bail!("{what} route `{entry}` must look like `GET /api/catalog/`");
        };
        let method: Method = method.parse()?;
        if !prefix.starts_with("/api/") {
            bail!("{what} route `{entry}` must be under /api/");
        }
        parsed.push((method, prefix.to_string()));
    }
    Ok(parsed)
}

/// Whether `path` (outside `/api`) may go to the storefront: never an internal
/// endpoint, nor a path that could become one after normalisation.
pub fn is_page(path: &str) -> bool {
    path.split('/').all(|s| segment(s) == Segment::Plain)
}

/// What one path segment is, read percent-decoded (so `%2e%2e` is `..` and
/// `%69nternal` is `internal`).
#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Plain,
    /// `.`, `..`, or one hiding a `/` or `\`: it could leave its place after
    /// normalisation somewhere downstream.
    Escaping,
    /// `internal`, in any case: internal endpoints are never reachable from outside.
    Internal,
}

fn segment(raw: &str) -> Segment {
    let s = percent_decoded(raw);
    if s == "." || s == ".." || s.contains(['/', '\\']) {
        Segment::Escaping
    } else if s.eq_ignore_ascii_case("internal") {
        Segment::Internal
    } else {
        Segment::Plain
    }
}

fn percent_decoded(segment: &str) -> Cow<'_, str> {
    // Most segments have nothing to decode: read them in place.
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let s = crate::GatewaySettings::default();
        RouteTable::new(&s.routes, &s.public_routes, &s.keyed_routes).expect("valid defaults")
    }

    #[test]
    fn areas_map_to_services() {
        let t = table();
        assert_eq!(
            t.route(&Method::GET, "/api/catalog/products"),
            Route::Service {
                service: "catalog",
                public: true,
                label: &Arc::from("/api/catalog"),
            }
        );
        assert_eq!(
            t.route(&Method::POST, "/api/catalog/products"),
            Route::Service {
                service: "catalog",
                public: false,
                label: &Arc::from("/api/catalog"),
            }
        );
        assert_eq!(
            t.route(&Method::GET, "/api/users/me"),
            Route::Service {
                service: "users",
                public: false,
                label: &Arc::from("/api/users"),
            }
        );
        assert_eq!(
            t.route(&Method::POST, "/api/users/login"),
            Route::Service {
                service: "users",
                public: true,
                label: &Arc::from("/api/users"),
            }
        );
        assert_eq!(t.route(&Method::GET, "/api/nope/x"), Route::NotFound);
    }

    #[test]
    fn internal_and_tricky_paths_never_route() {
        let t = table();
        assert_eq!(
            t.route(&Method::GET, "/api/catalog/internal/events"),
            Route::NotFound
        );
        assert_eq!(
            t.route(&Method::GET, "/api/catalog/INTERNAL/x"),
            Route::NotFound
        );
        assert_eq!(
            t.route(&Method::GET, "/api/catalog/../internal"),
            Route::Malformed
        );
        assert_eq!(
            t.route(&Method::GET, "/api/catalog/%2e%2e/x"),
            Route::Malformed
        );
        assert_eq!(t.route(&Method::GET, "/api/catalog//x"), Route::Malformed);
        assert_eq!(
            t.route(&Method::GET, "/api/catalog/a%2fb"),
            Route::Malformed
        );
        assert_eq!(
            t.route(&Method::GET, "/api/catalog/%69nternal/x"),
            Route::NotFound
        );
        assert_eq!(t.route(&Method::GET, "/internal/registry"), Route::NotFound);
    }

    #[test]
    fn pages_never_reach_internal_endpoints() {
        assert!(is_page("/"));
        assert!(is_page("/products/BEA-00001"));
        assert!(is_page("/search"));
        assert!(!is_page("/internal/status"));
        assert!(!is_page("/x/INTERNAL/y"));
        assert!(!is_page("/%69nternal/status"));
        assert!(!is_page("/a/%2e%2e/internal"));
        assert!(!is_page("/a/../internal"));
    }

    #[test]
    fn bad_public_routes_are_refused_at_start() {
        let areas = BTreeMap::new();
        assert!(RouteTable::new(&areas, &["GET".into()], &[]).is_err());
        assert!(RouteTable::new(&areas, &["GET /internal/x".into()], &[]).is_err());
        assert!(RouteTable::new(&areas, &[], &["POST /internal/x".into()]).is_err());
    }
}
