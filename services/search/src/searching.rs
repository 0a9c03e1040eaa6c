//! Running a search: match with tantivy, then filter, count facets, sort and page
//! over the matches' fast fields.
//!
//! Every match is collected with its sort keys (a catalog of thousands is a few
//! microseconds of that), so facets count exactly what the filters let through and
//! pages are keyset-paged on (sort key, product id): products added or removed
//! between pages never shift them (an item whose own sort key changes in between
//! may cross the cursor).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{AllQuery, Query};
use tantivy::schema::Value;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, TantivyDocument};
use utoipa::ToSchema;

use crate::documents::Item;
use crate::index::Engine;
use crate::query::{self, Parsed, Word};

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    #[serde(rename = "relevance")]
    Relevance,
    #[serde(rename = "price")]
    PriceAsc,
    #[serde(rename = "-price")]
    PriceDesc,
    #[serde(rename = "rating")]
    Rating,
    #[serde(rename = "new")]
    New,
}

impl Sort {
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        match input {
            "relevance" => Ok(Self::Relevance),
            "price" => Ok(Self::PriceAsc),
            "-price" => Ok(Self::PriceDesc),
            "rating" => Ok(Self::Rating),
            "new" => Ok(Self::New),
            _ => Err("must be one of relevance, price, -price, rating, new"),
        }
    }
}

/// What the matches must also be.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub category: Option<String>,
    /// Minor units, inclusive.
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: bool,
    /// Hundredths of a star.
    pub min_rating: Option<i64>,
}

/// Where a page starts: after this key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct After {
    pub key: f64,
    pub id: String,
}

/// A search to run.
#[derive(Debug, Clone)]
pub struct Request {
    pub parsed: Parsed,
    pub filters: Filters,
    pub sort: Sort,
    pub limit: usize,
    pub after: Option<After>,
}

/// A matching product with what sorting and facets need.
#[derive(Debug, Clone)]
struct Match {
    score: Score,
    addr: DocAddress,
    id: String,
    category: String,
    price: i64,
    rating: i64,
    rating_count: i64,
    stock: i64,
    created: i64,
}

impl Match {
    /// The primary sort key; larger first for every sort but `price`.
    fn key(&self, sort: Sort) -> f64 {
        match sort {
            Sort::Relevance => f64::from(self.score),
            Sort::PriceAsc | Sort::PriceDesc => self.price as f64,
            // Average first, then how many reviews: 4.5 from 200 above 4.5 from 2.
            Sort::Rating => self.rating as f64 * 1e9 + self.rating_count.min(999_999_999) as f64,
            Sort::New => self.created as f64,
        }
    }
}

/// Compares two (key, id) positions in the order of `sort`: ids ascending break ties.
fn order(sort: Sort, a: (f64, &str), b: (f64, &str)) -> Ordering {
    let primary = match sort {
        Sort::PriceAsc => a.0.total_cmp(&b.0),
        _ => b.0.total_cmp(&a.0),
    };
    primary.then_with(|| a.1.cmp(b.1))
}

/// Counts per facet value, for the matches after filtering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Facets {
    /// Category id → products.
    pub category: std::collections::BTreeMap<String, usize>,
    pub price: Vec<PriceBand>,
    /// Products rated at least 4, 3, 2 and 1 stars.
    pub rating: Vec<RatingBand>,
    /// Products that can be bought now (in stock or low).
    pub in_stock: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriceBand {
    /// Minor units, inclusive.
    pub min: i64,
    /// Minor units, exclusive; `null` for the last band.
    pub max: Option<i64>,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RatingBand {
    /// Stars at least.
    pub min: u8,
    pub count: usize,
}

/// Price band edges in minor units: under 25, 25–50, 50–100, 100–200, 200 and up.
pub const PRICE_EDGES: [i64; 4] = [2_500, 5_000, 10_000, 20_000];

impl Facets {
    fn count(matches: &[Match]) -> Self {
        let mut facets = Facets {
            price: std::iter::once(0)
                .chain(PRICE_EDGES)
                .zip(PRICE_EDGES.map(Some).into_iter().chain([None]))
                .map(|(min, max)| PriceBand { min, max, count: 0 })
                .collect(),
            rating: (1..=4)
                .rev()
                .map(|min| RatingBand { min, count: 0 })
                .collect(),
            ..Default::default()
        };
        for m in matches {
            *facets.category.entry(m.category.clone()).or_default() += 1;
            if let Some(band) = facets
                .price
                .iter_mut()
                .find(|b| m.price >= b.min && b.max.is_none_or(|max| m.price < max))
            {
                band.count += 1;
            }
            for band in &mut facets.rating {
                if m.rating_count > 0 && m.rating >= i64::from(band.min) * 100 {
                    band.count += 1;
                }
            }
            if m.stock > 0 {
                facets.in_stock += 1;
            }
        }
        facets
    }
}

/// One found product.
#[derive(Debug, Clone)]
pub struct Found {
    pub item: Item,
    pub snippet: String,
    /// Where the next page starts if this is the last of this one.
    pub after: After,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub found: Vec<Found>,
    pub total: usize,
    pub facets: Facets,
    pub more: bool,
}

/// Runs `request` on `engine`.
pub fn search(engine: &Engine, request: &Request) -> tantivy::Result<Outcome> {
    let searcher = engine.reader.searcher();
    let query: Box<dyn Query> = if request.parsed.is_empty() {
        Box::new(AllQuery)
    } else {
        query::build(&engine.fields, &request.parsed, false)
    };
    let collector = Matches {
        filters: request.filters.clone(),
    };
    let mut matches = searcher.search(&*query, &collector)?;
    let facets = Facets::count(&matches);
    let total = matches.len();
    let sort = request.sort;
    matches.sort_by(|a, b| order(sort, (a.key(sort), &a.id), (b.key(sort), &b.id)));
    let start = match &request.after {
        Some(after) => matches.partition_point(|m| {
            order(sort, (m.key(sort), &m.id), (after.key, &after.id)) != Ordering::Greater
        }),
        None => 0,
    };
    let page = &matches[start.min(total)..];
    let more = page.len() > request.limit;
    let mut analyzer = crate::index::analyzer();
    let mut found = Vec::with_capacity(request.limit);
    for m in page.iter().take(request.limit) {
        let doc: TantivyDocument = searcher.doc(m.addr)?;
        let Some(mut item) = doc
            .get_first(engine.fields.item)
            .and_then(|v| v.as_str())
            .and_then(|json| serde_json::from_str::<Item>(json).ok())
        else {
            continue;
        };
        let snippet = snippet(&mut analyzer, &request.parsed.words, &item);
        item.description = String::new();
        found.push(Found {
            item,
            snippet,
            after: After {
                key: m.key(sort),
                id: m.id.clone(),
            },
        });
    }
    Ok(Outcome {
        found,
        total,
        facets,
        more,
    })
}

pub const MAX_SUGGESTIONS: usize = 10;

/// Up to 10 product names for what has been typed so far, best first.
pub fn suggest(engine: &Engine, parsed: &Parsed) -> tantivy::Result<Vec<String>> {
    if parsed.words.is_empty() {
        return Ok(Vec::new());
    }
    let searcher = engine.reader.searcher();
    let query = query::build(&engine.fields, parsed, true);
    // Products may share a name: look a little further to fill ten.
    let top = tantivy::collector::TopDocs::with_limit(3 * MAX_SUGGESTIONS).order_by_score();
    let mut names: Vec<String> = Vec::new();
    for (_, addr) in searcher.search(&*query, &top)? {
        if names.len() == MAX_SUGGESTIONS {
            break;
        }
        let doc: TantivyDocument = searcher.doc(addr)?;
        if let Some(name) = doc.get_first(engine.fields.name).and_then(|v| v.as_str())
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Words of a snippet around the first match.
const SNIPPET_WORDS: usize = 24;

/// A short piece of the description (else the name) with the words that match
/// marked `<mark>…</mark>`; everything else HTML-escaped, so it is safe to show as
/// HTML.
pub fn snippet(
    analyzer: &mut tantivy::tokenizer::TextAnalyzer,
    words: &[Word],
    item: &Item,
) -> String {
    let text = if item.description.is_empty() {
        &item.name
    } else {
        &item.description
    };
    let mut tokens: Vec<(usize, usize, bool)> = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while let Some(t) = stream.next() {
        let hit = words.iter().any(|w| query::matches(w, &t.text));
        tokens.push((t.offset_from, t.offset_to, hit));
    }
    let first_hit = tokens.iter().position(|t| t.2).unwrap_or(0);
    let from = first_hit.saturating_sub(SNIPPET_WORDS / 3);
    let to = (from + SNIPPET_WORDS).min(tokens.len());
    let Some(&(first, _, _)) = tokens.get(from) else {
        return escape(text);
    };
    let start = if from == 0 { 0 } else { first };
    let end = if to < tokens.len() {
        tokens[to - 1].1
    } else {
        text.len()
    };
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = start;
    for &(a, b, hit) in &tokens[from..to] {
        if !hit {
            continue;
        }
        out.push_str(&escape(&text[at..a]));
        out.push_str("<mark>");
        out.push_str(&escape(&text[a..b]));
        out.push_str("</mark>");
        at = b;
    }
    out.push_str(&escape(&text[at..end]));
    if to < tokens.len() {
        out.push('…');
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Collects every match that passes the filters, with its sort keys.
struct Matches {
    filters: Filters,
}

struct SegmentMatches {
    segment: SegmentOrdinal,
    filters: Filters,
    id: Option<StrColumn>,
    category: Option<StrColumn>,
    price: Column<i64>,
    rating: Column<i64>,
    rating_count: Column<i64>,
    stock: Column<i64>,
    created: Column<i64>,
    found: Vec<Match>,
}

impl Collector for Matches {
    type Fruit = Vec<Match>;
    type Child = SegmentMatches;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentMatches> {
        let fast = reader.fast_fields();
        Ok(SegmentMatches {
            segment,
            filters: self.filters.clone(),
            id: fast.str("id")?,
            category: fast.str("category")?,
            price: fast.i64("price")?,
            rating: fast.i64("rating")?,
            rating_count: fast.i64("rating_count")?,
            stock: fast.i64("stock")?,
            created: fast.i64("created")?,
            found: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Match>>) -> tantivy::Result<Vec<Match>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

fn text_of(column: &Option<StrColumn>, doc: DocId) -> String {
    let mut out = String::new();
    if let Some(column) = column
        && let Some(ord) = column.term_ords(doc).next()
    {
        let _ = column.ord_to_str(ord, &mut out);
    }
    out
}

impl SegmentCollector for SegmentMatches {
    type Fruit = Vec<Match>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let f = &self.filters;
        let price = self.price.first(doc).unwrap_or(0);
        let rating = self.rating.first(doc).unwrap_or(0);
        let rating_count = self.rating_count.first(doc).unwrap_or(0);
        let stock = self.stock.first(doc).unwrap_or(-1);
        if f.min_price.is_some_and(|min| price < min)
            || f.max_price.is_some_and(|max| price > max)
            || (f.in_stock && stock <= 0)
            || f.min_rating
                .is_some_and(|min| rating_count == 0 || rating < min)
        {
            return;
        }
        let category = text_of(&self.category, doc);
        if f.category.as_ref().is_some_and(|c| *c != category) {
            return;
        }
        self.found.push(Match {
            score,
            addr: DocAddress::new(self.segment, doc),
            id: text_of(&self.id, doc),
            category,
            price,
            rating,
            rating_count,
            stock,
            created: self.created.first(doc).unwrap_or(0),
        });
    }

    fn harvest(self) -> Vec<Match> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Document;

    fn doc(
        id: &str,
        sku: &str,
        name: &str,
        description: &str,
        category: &str,
        price: i64,
    ) -> Document {
        Document {
            product_id: id.into(),
            sku: sku.into(),
            name: name.into(),
            description: description.into(),
            category: category.into(),
            price,
            currency: "USD".into(),
            image_url: String::new(),
            attributes: "{}".into(),
            created_ms: price,
            product_version: Some(1),
            stock_level: Some(
                if price > 5_000 {
                    "in_stock"
                } else {
                    "sold_out"
                }
                .into(),
            ),
            rating_count: if price > 3_000 { 3 } else { 0 },
            rating_average: price / 20,
            rating_histogram: "[0,0,0,0,0]".into(),
            changed: 1,
        }
    }

    fn engine(docs: &[Document]) -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Engine::open(dir.path()).expect("index");
        let mut writer = crate::indexer::writer_for(&engine).expect("writer");
        for d in docs {
            crate::indexer::add(&writer, &engine.fields, d).expect("add");
        }
        writer.commit().expect("commit");
        engine.reader.reload().expect("reload");
        (dir, engine)
    }

    fn shop() -> (tempfile::TempDir, Engine) {
        engine(&[
            doc(
                "a",
                "EMP-0001",
                "Wireless Headphones",
                "Over-ear, noise cancelling.",
                "electronics",
                9_900,
            ),
            doc(
                "b",
                "EMP-0002",
                "Headphone Stand",
                "Holds wireless headphones on a desk.",
                "electronics",
                2_900,
            ),
            doc(
                "c",
                "EMP-0003",
                "Desk Lamp",
                "A warm lamp for late reading.",
                "home",
                4_500,
            ),
            doc(
                "d",
                "EMP-0004",
                "Reading Glasses",
                "Light frames for reading lamps.",
                "health",
                1_500,
            ),
            doc(
                "e",
                "EMP-0005",
                "Kettle",
                "Boils water; EMP-0001 compatible.",
                "home",
                3_500,
            ),
        ])
    }

    fn ids(engine: &Engine, text: &str, filters: Filters, sort: Sort) -> Vec<String> {
        run(engine, text, filters, sort, 20, None)
            .found
            .into_iter()
            .map(|f| f.item.id)
            .collect()
    }

    fn run(
        engine: &Engine,
        text: &str,
        filters: Filters,
        sort: Sort,
        limit: usize,
        after: Option<After>,
    ) -> Outcome {
        let parsed = crate::query::parse(&mut crate::index::analyzer(), text);
        search(
            engine,
            &Request {
                parsed,
                filters,
                sort,
                limit,
                after,
            },
        )
        .expect("search")
    }

    #[test]
    fn typos_within_the_rules_still_find_the_product() {
        let (_d, e) = shop();
        assert_eq!(
            ids(&e, "wireles hedphones", Filters::default(), Sort::Relevance)[0],
            "a"
        );
        // 4 letters allow no typo: "lmap" finds nothing.
        assert!(ids(&e, "lmap ", Filters::default(), Sort::Relevance).is_empty());
        assert_eq!(
            ids(&e, "lamp ", Filters::default(), Sort::Relevance)[0],
            "c"
        );
    }

    #[test]
    fn the_last_word_is_a_prefix() {
        let (_d, e) = shop();
        let found = ids(&e, "desk la", Filters::default(), Sort::Relevance);
        assert_eq!(found, ["c"]);
        // With a trailing space it is a whole word, and "la" is none.
        assert!(ids(&e, "desk la ", Filters::default(), Sort::Relevance).is_empty());
    }

    #[test]
    fn name_matches_rank_above_description_matches() {
        let (_d, e) = shop();
        // "headphones" is in a's name and b's description (b's name has "headphone").
        let found = ids(
            &e,
            "wireless headphones ",
            Filters::default(),
            Sort::Relevance,
        );
        assert_eq!(found, ["a", "b"]);
        // "reading" is d's name, c's description.
        assert_eq!(
            ids(&e, "reading ", Filters::default(), Sort::Relevance),
            ["d", "c"]
        );
    }

    #[test]
    fn an_exact_sku_comes_first() {
        let (_d, e) = shop();
        let found = ids(&e, "emp-0001", Filters::default(), Sort::Relevance);
        assert_eq!(found.first().map(String::as_str), Some("a"));
        // The kettle mentions it in its description, below.
        assert!(found.contains(&"e".to_string()));
    }

    #[test]
    fn facets_count_what_the_filters_let_through() {
        let (_d, e) = shop();
        let all = run(&e, "", Filters::default(), Sort::Relevance, 2, None);
        assert_eq!(all.total, 5);
        assert_eq!(all.facets.category.get("home"), Some(&2));
        assert_eq!(all.facets.category.get("electronics"), Some(&2));
        assert_eq!(all.facets.in_stock, 1);
        let bands: Vec<usize> = all.facets.price.iter().map(|b| b.count).collect();
        assert_eq!(
            bands,
            [1, 3, 1, 0, 0],
            "under 25, 25-50, 50-100, 100-200, 200+ dollars"
        );
        // Rated products: c (2.25 stars), e (1.75), a (4.95).
        let rated: Vec<(u8, usize)> = all.facets.rating.iter().map(|b| (b.min, b.count)).collect();
        assert_eq!(rated, [(4, 1), (3, 1), (2, 2), (1, 3)]);
        let home = run(
            &e,
            "",
            Filters {
                category: Some("home".into()),
                max_price: Some(4_000),
                ..Default::default()
            },
            Sort::Relevance,
            20,
            None,
        );
        assert_eq!(home.total, 1);
        assert_eq!(home.facets.category.len(), 1);
        let rated = run(
            &e,
            "",
            Filters {
                min_rating: Some(200),
                ..Default::default()
            },
            Sort::Rating,
            20,
            None,
        );
        let order: Vec<String> = rated.found.into_iter().map(|f| f.item.id).collect();
        assert_eq!(order, ["a", "c"]);
        let buyable = ids(
            &e,
            "",
            Filters {
                in_stock: true,
                ..Default::default()
            },
            Sort::Relevance,
        );
        assert_eq!(buyable, ["a"]);
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let (_d, e) = shop();
        for sort in [
            Sort::Relevance,
            Sort::PriceAsc,
            Sort::PriceDesc,
            Sort::Rating,
            Sort::New,
        ] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = run(&e, "", Filters::default(), sort, 2, after.clone());
                seen.extend(page.found.iter().map(|f| f.item.id.clone()));
                if !page.more {
                    break;
                }
                after = page.found.last().map(|f| f.after.clone());
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 5, "{sort:?}: {seen:?}");
            assert_eq!(seen.len(), 5, "{sort:?}: {seen:?}");
        }
        let cheap_first = ids(&e, "", Filters::default(), Sort::PriceAsc);
        assert_eq!(cheap_first, ["d", "b", "e", "c", "a"]);
    }

    #[test]
    fn snippets_mark_matches_and_escape_the_rest() {
        let mut analyzer = crate::index::analyzer();
        let words = crate::query::parse(&mut analyzer, "wireles").words;
        let item = doc("x", "EMP-9", "Thing", "<b>Bold</b> & wireless.", "home", 1).item();
        assert_eq!(
            snippet(&mut analyzer, &words, &item),
            "&lt;b&gt;Bold&lt;/b&gt; &amp; <mark>wireless</mark>."
        );
    }

    #[test]
    fn suggestions_complete_names() {
        let (_d, e) = shop();
        let parsed = crate::query::parse(&mut crate::index::analyzer(), "head");
        let names = suggest(&e, &parsed).expect("suggest");
        assert_eq!(names.len(), 2);
        assert!(names.contains(&"Wireless Headphones".to_string()));
        assert!(names.contains(&"Headphone Stand".to_string()));
    }
}
