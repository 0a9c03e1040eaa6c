//! The API's landing page at `/api` (the shop itself is the storefront's, at `/`),
//! and the page shown when the storefront cannot be reached.

use axum::response::Html;

pub async fn landing() -> Html<&'static str> {
    Html(LANDING)
}

const LANDING: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emporium</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#222}
code,pre{background:#f4f4f4;border-radius:4px;padding:.1rem .3rem}pre{padding:.8rem;overflow:auto}a{color:#0b5cad}</style></head>
<body><h1>Emporium</h1>
<p>An online shop built as microservices. This is the gateway: every public API goes through it.
The shop itself is at <a href="/">/</a>.</p>
<ul>
<li><a href="/docs/">API documentation</a> (Swagger UI) and the <a href="/api/openapi.json">OpenAPI document</a></li>
<li><a href="/api/catalog/categories">Categories</a> and <a href="/api/catalog/products?limit=10&amp;sort=price">the ten cheapest products</a></li>
</ul>
<h2>Try it</h2>
<pre>curl -s localhost:8080/api/catalog/products?category=books\&amp;sort=-price\&amp;limit=3
curl -s -XPOST localhost:8080/api/users/register -H 'content-type: application/json' \
  -d '{"email":"ada@example.com","password":"correct horse battery","name":"Ada"}'
curl -s -XPOST localhost:8080/api/users/login -H 'content-type: application/json' \
  -d '{"email":"ada@example.com","password":"correct horse battery"}'
curl -s localhost:8080/api/users/me -H "authorization: Bearer $TOKEN"</pre>
</body></html>
"#;

/// The page a browser gets when the storefront is down or unreachable.
pub fn shop_unavailable(
    status: http::StatusCode,
    request_id: Option<&str>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let id = request_id
        .map(|id| format!("<p>Request id: <code>{}</code></p>", id_chars(id)))
        .unwrap_or_default();
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emporium is unavailable</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>The shop is unavailable right now</h1>
<p>Please try again in a moment. The <a href="/api">API</a> may still answer.</p>{id}</main></body></html>
"#
    );
    (
        status,
        [
            (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (http::header::RETRY_AFTER, "5"),
        ],
        html,
    )
        .into_response()
}

/// A request id's own characters only (letters, digits, `-_.`): safe in HTML as is.
fn id_chars(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}
