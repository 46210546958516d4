//! The `join` node: an inner join of two keyed inputs on their key, in one of three event-time
//! forms (as Flink's DataStream joins): a window join, an interval join, or a regular join whose
//! state lives a time-to-live of event time.
//!
//! ```yaml
//! - id: persons-auctions
//!   join:
//!     left: persons            # the upstream node whose records are the left side
//!     right: auctions          # … and the right side (both edges partition: hash)
//!     window: {size: 10s}      # or interval: {lower: 5s, upper: 10s}, or ttl: 1h
//! ```
//!
//! Each matching pair is emitted as `{key, left: <left value>, right: <right value>}` (a window
//! join adds the window's `start` and `end`).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_errors::Errors;
use super::window::LateRecords;

/// An inner join of the node's two inputs on their key; set exactly one of `window`,
/// `interval` and `ttl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinSpec {
    /// Id of the upstream node whose records are the left side (one of the node's two inputs).
    pub left: String,
    /// Id of the upstream node whose records are the right side (the other input).
    pub right: String,
    /// Window join: a left and a right record of one key meet when they fall into the same
    /// tumbling event-time window; the pairs are emitted when the watermark passes its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<JoinWindowSpec>,
    /// Interval join: a right record meets each left record of its key with
    /// `left.ts - lower <= right.ts <= left.ts + upper`, emitted as soon as both are there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<JoinIntervalSpec>,
    /// Regular join: each record is kept for `ttl` of event time after its own; a left and a
    /// right record of one key whose times are at most `ttl` apart meet, emitted as soon as
    /// both are there.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub ttl: Option<Duration>,
    /// What happens to a record at or behind the watermark (a window join: whose window fired):
    /// `drop` (counted) or `deadLetter` (counted, and sent along the node's `output: late`
    /// edges).
    #[serde(default)]
    pub late_records: LateRecords,
}

/// The tumbling windows of a window join.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinWindowSpec {
    /// Window length, e.g. `10s`: windows `[k·size, (k+1)·size)`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub size: Duration,
}

/// The bounds of an interval join, relative to the left record's time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinIntervalSpec {
    /// How far before the left record a right record may be (default 0).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub lower: Duration,
    /// How far after the left record a right record may be (default 0).
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub upper: Duration,
}

/// Which join a valid [`JoinSpec`] is, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinKind {
    /// Pairs in the same window `[k·size, (k+1)·size)`.
    Window {
        /// Window length (≥ 1).
        size: i64,
    },
    /// Pairs with `left.ts - lower <= right.ts <= left.ts + upper`; a regular join with a
    /// time-to-live is the interval `[-ttl, +ttl]`.
    Interval {
        /// How far before the left record a right record may be.
        lower: i64,
        /// How far after.
        upper: i64,
    },
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128 / 4) as i64
}

impl JoinSpec {
    /// The join's form; `None` when the spec does not [validate](validate).
    pub fn kind(&self) -> Option<JoinKind> {
        match (&self.window, &self.interval, self.ttl) {
            (Some(w), None, None) if millis(w.size) >= 1 => Some(JoinKind::Window { size: millis(w.size) }),
            (None, Some(i), None) => Some(JoinKind::Interval { lower: millis(i.lower), upper: millis(i.upper) }),
            (None, None, Some(ttl)) => Some(JoinKind::Interval { lower: millis(ttl), upper: millis(ttl) }),
            _ => None,
        }
    }

    /// The input index of an edge from `upstream`: 1 for the right side, 0 otherwise.
    pub fn input_of(&self, upstream: &str) -> usize {
        usize::from(upstream == self.right)
    }
}

/// Checks a `join` block at path `at` on its own (the graph checks its inputs).
pub(crate) fn validate(j: &JoinSpec, at: &str, errs: &mut Errors) {
    let set = [j.window.is_some(), j.interval.is_some(), j.ttl.is_some()].iter().filter(|s| **s).count();
    if set != 1 {
        errs.add(
            at.to_string(),
            "set exactly one of window (window join), interval (interval join), ttl (regular join)",
        );
    }
    if let Some(w) = &j.window
        && w.size < Duration::from_millis(1)
    {
        errs.add(format!("{at}.window.size"), "must be ≥ 1ms");
    }
    if j.left.is_empty() {
        errs.add(format!("{at}.left"), "must name the upstream node of the left side");
    }
    if j.right.is_empty() {
        errs.add(format!("{at}.right"), "must name the upstream node of the right side");
    } else if j.left == j.right {
        errs.add(format!("{at}.right"), format!("must differ from left ({:?})", j.left));
    }
}

/// Checks that `left` and `right` of the join of node `id` (at path `at`) are exactly the ids of
/// its input edges' upstream nodes, `inputs`.
pub(crate) fn validate_inputs(j: &JoinSpec, id: &str, at: &str, inputs: &[&str], errs: &mut Errors) {
    if inputs.len() != 2 {
        errs.add(
            at.to_string(),
            format!("join {id:?} needs exactly two input edges (from left and right), has {}", inputs.len()),
        );
        return;
    }
    for (field, name) in [("left", &j.left), ("right", &j.right)] {
        if !name.is_empty() && !inputs.contains(&name.as_str()) {
            errs.add(
                format!("{at}.join.{field}"),
                format!("{name:?} has no edge into {id:?} (its inputs come from {:?} and {:?})", inputs[0], inputs[1]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JoinKind;
    use crate::JobConfig;

    fn doc(block: &str, edges: &str) -> String {
        format!(
            "name: j\npipeline:\n  nodes:\n    - {{id: a, generator: {{count: 10}}}}\n    - {{id: b, generator: {{count: 10}}}}\n    - {{id: j, join: {block}}}\n    - {{id: out, discard: {{}}}}\n  edges:\n{edges}    - {{from: j, to: out}}\n"
        )
    }

    const EDGES: &str = "    - {from: a, to: j, partition: hash}\n    - {from: b, to: j, partition: hash}\n";

    fn error_of(block: &str, edges: &str) -> String {
        JobConfig::from_yaml(&doc(block, edges)).expect_err("must be rejected").to_string()
    }

    #[test]
    fn the_three_forms_parse_and_round_trip() {
        for (block, kind) in [
            ("{left: a, right: b, window: {size: 10s}}", JoinKind::Window { size: 10_000 }),
            ("{left: a, right: b, interval: {lower: 1s, upper: 2s}}", JoinKind::Interval { lower: 1000, upper: 2000 }),
            ("{left: b, right: a, ttl: 1m}", JoinKind::Interval { lower: 60_000, upper: 60_000 }),
        ] {
            let job = JobConfig::from_yaml(&doc(block, EDGES)).unwrap_or_else(|e| panic!("{block}: {e}"));
            let j = job.pipeline.nodes[2].join.clone().expect("join");
            assert_eq!(j.kind(), Some(kind), "{block}");
            let again = JobConfig::from_yaml(&job.to_yaml()).expect("round trip");
            assert_eq!(again.pipeline.nodes[2].join, Some(j));
        }
    }

    #[test]
    fn bad_joins_name_the_field() {
        let at = "pipeline.nodes[2]";
        let cases = [
            (
                "{left: a, right: b}",
                EDGES,
                format!(
                    "{at}.join: set exactly one of window (window join), interval (interval join), ttl (regular join)"
                ),
            ),
            ("{left: a, right: b, window: {size: 0s}}", EDGES, format!("{at}.join.window.size: must be ≥ 1ms")),
            ("{left: a, right: a, ttl: 1s}", EDGES, format!("{at}.join.right: must differ from left (\"a\")")),
            (
                "{left: a, right: c, ttl: 1s}",
                EDGES,
                format!("{at}.join.right: \"c\" has no edge into \"j\" (its inputs come from \"a\" and \"b\")"),
            ),
            (
                "{left: a, right: b, ttl: 1s}",
                "    - {from: a, to: j, partition: hash}\n",
                format!("{at}: join \"j\" needs exactly two input edges (from left and right), has 1"),
            ),
            (
                "{left: a, right: b, ttl: 1s}",
                "    - {from: a, to: j, partition: hash}\n    - {from: b, to: j}\n",
                "pipeline.edges[1].partition: \"j\" is a keyed join and needs partition: hash".to_string(),
            ),
            (
                "{left: a, right: b, ttl: 1s, lateRecords: deadLetter}",
                EDGES,
                format!("{at}.join.lateRecords: deadLetter needs an edge from \"j\" with output: late"),
            ),
        ];
        for (block, edges, want) in cases {
            assert_eq!(error_of(block, edges), want, "{block}");
        }
    }

    #[test]
    fn a_dead_lettering_join_may_have_a_late_edge() {
        let yaml = doc(
            "{left: a, right: b, ttl: 1s, lateRecords: deadLetter}",
            &format!("{EDGES}    - {{from: j, to: late, output: late}}\n"),
        )
        .replace("    - {id: out,", "    - {id: late, discard: {}}\n    - {id: out,");
        JobConfig::from_yaml(&yaml).expect("valid");
    }
}
