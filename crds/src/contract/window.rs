//! The `window` block: tumbling, sliding (hop) and session event-time windows per key, with
//! one aggregate (`function`/`field`, emitted as `value`) or several named ones (`aggregates`),
//! and its validation.
//!
//! The three forms, as a Flink user writes them:
//!
//! ```yaml
//! window: {size: 1m, function: count}                       # tumbling (today's form)
//! window: {size: 10s, slide: 2s, aggregates: [...]}         # sliding (HOP): size/slide windows per record
//! window: {session: {gap: 30s}, aggregates: [...]}          # session windows per key
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::field_errors::Errors;

/// Event-time windows per key, fired when the watermark passes their end.
///
/// Tumbling (`size`), sliding (`size` and `slide`) or session (`session`) windows. Each window
/// emits `{key, start, end, value}` with the single aggregate `function` (of `field`), or
/// `{key, start, end, <name>: …}` with every one of `aggregates`. A window `[start, end)` fires
/// once, when the watermark reaches `end - 1`; a session window's `end` is its last record's time
/// plus `gap`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowSpec {
    /// Window length of tumbling and sliding windows, e.g. `10s`; windows are aligned to the
    /// epoch (a window starts at every multiple of `slide`, or of `size` without `slide`).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub size: Option<Duration>,
    /// Sliding (hop) windows: a window of `size` starts every `slide` (which must divide
    /// `size`), so each record belongs to `size / slide` windows. Absent: tumbling windows.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub slide: Option<Duration>,
    /// Session windows (instead of `size`): a key's records at most `gap` from the next one
    /// form one window `[first, last + gap)`; a record that bridges two sessions merges them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionSpec>,
    /// The single aggregate, emitted as `value` (or use `aggregates`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<WindowFn>,
    /// Dotted path of `function`'s input inside the value; the value itself when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Several aggregates of one window, each emitted under its `name` (instead of `function`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aggregates: Vec<WindowAggregate>,
    /// How long a window stays open for late records after it fired (default 0): a record whose
    /// window fired but whose `end - 1 + allowedLateness` the watermark has not reached yet
    /// updates the window, which emits its updated result at once.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Duration::is_zero")]
    #[schemars(with = "Option<String>")]
    pub allowed_lateness: Duration,
    /// What happens to a record later than `allowedLateness`: `drop` (counted in
    /// `sluice_runtime_late_records_total`) or `deadLetter` (counted, and sent unchanged along
    /// the node's edges with `output: late`).
    #[serde(default)]
    pub late_records: LateRecords,
}

/// Session windows: per key, records at most `gap` apart share a window (Flink merges windows
/// that touch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionSpec {
    /// Inactivity gap, e.g. `30s`: a record at `t` opens (or extends) a session to `t + gap`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub gap: Duration,
}

/// An aggregate function over the records of one window. Null inputs are ignored (as in SQL):
/// `count` with a `field` counts the records where it is not null.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WindowFn {
    /// Number of records (with a field: of records where it is not null).
    Count,
    /// Sum of the numeric input.
    Sum,
    /// Smallest numeric input.
    Min,
    /// Largest numeric input.
    Max,
    /// Mean of the numeric input, a double.
    Avg,
    /// Number of distinct values of `field` (exact).
    CountDistinct,
}

/// One named aggregate of a window's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WindowAggregate {
    /// The output field, e.g. `maxPrice` (not `key`, `start` or `end`).
    pub name: String,
    /// The aggregate function.
    pub function: WindowFn,
    /// Dotted path of the input inside the value; the value itself when absent (required by
    /// `countDistinct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What a window does with a record that comes after its window was purged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum LateRecords {
    /// Count it and drop it.
    #[default]
    Drop,
    /// Count it and emit it on the node's `output: late` edges.
    DeadLetter,
}

/// How a valid [`WindowSpec`] assigns records to windows (all in milliseconds, ≥ 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// Windows `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window length.
        size: i64,
    },
    /// Windows `[k·slide, k·slide + size)`; `slide` divides `size`.
    Sliding {
        /// Window length.
        size: i64,
        /// Distance between window starts.
        slide: i64,
    },
    /// Per-key sessions with an inactivity gap.
    Session {
        /// Inactivity gap.
        gap: i64,
    },
}

/// Output field names a window always writes.
pub const RESERVED_OUTPUT_FIELDS: [&str; 3] = ["key", "start", "end"];

/// A duration in whole milliseconds (saturating).
pub(crate) fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Tumbling (`slide` absent) or sliding windows of `size`; `None` unless they
/// [validate](validate_aligned).
pub(crate) fn aligned_kind(size: Duration, slide: Option<Duration>) -> Option<WindowKind> {
    let size = millis(size);
    match slide.map(millis) {
        _ if size < 1 => None,
        None => Some(WindowKind::Tumbling { size }),
        Some(slide) => {
            (slide >= 1 && slide <= size && size % slide == 0).then_some(WindowKind::Sliding { size, slide })
        }
    }
}

/// Checks the `size` and `slide` fields at `at.size` / `at.slide` of tumbling or sliding windows
/// (a `window` block, or a top-N's `window`); each problem once.
pub(crate) fn validate_aligned(size: Duration, slide: Option<Duration>, at: &str, errs: &mut Errors) {
    let at_least_1ms = |d: Duration| d >= Duration::from_millis(1);
    if !at_least_1ms(size) {
        errs.add(format!("{at}.size"), "must be ≥ 1ms");
    } else if let Some(slide) = slide {
        if !at_least_1ms(slide) {
            errs.add(format!("{at}.slide"), "must be ≥ 1ms");
        } else if slide > size {
            errs.add(format!("{at}.slide"), format!("must be ≤ size ({size:?}), got {slide:?}"));
        } else if millis(size) % millis(slide) != 0 {
            errs.add(format!("{at}.slide"), format!("must divide size ({size:?}) into whole windows, got {slide:?}"));
        }
    }
}

impl WindowSpec {
    /// Tumbling windows of `size` with the single aggregate `function` of `field`.
    pub fn tumbling(size: Duration, function: WindowFn, field: Option<String>) -> WindowSpec {
        WindowSpec {
            size: Some(size),
            slide: None,
            session: None,
            function: Some(function),
            field,
            aggregates: Vec::new(),
            allowed_lateness: Duration::ZERO,
            late_records: LateRecords::Drop,
        }
    }

    /// How records are assigned to windows; `None` when the spec does not [validate](validate).
    pub fn kind(&self) -> Option<WindowKind> {
        match (self.size, self.slide, &self.session) {
            (Some(size), slide, None) => aligned_kind(size, slide),
            (None, None, Some(s)) if millis(s.gap) >= 1 => Some(WindowKind::Session { gap: millis(s.gap) }),
            _ => None,
        }
    }

    /// The aggregates to compute: `(output name, function, field)`; the single `function` form
    /// is named `value`.
    pub fn outputs(&self) -> Vec<(&str, WindowFn, Option<&str>)> {
        match self.function {
            Some(f) => vec![("value", f, self.field.as_deref())],
            None => self.aggregates.iter().map(|a| (a.name.as_str(), a.function, a.field.as_deref())).collect(),
        }
    }

    /// Allowed lateness in milliseconds.
    pub fn lateness_ms(&self) -> i64 {
        millis(self.allowed_lateness)
    }
}

/// Checks a `window` block at path `at` (e.g. `pipeline.nodes[1].window`); each problem once.
pub(crate) fn validate(w: &WindowSpec, at: &str, errs: &mut Errors) {
    let at_least_1ms = |d: Duration| d >= Duration::from_millis(1);
    match (w.size, &w.session) {
        (Some(_), Some(_)) => {
            errs.add(format!("{at}.session"), "set either size (tumbling or sliding windows) or session, not both")
        }
        (None, None) => {
            errs.add(format!("{at}.size"), "set size (tumbling or sliding windows) or session (session windows)")
        }
        (Some(size), None) => validate_aligned(size, w.slide, at, errs),
        (None, Some(s)) => {
            if w.slide.is_some() {
                errs.add(format!("{at}.slide"), "only with size (sliding windows), not with session");
            }
            if !at_least_1ms(s.gap) {
                errs.add(format!("{at}.session.gap"), "must be ≥ 1ms");
            }
        }
    }
    match (w.function, w.aggregates.is_empty()) {
        (Some(_), false) => errs
            .add(format!("{at}.aggregates"), "set either function (one aggregate, as value) or aggregates, not both"),
        (None, true) => errs.add(
            format!("{at}.function"),
            "set function (one aggregate: count, sum, min, max, avg, countDistinct) or aggregates",
        ),
        (Some(WindowFn::CountDistinct), true) if w.field.is_none() => {
            errs.add(format!("{at}.field"), "countDistinct needs a field")
        }
        (None, false) if w.field.is_some() => {
            errs.add(format!("{at}.field"), "only with function; each of aggregates sets its own field")
        }
        _ => {}
    }
    let mut names = BTreeSet::new();
    for (i, a) in w.aggregates.iter().enumerate() {
        let ap = format!("{at}.aggregates[{i}]");
        if a.name.is_empty() {
            errs.add(format!("{ap}.name"), "must not be empty");
        } else if RESERVED_OUTPUT_FIELDS.contains(&a.name.as_str()) {
            errs.add(
                format!("{ap}.name"),
                format!("{:?} is an output field of every window: choose another name", a.name),
            );
        } else if !names.insert(a.name.as_str()) {
            errs.add(format!("{ap}.name"), format!("duplicate aggregate name {:?}", a.name));
        }
        if a.function == WindowFn::CountDistinct && a.field.is_none() {
            errs.add(format!("{ap}.field"), "countDistinct needs a field");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{WindowFn, WindowKind};
    use crate::JobConfig;

    fn doc(block: &str) -> String {
        format!(
            "name: w\npipeline:\n  nodes:\n    - {{id: src, generator: {{count: 10}}}}\n    - {{id: win, window: {block}}}\n    - {{id: out, discard: {{}}}}\n  edges:\n    - {{from: src, to: win, partition: hash}}\n    - {{from: win, to: out}}\n"
        )
    }

    /// The one error a bad window block gets, in full.
    fn error_of(block: &str) -> String {
        let e = JobConfig::from_yaml(&doc(block)).expect_err("must be rejected");
        assert_eq!(e.errors.len(), 1, "said once: {e}");
        e.to_string()
    }

    #[test]
    fn todays_tumbling_form_parses_and_means_the_same() {
        let job = JobConfig::from_yaml(&doc("{size: 1m, function: sum, field: n}")).expect("valid");
        let w = job.pipeline.nodes[1].window.clone().expect("window");
        assert_eq!(w.kind(), Some(WindowKind::Tumbling { size: 60_000 }));
        assert_eq!(w.outputs(), vec![("value", WindowFn::Sum, Some("n"))]);
        let again = JobConfig::from_yaml(&job.to_yaml()).expect("round trip");
        assert_eq!(again.pipeline.nodes[1].window, Some(w));
    }

    #[test]
    fn sliding_session_and_several_aggregates_parse() {
        let job = JobConfig::from_yaml(&doc(
            "{size: 10s, slide: 2s, aggregates: [{name: bids, function: count}, {name: top, function: max, field: price}, {name: who, function: countDistinct, field: bidder}]}",
        ))
        .expect("valid");
        let w = job.pipeline.nodes[1].window.clone().expect("window");
        assert_eq!(w.kind(), Some(WindowKind::Sliding { size: 10_000, slide: 2_000 }));
        assert_eq!(
            w.outputs(),
            vec![
                ("bids", WindowFn::Count, None),
                ("top", WindowFn::Max, Some("price")),
                ("who", WindowFn::CountDistinct, Some("bidder"))
            ]
        );
        let job =
            JobConfig::from_yaml(&doc("{session: {gap: 30s}, function: avg, allowedLateness: 5s}")).expect("valid");
        let w = job.pipeline.nodes[1].window.clone().expect("window");
        assert_eq!(w.kind(), Some(WindowKind::Session { gap: 30_000 }));
        assert_eq!(w.lateness_ms(), 5_000);
    }

    #[test]
    fn bad_windows_name_the_field_once() {
        let at = "pipeline.nodes[1].window";
        let cases = [
            ("{size: 2s, slide: 3s, function: count}", format!("{at}.slide: must be ≤ size (2s), got 3s")),
            (
                "{size: 10s, slide: 3s, function: count}",
                format!("{at}.slide: must divide size (10s) into whole windows, got 3s"),
            ),
            ("{size: 10s, slide: 0s, function: count}", format!("{at}.slide: must be ≥ 1ms")),
            ("{size: 0s, function: count}", format!("{at}.size: must be ≥ 1ms")),
            ("{session: {gap: 0s}, function: count}", format!("{at}.session.gap: must be ≥ 1ms")),
            (
                "{size: 10s, session: {gap: 1s}, function: count}",
                format!("{at}.session: set either size (tumbling or sliding windows) or session, not both"),
            ),
            (
                "{session: {gap: 1s}, slide: 1s, function: count}",
                format!("{at}.slide: only with size (sliding windows), not with session"),
            ),
            (
                "{function: count}",
                format!("{at}.size: set size (tumbling or sliding windows) or session (session windows)"),
            ),
            (
                "{size: 1s}",
                format!(
                    "{at}.function: set function (one aggregate: count, sum, min, max, avg, countDistinct) or aggregates"
                ),
            ),
            (
                "{size: 1s, function: count, aggregates: [{name: n, function: count}]}",
                format!("{at}.aggregates: set either function (one aggregate, as value) or aggregates, not both"),
            ),
            ("{size: 1s, function: countDistinct}", format!("{at}.field: countDistinct needs a field")),
            (
                "{size: 1s, aggregates: [{name: n, function: countDistinct}]}",
                format!("{at}.aggregates[0].field: countDistinct needs a field"),
            ),
            (
                "{size: 1s, aggregates: [{name: n, function: count}, {name: m, function: sum}, {name: n, function: max}]}",
                format!("{at}.aggregates[2].name: duplicate aggregate name \"n\""),
            ),
            (
                "{size: 1s, aggregates: [{name: start, function: count}]}",
                format!("{at}.aggregates[0].name: \"start\" is an output field of every window: choose another name"),
            ),
            (
                "{size: 1s, aggregates: [{name: '', function: count}]}",
                format!("{at}.aggregates[0].name: must not be empty"),
            ),
            (
                "{size: 1s, field: x, aggregates: [{name: n, function: count}]}",
                format!("{at}.field: only with function; each of aggregates sets its own field"),
            ),
        ];
        for (block, want) in cases {
            assert_eq!(error_of(block), want, "{block}");
        }
    }

    #[test]
    fn an_unknown_function_names_its_path() {
        let e = error_of("{size: 1s, aggregates: [{name: n, function: median}]}");
        assert!(e.starts_with("pipeline.nodes[1].window.aggregates[0].function: unknown variant `median`"), "{e}");
        let e = error_of("{size: 1s, function: median}");
        assert!(e.starts_with("pipeline.nodes[1].window.function: unknown variant `median`"), "{e}");
    }
}
