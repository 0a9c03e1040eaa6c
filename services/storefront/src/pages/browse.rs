//! Home, and search results (a category is a search with its facet chosen): facets
//! as links that combine, sort, pages, and "did you mean". With search down, the
//! results come from catalog's listing, with a note.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::{App, Chrome, PageQuery, cart_of, notice, render};
use crate::backend::{
    Categories, Category, Hit, ProductPage, SearchPage, Suggestions, get, with_query,
};
use crate::error::{PageError, Section};
use crate::session::Visitor;
use crate::view;

/// A product as a card in a grid.
pub struct Card {
    pub href: String,
    pub name: String,
    pub price: String,
    pub image_url: String,
    /// `★★★★☆`, empty without reviews.
    pub stars: String,
    /// `4.3 out of 5, 12 reviews`
    pub rating: String,
    pub stock: &'static str,
    pub stock_class: String,
    /// Safe HTML (see [`view::snippet_html`]).
    pub snippet: String,
}

impl Card {
    /// A search hit as a card; `snippet` only for a query (it shows the matches).
    fn of(hit: &Hit, snippet: bool) -> Self {
        let (stars, rating) = if hit.rating.count > 0 {
            (
                view::stars(hit.rating.average),
                format!(
                    "{} out of 5, {} review{}",
                    view::average(hit.rating.average),
                    hit.rating.count,
                    if hit.rating.count == 1 { "" } else { "s" }
                ),
            )
        } else {
            (String::new(), String::new())
        };
        Self {
            href: format!("/products/{}", crate::backend::segment(&hit.sku)),
            name: hit.name.clone(),
            price: view::money(&hit.price),
            image_url: hit.image_url.clone(),
            stars,
            rating,
            stock: view::stock_level(&hit.stock),
            stock_class: hit.stock.replace('_', "-"),
            snippet: if snippet {
                view::snippet_html(&hit.snippet)
            } else {
                String::new()
            },
        }
    }

    fn of_product(p: &crate::backend::Product) -> Self {
        Self {
            href: format!("/products/{}", crate::backend::segment(&p.sku)),
            name: p.name.clone(),
            price: view::money(&p.price),
            image_url: p.image_url.clone(),
            stars: String::new(),
            rating: String::new(),
            stock: "",
            stock_class: String::new(),
            snippet: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    chrome: Chrome,
    categories: Section<Vec<Category>>,
    new_arrivals: Section<Vec<Card>>,
    top_rated: Section<Vec<Card>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HomeQuery {
    n: Option<String>,
}

/// `GET /`
pub async fn home(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(query): PageQuery<HomeQuery>,
) -> Result<Response, PageError> {
    let search = &app.backend.search;
    let (categories, new, top, cart) = tokio::join!(
        app.backend
            .catalog
            .get_json::<Categories>("/api/catalog/categories"),
        search.get_json::<SearchPage>("/api/search?sort=new&limit=8"),
        search.get_json::<SearchPage>("/api/search?sort=rating&min_rating=1&limit=8"),
        cart_of(&app, &visitor),
    );
    let cards = |page: SearchPage| page.items.iter().map(|h| Card::of(h, false)).collect();
    let page = Home {
        chrome: Chrome::new(&app, &visitor, "Home", cart.as_ref())
            .with_notice(notice(query.n.as_deref())),
        categories: Section::from(
            "Categories are unavailable right now.",
            categories.map(|c| c.items),
        ),
        new_arrivals: Section::from("New arrivals are unavailable right now.", new.map(cards)),
        top_rated: Section::from(
            "Top rated products are unavailable right now.",
            top.map(cards),
        ),
    };
    render(&page)
}

/// `GET /search`: what the search API takes, as sent.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    min_price: String,
    #[serde(default)]
    max_price: String,
    #[serde(default)]
    in_stock: String,
    #[serde(default)]
    min_rating: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
}

impl SearchQuery {
    fn pairs(&self) -> [(&'static str, &str); 8] {
        [
            ("q", self.q.as_str()),
            ("category", &self.category),
            ("min_price", &self.min_price),
            ("max_price", &self.max_price),
            ("in_stock", &self.in_stock),
            ("min_rating", &self.min_rating),
            ("sort", &self.sort),
            ("cursor", &self.cursor),
        ]
    }

    /// This page's link with `change` applied and the cursor dropped (a new
    /// filter starts from the first page).
    fn link(&self, change: impl FnOnce(&mut SearchQuery)) -> String {
        let mut q = self.clone();
        q.cursor.clear();
        change(&mut q);
        with_query("/search", q.pairs())
    }
}

/// A facet value or a sort order as a link.
pub struct Link {
    pub label: String,
    pub count: String,
    pub href: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "search.html")]
struct Results {
    chrome: Chrome,
    heading: String,
    total: String,
    cards: Vec<Card>,
    categories: Vec<Link>,
    prices: Vec<Link>,
    ratings: Vec<Link>,
    in_stock: Option<Link>,
    sorts: Vec<Link>,
    /// Filters in force, each with a link that removes it.
    chosen: Vec<Link>,
    next: String,
    first: String,
    did_you_mean: Vec<Link>,
    note: &'static str,
}

/// `GET /search?q=&category=&min_price=&max_price=&in_stock=&min_rating=&sort=&cursor=`
pub async fn search(
    State(app): State<App>,
    visitor: Visitor,
    PageQuery(query): PageQuery<SearchQuery>,
) -> Result<Response, PageError> {
    let limit = app.settings.page_size.to_string();
    let mut pairs: Vec<(&str, &str)> = query.pairs().to_vec();
    pairs.push(("limit", &limit));
    let (found, categories, cart) = tokio::join!(
        get::<SearchPage>(app.backend.search.clone(), with_query("/api/search", pairs)),
        app.backend
            .catalog
            .get_json::<Categories>("/api/catalog/categories"),
        cart_of(&app, &visitor),
    );
    let categories = categories.map(|c| c.items).unwrap_or_default();
    let name_of = |id: &str| {
        categories
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| id.to_string(), |c| c.name.clone())
    };
    let chrome = Chrome::new(&app, &visitor, "Search", cart.as_ref()).with_query(&query.q);
    let heading = match (query.q.is_empty(), query.category.is_empty()) {
        (false, _) => format!("Results for “{}”", query.q),
        (true, false) => name_of(&query.category),
        (true, true) => "All products".to_string(),
    };
    let found = match found {
        Ok(found) => found,
        Err(e) if e.status().is_some_and(|s| s.is_client_error()) => {
            let why = e
                .problem_detail()
                .unwrap_or("Some of the filters are not valid.");
            return Err(PageError::BadRequest(why.to_string()));
        }
        Err(e) => {
            tracing::warn!(error = %e, "search unavailable; listing the catalog");
            return catalog_fallback(&app, chrome, &query, heading).await;
        }
    };
    let currency = found
        .items
        .first()
        .map_or("USD".to_string(), |h| h.price.currency.clone());
    let band = |min: i64, max: Option<i64>| {
        let m = |a| view::money(&emporium_contracts::money::Money::new(a, &currency));
        match (min, max) {
            (0, Some(max)) => format!("Under {}", m(max)),
            (min, Some(max)) => format!("{} to {}", m(min), m(max)),
            (min, None) => format!("{} and up", m(min)),
        }
    };
    let count = |n: usize| n.to_string();
    let mut chosen = Vec::new();
    let category_links = found
        .facets
        .category
        .iter()
        .map(|(id, n)| Link {
            label: name_of(id),
            count: count(*n),
            href: query.link(|q| q.category = id.clone()),
            selected: query.category == *id,
        })
        .collect();
    if !query.category.is_empty() {
        chosen.push(Link {
            label: name_of(&query.category),
            count: String::new(),
            href: query.link(|q| q.category.clear()),
            selected: true,
        });
    }
    let prices = found
        .facets
        .price
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| {
            // Bands end before `max`; the filter's maximum is inclusive.
            let min = b.min.to_string();
            let max = b.max.map(|m| (m - 1).to_string()).unwrap_or_default();
            Link {
                label: band(b.min, b.max),
                count: count(b.count),
                selected: query.min_price == min && query.max_price == max,
                href: query.link(|q| {
                    q.min_price = min.clone();
                    q.max_price = max.clone();
                }),
            }
        })
        .collect();
    if !query.min_price.is_empty() || !query.max_price.is_empty() {
        let min = query.min_price.parse().unwrap_or(0);
        let max = query.max_price.parse::<i64>().ok().map(|m| m + 1);
        chosen.push(Link {
            label: band(min, max),
            count: String::new(),
            href: query.link(|q| {
                q.min_price.clear();
                q.max_price.clear();
            }),
            selected: true,
        });
    }
    let ratings = found
        .facets
        .rating
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| Link {
            label: format!("{} stars & up", b.min),
            count: count(b.count),
            href: query.link(|q| q.min_rating = b.min.to_string()),
            selected: query.min_rating == b.min.to_string(),
        })
        .collect();
    if !query.min_rating.is_empty() {
        chosen.push(Link {
            label: format!("{} stars & up", query.min_rating),
            count: String::new(),
            href: query.link(|q| q.min_rating.clear()),
            selected: true,
        });
    }
    let in_stock = (found.facets.in_stock > 0).then(|| Link {
        label: "In stock".into(),
        count: count(found.facets.in_stock),
        href: query.link(|q| q.in_stock = "true".into()),
        selected: query.in_stock == "true",
    });
    if query.in_stock == "true" {
        chosen.push(Link {
            label: "In stock".into(),
            count: String::new(),
            href: query.link(|q| q.in_stock.clear()),
            selected: true,
        });
    }
    let sorts = [
        ("relevance", "Best match"),
        ("price", "Price: low to high"),
        ("-price", "Price: high to low"),
        ("rating", "Top rated"),
        ("new", "Newest"),
    ]
    .iter()
    .map(|(key, label)| Link {
        label: (*label).into(),
        count: String::new(),
        href: query.link(|q| q.sort = (*key).into()),
        selected: query.sort == *key || (query.sort.is_empty() && *key == "relevance"),
    })
    .collect();
    let did_you_mean = if found.total == 0 && !query.q.trim().is_empty() {
        did_you_mean(&app, &query).await
    } else {
        Vec::new()
    };
    let next = found.next.as_ref().map_or_else(String::new, |c| {
        let mut q = query.clone();
        q.cursor = c.clone();
        with_query("/search", q.pairs())
    });
    let first = if query.cursor.is_empty() {
        String::new()
    } else {
        query.link(|_| ())
    };
    let page = Results {
        chrome,
        heading,
        total: match found.total {
            1 => "1 product".into(),
            n => format!("{n} products"),
        },
        cards: found
            .items
            .iter()
            .map(|h| Card::of(h, !query.q.trim().is_empty()))
            .collect(),
        categories: category_links,
        prices,
        ratings,
        in_stock,
        sorts,
        chosen,
        next,
        first,
        did_you_mean,
        note: "",
    };
    render(&page)
}

/// Names search suggests for a query that found nothing: for the whole query, else
/// for the start of its first word.
async fn did_you_mean(app: &App, query: &SearchQuery) -> Vec<Link> {
    let suggest = |q: String| async move {
        app.backend
            .search
            .get_json::<Suggestions>(&with_query("/api/search/suggest", [("q", q.as_str())]))
            .await
            .map(|s| s.items)
            .unwrap_or_default()
    };
    let mut names = suggest(query.q.clone()).await;
    if names.is_empty() {
        let first: String = query
            .q
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .chars()
            .take(3)
            .collect();
        if first.chars().count() == 3 {
            names = suggest(first).await;
        }
    }
    names
        .into_iter()
        .take(3)
        .map(|name| Link {
            href: query.link(|q| q.q = name.clone()),
            label: name,
            count: String::new(),
            selected: false,
        })
        .collect()
}

/// Search is down: the category and price filters, from catalog's listing.
async fn catalog_fallback(
    app: &App,
    chrome: Chrome,
    query: &SearchQuery,
    heading: String,
) -> Result<Response, PageError> {
    let sort = match query.sort.as_str() {
        s @ ("price" | "-price") => s,
        _ => "name",
    };
    let limit = app.settings.page_size.to_string();
    let path = with_query(
        "/api/catalog/products",
        [
            ("category", query.category.as_str()),
            ("min_price", &query.min_price),
            ("max_price", &query.max_price),
            ("sort", sort),
            ("limit", &limit),
        ],
    );
    let listed = app
        .backend
        .catalog
        .get_json::<ProductPage>(&path)
        .await
        .map_err(|e| PageError::from_call("search", e))?;
    let page = Results {
        chrome,
        heading,
        total: format!("{} products", listed.total),
        cards: listed.items.iter().map(Card::of_product).collect(),
        categories: Vec::new(),
        prices: Vec::new(),
        ratings: Vec::new(),
        in_stock: None,
        sorts: Vec::new(),
        chosen: Vec::new(),
        next: String::new(),
        first: String::new(),
        did_you_mean: Vec::new(),
        note: "Search is unavailable right now, so these are the catalog's products \
               (filters by category and price only).",
    };
    render(&page)
}
