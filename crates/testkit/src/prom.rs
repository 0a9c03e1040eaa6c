//! A strict reader of the Prometheus text exposition format (version 0.0.4), for
//! tests that scrape `/metrics`: it refuses what Prometheus would refuse (bad
//! names, bad label syntax, unparsable values, samples of a family typed
//! differently, histograms whose buckets are not cumulative or lack `+Inf`).

use std::collections::{BTreeMap, HashMap};

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Family name → type (`counter`, `gauge`, `histogram`, …).
    pub types: HashMap<String, String>,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    is_name(name) && !name.contains(':')
}

fn value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t => t.parse().map_err(|_| format!("bad value {t:?}")),
    }
}

/// The family a sample belongs to (a histogram's `_bucket` → the histogram).
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
        {
            return base;
        }
    }
    name
}

/// Parses a whole scrape.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name) {
                        return Err(at("bad metric name".into()));
                    }
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(at(format!("bad type {kind}")));
                    }
                    if scrape
                        .samples
                        .iter()
                        .any(|s| family(&s.name, &scrape.types) == name)
                    {
                        return Err(at("TYPE after samples of its family".into()));
                    }
                    if scrape.types.insert(name.into(), kind.into()).is_some() {
                        return Err(at("second TYPE for a family".into()));
                    }
                }
                (Some("HELP"), Some(name), _) if !is_name(name) => {
                    return Err(at("bad metric name".into()));
                }
                _ => {}
            }
            continue;
        }
        let sample = sample(line).map_err(at)?;
        scrape.samples.push(sample);
    }
    check_families(&scrape)?;
    Ok(scrape)
}

fn sample(line: &str) -> Result<Sample, String> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return Err("no value".into()),
    };
    if !is_name(name) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let end;
        loop {
            // label name
            let start = chars.peek().map(|(i, _)| *i).ok_or("unclosed labels")?;
            if body[start..].starts_with('}') {
                end = start + 1;
                break;
            }
            let eq = body[start..].find('=').ok_or("label without =")? + start;
            let key = body[start..eq].trim_start_matches(',').trim();
            if !is_label_name(key) {
                return Err(format!("bad label name {key:?}"));
            }
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut val = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('n') => val.push('\n'),
                        Some('\\') => val.push('\\'),
                        Some('"') => val.push('"'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some('"') => break,
                    Some(c) => val.push(c),
                    None => return Err("unclosed label value".into()),
                }
            }
            if labels.insert(key.to_string(), val).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.peek().map(|(_, c)| *c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => return Err("expected , or } after a label".into()),
            }
        }
        &body[end..]
    } else {
        rest
    };
    let mut parts = rest.split_whitespace();
    let v = value(parts.next().ok_or("no value")?)?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value: v,
    })
}

/// A series' labels but `le`, sorted.
type Labels = Vec<(String, String)>;

/// Counters are ≥ 0 (and named `_total`); histogram buckets are cumulative and end
/// with `+Inf` equal to `_count`.
fn check_families(scrape: &Scrape) -> Result<(), String> {
    for (name, kind) in &scrape.types {
        match kind.as_str() {
            "counter" => {
                if !name.ends_with("_total") {
                    return Err(format!("counter {name} is not named _total"));
                }
                if let Some(s) = scrape
                    .matching(name, &[])
                    .find(|s| s.value < 0.0 || s.value.is_nan())
                {
                    return Err(format!("counter {name} is negative: {s:?}"));
                }
            }
            "histogram" => {
                let bucket = format!("{name}_bucket");
                let count = format!("{name}_count");
                let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
                for s in scrape.matching(&bucket, &[]) {
                    let le = s.labels.get("le").ok_or(format!("{bucket} without le"))?;
                    let le = value(le)?;
                    let key: Vec<_> = s
                        .labels
                        .iter()
                        .filter(|(k, _)| *k != "le")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    series.entry(key).or_default().push((le, s.value));
                }
                for (key, mut buckets) in series {
                    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                    if !buckets.windows(2).all(|w| w[0].1 <= w[1].1) {
                        return Err(format!("{name}{key:?}: buckets not cumulative"));
                    }
                    let inf = buckets
                        .last()
                        .filter(|(le, _)| le.is_infinite())
                        .ok_or(format!("{name}{key:?}: no +Inf bucket"))?
                        .1;
                    let labels: Vec<(&str, &str)> =
                        key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    let total = scrape.sum(&count, &labels);
                    if (total - inf).abs() > f64::EPSILON {
                        return Err(format!("{name}{key:?}: +Inf bucket {inf} != count {total}"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_text_parses_and_bad_text_is_refused() {
        let good = "# HELP a_total Things.\n# TYPE a_total counter\n\
                    a_total{route=\"/x/{id}\",status=\"200\"} 3\n\
                    # TYPE h histogram\n\
                    h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n\
                    g{q=\"a \\\"quoted\\\" \\\\ value\"} NaN\n";
        let s = parse(good).expect("valid");
        assert_eq!(s.sum("a_total", &[("status", "200")]), 3.0);
        assert_eq!(
            s.matching("g", &[]).next().map(|x| x.labels["q"].clone()),
            Some("a \"quoted\" \\ value".into())
        );
        for bad in [
            "1abc 3\n",
            "a{b=c} 1\n",
            "a{b=\"c\"} one\n",
            "a{b=\"c\",b=\"d\"} 1\n",
            "# TYPE x counter\nx 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
