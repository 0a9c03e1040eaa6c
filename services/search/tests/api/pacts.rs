//! search honours what its consumers rely on: every pact naming it
//! (`crates/contracts/pacts/*-search.json`), replayed against a real instance
//! built from a real catalog, inventory and reviews.

use std::collections::BTreeMap;

use emporium_testkit::eventually;
use emporium_testkit::pact::{Substitutions, verify};

use super::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_the_pacts_of_its_consumers() {
    let w = world().await;
    let w = &w;
    let state = |given: String, params: BTreeMap<String, String>| async move {
        let subs: Substitutions = match given.as_str() {
            "products are indexed" => {
                // A word of the newest product's name (the seed's names end in a
                // colour): the example query stands for it.
                let word = eventually("search has indexed the catalog", || async {
                    let page = w.find("sort=new&limit=1").await;
                    let name = page["items"][0]["name"].as_str()?.to_string();
                    name.split_whitespace()
                        .last()
                        .map(|last| last.trim_matches(',').to_lowercase())
                })
                .await;
                // The first three letters of that word, for names starting so.
                let prefix: String = word.chars().take(3).collect();
                let mut subs = vec![("q", word), ("prefix", prefix)];
                subs.retain(|(name, _)| params.contains_key(*name));
                subs
            }
            // Letters no product's words have, at any edit distance search forgives.
            "no product matches a query" => vec![("q", "qqxzvwj".to_string())],
            other => panic!("search knows no provider state `{other}`"),
        };
        subs
    };
    verify("search", &w.search().url, state).await;
}
