//! `GET /v1/job` ([`super::control::JOB`]): the running job's graph with live figures per node,
//! what the job page (`GET /`) draws.
//!
//! Rates and time fractions are measured by the runtime over a recent window
//! ([`JobView::window_ms`], a few seconds; since the job started on the first requests), from
//! the same counters `GET /metrics` exposes: asking costs the job nothing.

use serde::{Deserialize, Serialize};

use super::control::JobState;
use super::pipeline::{EdgeOutput, Partitioning};

fn version() -> u32 {
    super::control::CONTROL_VERSION
}

/// Response of `GET /v1/job`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// Format version.
    #[serde(default = "version")]
    pub version: u32,
    /// The `--run-id` of the process.
    pub run_id: String,
    /// The job document's `name`.
    pub name: String,
    /// What the job as a whole is doing.
    pub state: JobState,
    /// When the figures were read, milliseconds since the epoch.
    pub at_ms: i64,
    /// The span the rates and fractions were measured over, in milliseconds (absent before the
    /// job is wired, then every figure is absent too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_ms: Option<u64>,
    /// The nodes, in the job document's order.
    pub nodes: Vec<NodeView>,
    /// The edges, in the job document's order.
    pub edges: Vec<EdgeView>,
}

/// One node of [`JobView`] with its live figures (summed over its subtasks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// Node id, as in the job document.
    pub id: String,
    /// Its block's name: `generator`, `window`, `fileSink`, ….
    pub kind: String,
    /// Number of subtasks.
    pub parallelism: u32,
    /// Id of the first node of the task (chain) it runs in: nodes joined by forward edges run
    /// together, and share their task's busy / idle / backpressured time.
    pub task: String,
    /// Records that entered the node so far.
    #[serde(default)]
    pub records_in: u64,
    /// Records the node emitted so far.
    #[serde(default)]
    pub records_out: u64,
    /// Records in per second over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_in_per_second: Option<f64>,
    /// Records out per second over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_out_per_second: Option<f64>,
    /// Fraction (0–1) of its task's time spent working, over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<f64>,
    /// Fraction (0–1) of its task's time spent waiting for input, over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<f64>,
    /// Fraction (0–1) of its task's time spent blocked on a full output channel, over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backpressured: Option<f64>,
    /// The lowest current watermark of its subtasks that have one, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_ms: Option<i64>,
}

/// One edge of [`JobView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
    /// `forward`, `rebalance` or `hash`.
    pub partition: Partitioning,
    /// `main` (the node's results) or `late` (a window's late records).
    pub output: EdgeOutput,
}
