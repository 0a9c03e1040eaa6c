//! From what a shopper typed to a tantivy query, never through tantivy's query
//! language: the text is cut into words by the index's own analyzer, and each word
//! becomes term queries, so quotes, colons, brackets and `AND`/`OR` are just text.
//!
//! The rules follow Meilisearch's defaults:
//! - typos: none for words under 5 characters, 1 from 5, 2 from 9 ([`typos_allowed`]);
//! - the last word also matches as a prefix (search-as-you-type), unless the text
//!   ends in a space;
//! - every word must match (name or description); name matches rank above
//!   description matches, exact words above words matched with a typo;
//! - at most [`MAX_WORDS`] words count;
//! - a word that is a SKU finds that product first.

use tantivy::Term;
use tantivy::query::{BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::tokenizer::TextAnalyzer;

use crate::index::Fields;

/// Words of a query that count; the rest is ignored (Meilisearch: 10).
pub const MAX_WORDS: usize = 10;

/// Boosts: an exact word in the name ranks highest, a typo in the description lowest.
const NAME_EXACT: f32 = 4.0;
const NAME_TYPO: f32 = 2.0;
const BODY_EXACT: f32 = 1.0;
const BODY_TYPO: f32 = 0.5;
const SKU: f32 = 100.0;

/// One word of a query, as the index's analyzer made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Matches any word that starts with it (within its typos).
    pub prefix: bool,
    pub typos: u8,
}

/// What a query's text means.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub words: Vec<Word>,
    /// The text as a SKU, when it reads as one.
    pub sku: Option<String>,
}

impl Parsed {
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.sku.is_none()
    }
}

/// Typos a word of `chars` characters may have.
pub fn typos_allowed(chars: usize) -> u8 {
    match chars {
        0..5 => 0,
        5..9 => 1,
        _ => 2,
    }
}

/// Cuts `text` into words with `analyzer` (the one the index uses).
pub fn parse(analyzer: &mut TextAnalyzer, text: &str) -> Parsed {
    let mut words: Vec<Word> = Vec::new();
    let mut truncated = false;
    let mut stream = analyzer.token_stream(text);
    while let Some(token) = stream.next() {
        if words.len() == MAX_WORDS {
            truncated = true;
            break;
        }
        words.push(Word {
            typos: typos_allowed(token.text.chars().count()),
            text: token.text.clone(),
            prefix: false,
        });
    }
    let ends_in_word = text.chars().last().is_some_and(|c| c.is_alphanumeric());
    if ends_in_word
        && !truncated
        && let Some(last) = words.last_mut()
    {
        last.prefix = true;
    }
    let sku = emporium_contracts::sku::Sku::parse(text.trim())
        .ok()
        .map(|s| s.as_str().to_string());
    Parsed { words, sku }
}

/// The query for `parsed` over the name and description; with `name_only`, over
/// the name alone (suggestions).
pub fn build(fields: &Fields, parsed: &Parsed, name_only: bool) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    if !parsed.words.is_empty() {
        let words: Vec<(Occur, Box<dyn Query>)> = parsed
            .words
            .iter()
            .map(|w| (Occur::Must, word_query(fields, w, name_only)))
            .collect();
        clauses.push((Occur::Should, Box::new(BooleanQuery::new(words))));
    }
    if let Some(sku) = &parsed.sku {
        let term = Term::from_field_text(fields.sku, sku);
        let exact = TermQuery::new(term, IndexRecordOption::Basic);
        clauses.push((
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(exact), SKU)),
        ));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// One word: exact or within its typos, as a prefix when it is the last, in the
/// name or the description.
fn word_query(fields: &Fields, word: &Word, name_only: bool) -> Box<dyn Query> {
    let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    let targets: &[(tantivy::schema::Field, f32, f32)] = if name_only {
        &[(fields.name, NAME_EXACT, NAME_TYPO)]
    } else {
        &[
            (fields.name, NAME_EXACT, NAME_TYPO),
            (fields.body, BODY_EXACT, BODY_TYPO),
        ]
    };
    for &(field, exact_boost, typo_boost) in targets {
        let term = Term::from_field_text(field, &word.text);
        let exact = TermQuery::new(term.clone(), IndexRecordOption::WithFreqs);
        any.push((
            Occur::Should,
            Box::new(BoostQuery::new(Box::new(exact), exact_boost)),
        ));
        let loose = if word.prefix {
            Some(FuzzyTermQuery::new_prefix(term, word.typos, true))
        } else if word.typos > 0 {
            Some(FuzzyTermQuery::new(term, word.typos, true))
        } else {
            None
        };
        if let Some(loose) = loose {
            any.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(loose), typo_boost)),
            ));
        }
    }
    Box::new(BooleanQuery::new(any))
}

/// Whether `token` (a word of a document, analysed) is a match of `word` under the
/// same rules as the query: for highlighting.
pub fn matches(word: &Word, token: &str) -> bool {
    let max = usize::from(word.typos);
    if word.prefix {
        // Some prefix of the token within the typos: compare against every prefix
        // length the edit distance could reach.
        let n = word.text.chars().count();
        let chars: Vec<char> = token.chars().collect();
        (n.saturating_sub(max)..=(n + max).min(chars.len()))
            .any(|len| distance(&word.text, &chars[..len].iter().collect::<String>(), max) <= max)
    } else {
        distance(&word.text, token, max) <= max
    }
}

/// Optimal string alignment distance (a transposition costs one, as in tantivy's
/// automata), or `max + 1` as soon as it must exceed `max`.
pub fn distance(a: &str, b: &str, max: usize) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let width = b.len() + 1;
    let mut rows = vec![vec![0usize; width]; a.len() + 1];
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        rows[i][0] = i;
        let mut best = rows[i][0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
            best = best.min(d);
        }
        if best > max {
            return max + 1;
        }
    }
    rows[a.len()][b.len()].min(max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzer() -> TextAnalyzer {
        crate::index::analyzer()
    }

    fn words(text: &str) -> Vec<(String, bool, u8)> {
        parse(&mut analyzer(), text)
            .words
            .into_iter()
            .map(|w| (w.text, w.prefix, w.typos))
            .collect()
    }

    #[test]
    fn typos_grow_with_the_word() {
        assert_eq!(typos_allowed(4), 0);
        assert_eq!(typos_allowed(5), 1);
        assert_eq!(typos_allowed(8), 1);
        assert_eq!(typos_allowed(9), 2);
    }

    #[test]
    fn words_are_lowercased_folded_and_the_last_is_a_prefix() {
        assert_eq!(
            words("Wireles Hédphones"),
            vec![("wireles".into(), false, 1), ("hedphones".into(), true, 2)]
        );
        // A trailing space: the last word is complete.
        assert_eq!(words("lamp "), vec![("lamp".into(), false, 0)]);
    }

    #[test]
    fn query_syntax_is_plain_text() {
        let w = words(r#"title:"foo" AND (bar OR [baz]) -qux ^2 *"#);
        let texts: Vec<&str> = w.iter().map(|(t, _, _)| t.as_str()).collect();
        assert_eq!(
            texts,
            ["title", "foo", "and", "bar", "or", "baz", "qux", "2"]
        );
        assert!(parse(&mut analyzer(), "\"\":()[]{}!").is_empty());
    }

    #[test]
    fn only_ten_words_count() {
        let long = "word ".repeat(2_000);
        assert_eq!(words(&long).len(), MAX_WORDS);
    }

    #[test]
    fn a_sku_is_recognised() {
        let parsed = parse(&mut analyzer(), " emp-0042 ");
        assert_eq!(parsed.sku.as_deref(), Some("EMP-0042"));
        assert_eq!(parse(&mut analyzer(), "desk lamp").sku, None);
    }

    #[test]
    fn distance_counts_edits_and_transpositions() {
        assert_eq!(distance("wireles", "wireless", 2), 1);
        assert_eq!(distance("hedphones", "headphones", 2), 1);
        assert_eq!(distance("lmap", "lamp", 2), 1);
        assert_eq!(distance("kettle", "bottle", 1), 2);
        assert_eq!(distance("abc", "abcdef", 1), 2);
    }

    #[test]
    fn highlighting_follows_the_query_rules() {
        let typo = Word {
            text: "wireles".into(),
            prefix: false,
            typos: 1,
        };
        assert!(matches(&typo, "wireless"));
        assert!(!matches(&typo, "wire"));
        let prefix = Word {
            text: "head".into(),
            prefix: true,
            typos: 0,
        };
        assert!(matches(&prefix, "headphones"));
        assert!(!matches(&prefix, "overhead"));
        let short = Word {
            text: "cat".into(),
            prefix: false,
            typos: 0,
        };
        assert!(!matches(&short, "car"));
    }
}
