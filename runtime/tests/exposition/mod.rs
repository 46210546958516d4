//! A small, independent parser of the Prometheus / OpenMetrics text exposition (not
//! `prometheus-client`'s): families from `# HELP` / `# TYPE` / `# UNIT`, samples with labels.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// One metric family's metadata.
#[derive(Debug, Default, Clone)]
pub struct Family {
    /// Whether a `# HELP` line named it.
    pub help: bool,
    /// Its `# TYPE` (counter, gauge, histogram, …), when given.
    pub kind: Option<String>,
}

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Metric name as written (with `_total`, `_bucket`, … suffixes).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Default)]
pub struct Scrape {
    /// Families by name.
    pub families: BTreeMap<String, Family>,
    /// Samples, in order.
    pub samples: Vec<Sample>,
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(labels);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return Err(format!("label {name}: value not quoted in {{{s}}}"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => return Err(format!("dangling escape in {{{s}}}")),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("unterminated value in {{{s}}}")),
            }
        }
        labels.insert(name.trim().to_string(), value);
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|e| format!("value {v:?}: {e}")),
    }
}

/// Parses a scrape; an error names the offending line.
pub fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (what, name, rest) = (parts.next(), parts.next(), parts.next());
            let (Some(what), Some(name)) = (what, name) else { continue };
            let f = scrape.families.entry(name.to_string()).or_default();
            match what {
                "HELP" => f.help = true,
                "TYPE" => f.kind = rest.map(str::to_string),
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue; // `# EOF`
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| format!("no value: {line}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, parse_labels(l.strip_suffix('}').ok_or_else(|| format!("labels: {line}"))?)?),
            None => (series, BTreeMap::new()),
        };
        scrape.samples.push(Sample { name: name.to_string(), labels, value: parse_value(value)? });
    }
    Ok(scrape)
}

impl Scrape {
    /// The family a sample name belongs to (itself, or without a counter / histogram suffix).
    pub fn family_of(&self, sample: &str) -> Option<&str> {
        if let Some((name, _)) = self.families.get_key_value(sample) {
            return Some(name);
        }
        ["_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .filter_map(|s| sample.strip_suffix(s))
            .find_map(|base| self.families.get_key_value(base).map(|(n, _)| n.as_str()))
    }

    /// Samples named `name` whose labels include every `(label, value)` of `want`.
    pub fn select<'a>(&'a self, name: &'a str, want: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && want.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v)))
    }

    /// Sum of the selected samples.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.select(name, want).map(|s| s.value).sum()
    }

    /// The one selected sample's value; panics when there is not exactly one.
    pub fn one(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self.select(name, want).collect();
        assert_eq!(found.len(), 1, "exactly one {name} {want:?}, got {found:?}");
        found[0].value
    }

    /// Every metric name (family or sample) in the scrape.
    pub fn knows(&self, name: &str) -> bool {
        self.families.contains_key(name) || self.samples.iter().any(|s| s.name == name)
    }
}

#[test]
fn the_parser_reads_labels_escapes_and_special_values() {
    let text = "# HELP a_seconds A.\n# TYPE a_seconds histogram\n\
                a_seconds_bucket{le=\"+Inf\",node=\"x \\\"y\\\"\"} 3\na_seconds_sum 1.5\n# EOF\n";
    let s = parse(text).expect("parses");
    assert_eq!(s.samples.len(), 2);
    assert_eq!(s.samples[0].labels["node"], "x \"y\"");
    assert_eq!(s.samples[0].labels["le"], "+Inf");
    assert_eq!(s.family_of("a_seconds_sum"), Some("a_seconds"));
    assert!(parse("a{b=c} 1").is_err(), "unquoted label value");
}
