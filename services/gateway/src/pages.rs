//! The landing page at `/`.

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
<p>An online shop built as microservices. This is the gateway: every public API goes through it.</p>
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
