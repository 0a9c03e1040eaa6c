//! The storefront's own CSS, script and icons, compiled into the binary.
//!
//! Each file is served under a name carrying a hash of its content
//! (`/assets/site.3f2a9c1d.css`), so browsers may keep it for a year: a new
//! build changes the name.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

struct Asset {
    /// `site.css`
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const FILES: [Asset; 3] = [
    Asset {
        name: "site.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/site.css"),
    },
    Asset {
        name: "site.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/site.js"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/icon.svg"),
    },
];

/// The URL of each asset, by its plain name.
pub struct Urls {
    pub css: String,
    pub js: String,
    pub icon: String,
}

/// Hashed names: `(served name, index in FILES)`.
static HASHED: LazyLock<Vec<(String, usize)>> = LazyLock::new(|| {
    FILES
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
            (format!("{stem}.{:08x}.{ext}", fnv(a.body) as u32), i)
        })
        .collect()
});

pub static URLS: LazyLock<Urls> = LazyLock::new(|| {
    let url = |i: usize| format!("/assets/{}", HASHED[i].0);
    Urls {
        css: url(0),
        js: url(1),
        icon: url(2),
    }
});

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `GET /assets/{file}`: an asset by its hashed name, cached for a year.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, i)) = HASHED.iter().find(|(name, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let asset = &FILES[*i];
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

/// `GET /favicon.ico`: browsers ask for it whatever the page says.
pub async fn favicon() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
        ],
        FILES[2].body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        assert!(URLS.css.starts_with("/assets/site.") && URLS.css.ends_with(".css"));
        assert_ne!(URLS.css, URLS.js);
        assert_eq!(HASHED.len(), FILES.len());
    }
}
