//! A counter and a histogram recorded together per request, with their handles
//! looked up once per set of label values instead of on every request.
//!
//! Through the macros, each record builds a key (its label strings allocated)
//! and finds the series in the recorder's map; on a proxy's hot path that was a
//! measurable share of the work. A [`Meters`] keeps the handles it registered, by
//! label values. Make one per service (the first record of each label set
//! registers the series in that service's scope: in a process hosting several,
//! its `service` label).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use metrics::{Counter, Histogram, Label};

/// Label sets kept at most; past it, records still count, through the macros.
/// Label values come from small fixed sets, so this is a guard, not a limit.
const MOST_SETS: usize = 1024;

/// A counter and a histogram with the same `N` labels.
pub struct Meters<const N: usize> {
    counter: &'static str,
    histogram: &'static str,
    names: [&'static str; N],
    /// By a hash of the label values: the values and their handles.
    handles: RwLock<HashMap<u64, Vec<Handles<N>>>>,
}

struct Handles<const N: usize> {
    values: [Box<str>; N],
    counter: Counter,
    histogram: Histogram,
}

impl<const N: usize> std::fmt::Debug for Meters<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meters")
            .field("counter", &self.counter)
            .field("histogram", &self.histogram)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> Meters<N> {
    /// The counter `counter` and the histogram `histogram`, labelled `names`.
    pub fn new(counter: &'static str, histogram: &'static str, names: [&'static str; N]) -> Self {
        Self {
            counter,
            histogram,
            names,
            handles: RwLock::new(HashMap::new()),
        }
    }

    /// Counts one and records `value` in the series labelled `values`.
    pub fn record(&self, values: [&str; N], value: f64) {
        let hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            values.hash(&mut h);
            h.finish()
        };
        let same = |h: &Handles<N>| h.values.iter().zip(values).all(|(a, b)| **a == *b);
        if let Ok(handles) = self.handles.read()
            && let Some(found) = handles
                .get(&hash)
                .and_then(|set| set.iter().find(|h| same(h)))
        {
            found.counter.increment(1);
            found.histogram.record(value);
            return;
        }
        let labels: Vec<Label> = self
            .names
            .iter()
            .zip(values)
            .map(|(name, value)| Label::new(*name, value.to_string()))
            .collect();
        let counter = metrics::counter!(self.counter, labels.clone());
        let histogram = metrics::histogram!(self.histogram, labels);
        counter.increment(1);
        histogram.record(value);
        if let Ok(mut handles) = self.handles.write() {
            let kept: usize = handles.values().map(Vec::len).sum();
            let set = handles.entry(hash).or_default();
            if kept < MOST_SETS && !set.iter().any(same) {
                set.push(Handles {
                    values: values.map(Box::from),
                    counter,
                    histogram,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_set_is_its_own_series_and_kept_once() {
        let meters = Meters::new("t_total", "t_seconds", ["route", "status"]);
        meters.record(["/a", "200"], 0.1);
        meters.record(["/a", "200"], 0.2);
        meters.record(["/a", "500"], 0.3);
        meters.record(["/b", "200"], 0.4);
        let handles = meters.handles.read().expect("handles");
        let mut kept: Vec<String> = handles
            .values()
            .flatten()
            .map(|h| h.values.join(" "))
            .collect();
        kept.sort();
        assert_eq!(kept, ["/a 200", "/a 500", "/b 200"]);
    }
}
