//! The `topN` and `deduplicate` blocks — Flink's `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)`
//! patterns, on event time — and their validation.
//!
//! ```yaml
//! topN: {n: 10, orderBy: bid.price, descending: true, window: {size: 10s}}      # top 10 per key and window
//! topN: {n: 3, orderBy: price, window: {size: 10s, slide: 2s}, allowedLateness: 5s}
//! deduplicate: {keep: first, ttl: 10m}                                          # first record per key per 10 min
//! deduplicate: {keep: last, ttl: 10s, lateRecords: deadLetter}
//! ```

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_errors::Errors;
use super::window::{LateRecords, WindowKind, aligned_kind, millis, validate_aligned};

/// The N records with the greatest (`descending`) or smallest `orderBy` value per key and
/// event-time window, emitted when the watermark passes the window's end, each with its rank.
///
/// Each row is `{key, start, end, rank, ts, value}` (`rank` 1..N, `ts` and `value` the record's)
/// at event time `end - 1`, the rows of a window in rank order. Ties of `orderBy` go to the
/// earlier event time, then to the smaller encoded value, so the ranking depends only on the
/// records, never on their arrival order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopNSpec {
    /// How many records each key and window emits (at most), ≥ 1.
    pub n: u32,
    /// Dotted path of the ranked field inside the value (a number or a string; numbers rank
    /// below strings); the value itself when empty.
    pub order_by: String,
    /// Rank the greatest value first (Flink's `ORDER BY … DESC`); default: the smallest first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub descending: bool,
    /// Keep also the records tied with the Nth on `orderBy` (SQL's `RANK() <= N`): tied rows
    /// share a rank, and a window may emit more than N rows. Default: exactly N
    /// (`ROW_NUMBER() <= N`), ties ranked by event time, then encoded value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_ties: bool,
    /// The event-time windows the ranking is per.
    pub window: RankWindow,
    /// How long a window stays open for late records after it fired (default 0): a record
    /// that enters a fired window's top N makes it emit its updated rows at once.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Duration::is_zero")]
    #[schemars(with = "Option<String>")]
    pub allowed_lateness: Duration,
    /// What happens to a record later than `allowedLateness`: `drop` (counted) or `deadLetter`
    /// (counted, and sent unchanged along the node's `output: late` edges).
    #[serde(default)]
    pub late_records: LateRecords,
}

/// Tumbling (`size`) or sliding (`size` and `slide`) event-time windows, aligned to the epoch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RankWindow {
    /// Window length, e.g. `10s`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub size: Duration,
    /// Sliding windows: one of `size` starts every `slide` (which must divide `size`).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub slide: Option<Duration>,
}

/// Keeps one record per key and time-to-live span: the first or the last by event time.
///
/// A key's span opens at its first record (by event time) and lasts `ttl`: `[t, t + ttl)`; the
/// records in it are duplicates, and the next record at or after its end opens the next span.
/// `first` emits a span's first record, unchanged, as soon as the watermark reaches its event
/// time (only then is it known that no earlier record will come); `last` emits a span's last
/// record when the watermark reaches the span's end − 1, with that event time (its own is in
/// the value, when the value carries it). Ties of event time go to the smaller (`first`) or
/// greater (`last`) encoded value. A record at or behind the watermark is late.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeduplicateSpec {
    /// Which record of a span to keep.
    pub keep: Keep,
    /// Length of a key's span, e.g. `10m` (≥ 1ms); a key's state expires with it.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ttl: Duration,
    /// What happens to a late record: `drop` (counted) or `deadLetter` (counted, and sent
    /// unchanged along the node's `output: late` edges).
    #[serde(default)]
    pub late_records: LateRecords,
}

/// Which record of a span [`DeduplicateSpec`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Keep {
    /// The earliest record (Flink's `ORDER BY rowtime ASC … rownum = 1`).
    First,
    /// The latest record (Flink's `ORDER BY rowtime DESC … rownum = 1`).
    Last,
}

impl TopNSpec {
    /// The windows as [`WindowKind::Tumbling`] or [`WindowKind::Sliding`]; `None` when the
    /// spec does not validate.
    pub fn kind(&self) -> Option<WindowKind> {
        aligned_kind(self.window.size, self.window.slide)
    }

    /// Allowed lateness in milliseconds.
    pub fn lateness_ms(&self) -> i64 {
        millis(self.allowed_lateness)
    }
}

impl DeduplicateSpec {
    /// The span length in milliseconds.
    pub fn ttl_ms(&self) -> i64 {
        millis(self.ttl)
    }
}

/// Checks a `topN` block at path `at`; each problem once.
pub(crate) fn validate_top_n(t: &TopNSpec, at: &str, errs: &mut Errors) {
    if t.n < 1 {
        errs.add(format!("{at}.n"), "must be ≥ 1");
    }
    validate_aligned(t.window.size, t.window.slide, &format!("{at}.window"), errs);
}

/// Checks a `deduplicate` block at path `at`.
pub(crate) fn validate_deduplicate(d: &DeduplicateSpec, at: &str, errs: &mut Errors) {
    if d.ttl < Duration::from_millis(1) {
        errs.add(format!("{at}.ttl"), "must be ≥ 1ms");
    }
}

#[cfg(test)]
mod tests {
    use super::Keep;
    use crate::JobConfig;
    use crate::contract::window::WindowKind;

    fn doc(block: &str) -> String {
        format!(
            "name: r\npipeline:\n  nodes:\n    - {{id: src, generator: {{count: 10}}}}\n    - {{id: op, {block}}}\n    - {{id: out, discard: {{}}}}\n  edges:\n    - {{from: src, to: op, partition: hash}}\n    - {{from: op, to: out}}\n"
        )
    }

    fn error_of(block: &str) -> String {
        let e = JobConfig::from_yaml(&doc(block)).expect_err("must be rejected");
        assert_eq!(e.errors.len(), 1, "said once: {e}");
        e.to_string()
    }

    #[test]
    fn top_n_and_deduplicate_parse_and_round_trip() {
        let job = JobConfig::from_yaml(&doc(
            "topN: {n: 10, orderBy: bid.price, descending: true, withTies: true, window: {size: 10s, slide: 2s}, allowedLateness: 1s}",
        ))
        .expect("valid");
        let t = job.pipeline.nodes[1].top_n.clone().expect("topN");
        assert_eq!(t.kind(), Some(WindowKind::Sliding { size: 10_000, slide: 2_000 }));
        assert_eq!((t.n, t.order_by.as_str(), t.descending, t.with_ties), (10, "bid.price", true, true));
        assert_eq!(t.lateness_ms(), 1000);
        let again = JobConfig::from_yaml(&job.to_yaml()).expect("round trip");
        assert_eq!(again.pipeline.nodes[1].top_n, Some(t));

        let job = JobConfig::from_yaml(&doc("deduplicate: {keep: last, ttl: 10m}")).expect("valid");
        let d = job.pipeline.nodes[1].deduplicate.clone().expect("deduplicate");
        assert_eq!((d.keep, d.ttl_ms()), (Keep::Last, 600_000));
        let again = JobConfig::from_yaml(&job.to_yaml()).expect("round trip");
        assert_eq!(again.pipeline.nodes[1].deduplicate, Some(d));
    }

    #[test]
    fn bad_blocks_name_the_field_once() {
        let at = "pipeline.nodes[1]";
        let cases = [
            ("topN: {n: 0, orderBy: p, window: {size: 1s}}", format!("{at}.topN.n: must be ≥ 1")),
            ("topN: {n: 1, orderBy: p, window: {size: 0s}}", format!("{at}.topN.window.size: must be ≥ 1ms")),
            (
                "topN: {n: 1, orderBy: p, window: {size: 10s, slide: 3s}}",
                format!("{at}.topN.window.slide: must divide size (10s) into whole windows, got 3s"),
            ),
            (
                "topN: {n: 1, orderBy: p, window: {size: 1s, slide: 2s}}",
                format!("{at}.topN.window.slide: must be ≤ size (1s), got 2s"),
            ),
            ("deduplicate: {keep: first, ttl: 0s}", format!("{at}.deduplicate.ttl: must be ≥ 1ms")),
            (
                "topN: {n: 1, orderBy: p, window: {size: 1s}, lateRecords: deadLetter}",
                format!("{at}.topN.lateRecords: deadLetter needs an edge from \"op\" with output: late"),
            ),
        ];
        for (block, want) in cases {
            assert_eq!(error_of(block), want, "{block}");
        }
        let e = error_of("deduplicate: {keep: middle, ttl: 1s}");
        assert!(e.starts_with(&format!("{at}.deduplicate.keep: unknown variant `middle`")), "{e}");
        let e = error_of("topN: {n: 1, window: {size: 1s}}");
        assert!(e.contains("missing field `orderBy`"), "{e}");
    }

    #[test]
    fn both_need_hash_edges_and_may_dead_letter() {
        let forward = doc("deduplicate: {keep: first, ttl: 1s}").replace("to: op, partition: hash", "to: op");
        let e = JobConfig::from_yaml(&forward).expect_err("keyed");
        assert!(e.to_string().contains("is a keyed deduplicate and needs partition: hash"), "{e}");
        let late = doc("deduplicate: {keep: first, ttl: 1s, lateRecords: deadLetter}")
            .replace("    - {from: op, to: out}\n", "    - {from: op, to: out}\n    - {from: op, to: late}\n");
        let late = late
            .replace("    - {id: out, discard: {}}\n", "    - {id: out, discard: {}}\n    - {id: late, discard: {}}\n");
        let late = late.replace("{from: op, to: late}", "{from: op, to: late, output: late}");
        JobConfig::from_yaml(&late).expect("a dead-lettering deduplicate with its late edge");
    }
}
