//! `GET /v1/job`: the job's graph with live figures per node ([`JobView`]). Rates and time
//! fractions are differences of the metrics' counters over a recent window: each request reads
//! the counters (no lock on the record path; the task-time list's lock is taken by tasks only
//! when they are built) and measures against a sample kept from a few seconds before, so every
//! client sees the same figures however often it polls.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sluice_crds::contract::control::CONTROL_VERSION;
use sluice_crds::contract::job_view::{EdgeView, JobView, NodeView};

use super::ControlState;
use crate::engine::metrics::{TimeTotals, now_epoch_ms};
use crate::job::JobHandles;

/// The figures are measured over at least this span (once the job ran that long)…
const WINDOW: Duration = Duration::from_secs(5);
/// …from samples kept at most this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Below this span a rate says nothing: the figures are left out.
const MIN_SPAN: Duration = Duration::from_millis(50);

/// One node's counters at one time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeTotals {
    /// Records in so far.
    pub records_in: u64,
    /// Records out so far.
    pub records_out: u64,
    /// Its task's times so far.
    pub times: TimeTotals,
}

/// Every node's counters at one instant.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    nodes: Vec<NodeTotals>,
}

/// The recent samples the figures are measured against.
#[derive(Debug, Default)]
pub struct RateWindow {
    samples: VecDeque<Sample>,
}

impl RateWindow {
    /// Keeps `nodes` (read at `at`) as a sample if the last one is old enough, and returns the
    /// sample to measure against: the newest one at least [`WINDOW`] old, or the oldest kept.
    pub fn baseline(&mut self, at: Instant, nodes: &[NodeTotals]) -> Option<(Duration, Vec<NodeTotals>)> {
        while self.samples.len() >= 2 && self.samples.get(1).is_some_and(|s| at.duration_since(s.at) >= WINDOW) {
            self.samples.pop_front();
        }
        let base = self
            .samples
            .front()
            .map(|s| (at.duration_since(s.at), s))
            .filter(|(span, _)| *span >= MIN_SPAN)
            .map(|(span, s)| (span, s.nodes.clone()));
        if self.samples.back().is_none_or(|s| at.duration_since(s.at) >= SAMPLE_EVERY) {
            self.samples.push_back(Sample { at, nodes: nodes.to_vec() });
        }
        base
    }
}

/// Every node's counters now.
pub fn totals(h: &JobHandles) -> Vec<NodeTotals> {
    (0..h.shape.nodes.len())
        .map(|i| NodeTotals {
            records_in: h.metrics.records_in(i),
            records_out: h.metrics.records_out(i),
            times: h.metrics.task_time_totals(h.shape.nodes[i].task),
        })
        .collect()
}

/// `part`'s share of the three times' sum (`None` when no time passed).
fn fraction(part: Duration, all: &TimeTotals) -> Option<f64> {
    let sum = (all.busy + all.idle + all.backpressured).as_secs_f64();
    (sum > 0.0).then(|| part.as_secs_f64() / sum)
}

/// The figures of one node: `now` against `base` over `span`.
fn figures(view: &mut NodeView, now: &NodeTotals, base: &NodeTotals, span: Duration) {
    let per_second = |now: u64, then: u64| now.saturating_sub(then) as f64 / span.as_secs_f64();
    view.records_in_per_second = Some(per_second(now.records_in, base.records_in));
    view.records_out_per_second = Some(per_second(now.records_out, base.records_out));
    let d = TimeTotals {
        busy: now.times.busy.saturating_sub(base.times.busy),
        idle: now.times.idle.saturating_sub(base.times.idle),
        backpressured: now.times.backpressured.saturating_sub(base.times.backpressured),
    };
    view.busy = fraction(d.busy, &d);
    view.idle = fraction(d.idle, &d);
    view.backpressured = fraction(d.backpressured, &d);
}

/// The job's graph and live figures; empty before the job is wired.
pub fn job_view(state: &ControlState) -> JobView {
    let mut view = JobView {
        version: CONTROL_VERSION,
        run_id: state.run_id.clone(),
        name: String::new(),
        state: state.job_state(),
        at_ms: now_epoch_ms(),
        window_ms: None,
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    let Some(h) = state.handles.get() else { return view };
    let now = totals(h);
    let base = state.rates().baseline(Instant::now(), &now);
    view.name = h.shape.name.clone();
    view.window_ms = base.as_ref().map(|(span, _)| span.as_millis() as u64);
    view.edges = h
        .shape
        .edges
        .iter()
        .map(|e| EdgeView { from: e.from.clone(), to: e.to.clone(), partition: e.partition, output: e.output })
        .collect();
    view.nodes = h
        .shape
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut v = NodeView {
                id: n.id.clone(),
                kind: n.kind.to_string(),
                parallelism: n.parallelism,
                task: h.shape.nodes.get(n.task).map_or_else(|| n.id.clone(), |t| t.id.clone()),
                records_in: now[i].records_in,
                records_out: now[i].records_out,
                records_in_per_second: None,
                records_out_per_second: None,
                busy: None,
                idle: None,
                backpressured: None,
                watermark_ms: h.metrics.low_watermark(i),
            };
            if let Some((span, base)) = &base
                && let Some(b) = base.get(i)
            {
                figures(&mut v, &now[i], b, *span);
            }
            v
        })
        .collect();
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(records: u64, busy_ms: u64, bp_ms: u64) -> Vec<NodeTotals> {
        let ms = Duration::from_millis;
        let times = TimeTotals { busy: ms(busy_ms), idle: ms(0), backpressured: ms(bp_ms) };
        vec![NodeTotals { records_in: records, records_out: records, times }]
    }

    #[test]
    fn the_window_spans_a_few_seconds_however_often_clients_ask() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert!(w.baseline(t0, &totals(0, 0, 0)).is_none(), "nothing to measure against yet");
        let s = Duration::from_millis;
        // Polled every 100 ms for 12 s: the span grows to the window, then stays within it + 1 s.
        for k in 1..=120 {
            let (span, base) = w.baseline(t0 + s(100 * k), &totals(k * 10, 0, 0)).expect("a baseline");
            if k * 100 <= 5_000 {
                assert_eq!(span, s(100 * k), "at {k}: measured since the first sample");
                assert_eq!(base[0].records_in, 0);
            } else {
                assert!(span >= WINDOW && span <= WINDOW + SAMPLE_EVERY, "at {k}: {span:?}");
            }
        }
        assert!(w.samples.len() <= 7, "{} samples kept", w.samples.len());
        // A client that comes back after a minute measures since the last request.
        let (span, _) = w.baseline(t0 + s(72_000), &totals(0, 0, 0)).expect("a baseline");
        assert!(span >= s(60_000), "{span:?}");
    }

    #[test]
    fn rates_and_fractions_are_differences_over_the_span() {
        let mut v = NodeView {
            id: "n".into(),
            kind: "map".into(),
            parallelism: 1,
            task: "n".into(),
            records_in: 0,
            records_out: 0,
            records_in_per_second: None,
            records_out_per_second: None,
            busy: None,
            idle: None,
            backpressured: None,
            watermark_ms: None,
        };
        figures(&mut v, &totals(3_000, 1_500, 500)[0], &totals(1_000, 1_000, 0)[0], Duration::from_secs(2));
        assert_eq!(v.records_in_per_second, Some(1_000.0));
        assert_eq!((v.busy, v.backpressured, v.idle), (Some(0.5), Some(0.5), Some(0.0)));
        figures(&mut v, &totals(1_000, 0, 0)[0], &totals(1_000, 0, 0)[0], Duration::from_secs(2));
        assert_eq!((v.records_out_per_second, v.busy), (Some(0.0), None), "no time passed: no fraction");
    }
}
