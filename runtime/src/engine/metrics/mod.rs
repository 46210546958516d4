//! The job's metrics, on `prometheus-client` types. Tasks update them once per batch (never per
//! record), through handles they take once when they are built ([`JobMetrics::subtask`],
//! [`JobMetrics::task_times`], …): a handle is an `Arc`'d atomic, so the hot path takes no lock
//! and allocates nothing. The control endpoint registers them in a `Registry` at each scrape
//! ([`JobMetrics::register`]); the progress reporter and benchmarks read the sums.

pub mod clock;
mod export;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub use self::clock::{TaskClock, TaskTimes};
use crate::engine::net::NetMetrics;

/// Labels of a per-subtask metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubtaskLabels {
    /// Node id (for a task's metrics: the id of its chain's first node).
    pub node: String,
    /// Subtask index.
    pub subtask: u32,
}

/// Labels of a Kafka partition's metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// The source node.
    pub node: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
}

/// A histogram family whose members all have the same buckets.
pub type HistogramFamily = Family<SubtaskLabels, Histogram, fn() -> Histogram>;

fn alignment_histogram() -> Histogram {
    // 100 µs … ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~9 min.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// The buckets of the checkpoint-duration histogram (seconds): 10 ms … ~5.5 min.
pub fn checkpoint_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// One subtask of one node: its counters (clones share the values).
#[derive(Clone, Debug)]
pub struct SubtaskMetrics {
    /// Records that entered the node.
    pub records_in: Counter,
    /// Records the node emitted.
    pub records_out: Counter,
    /// Records the node found too late for their window (dropped or dead-lettered).
    pub late_records: Counter,
    /// Records a source skipped as malformed.
    pub malformed: Counter,
    /// The node's current watermark (ms since the epoch); `i64::MIN` before the first one.
    watermark: Arc<AtomicI64>,
}

impl SubtaskMetrics {
    /// Records the watermark the node reached. The end-of-input watermark (`i64::MAX`) is not
    /// an event time and leaves the last real one shown.
    pub fn set_watermark(&self, wm: i64) {
        if wm != i64::MIN && wm != i64::MAX {
            self.watermark.store(wm, Ordering::Relaxed);
        }
    }

    /// The last watermark set, if any.
    pub fn watermark(&self) -> Option<i64> {
        Some(self.watermark.load(Ordering::Relaxed)).filter(|&w| w != i64::MIN)
    }
}

impl SubtaskMetrics {
    fn new() -> SubtaskMetrics {
        SubtaskMetrics {
            records_in: Counter::default(),
            records_out: Counter::default(),
            late_records: Counter::default(),
            malformed: Counter::default(),
            watermark: Arc::new(AtomicI64::new(i64::MIN)),
        }
    }
}

/// The metrics of one node: one entry per subtask.
#[derive(Debug)]
struct NodeMetrics {
    id: String,
    subtasks: Vec<SubtaskMetrics>,
}

/// The metrics of a whole job.
#[derive(Debug)]
pub struct JobMetrics {
    nodes: Vec<NodeMetrics>,
    records_in: Family<SubtaskLabels, Counter>,
    records_out: Family<SubtaskLabels, Counter>,
    late_records: Family<SubtaskLabels, Counter>,
    malformed: Family<SubtaskLabels, Counter>,
    /// Busy / idle / backpressured time of every task, by its chain's first node and subtask.
    tasks: Mutex<Vec<(SubtaskLabels, Arc<TaskTimes>)>>,
    /// Barrier alignment time per aligned checkpoint, seconds, by task.
    alignment: HistogramFamily,
    /// Sampled end-to-end latency at the sinks, seconds ([`TaskLatency`]).
    latency: HistogramFamily,
    /// Kafka consumer lag (records), by source node, topic and partition.
    kafka_lag: Family<PartitionLabels, Gauge>,
    /// The network exchange's, per peer worker (no series until a worker takes a peer's handles).
    net: NetMetrics,
}

impl JobMetrics {
    /// Zeroed metrics for `nodes` (id and parallelism, in pipeline order).
    pub fn new(nodes: Vec<(String, u32)>) -> Arc<JobMetrics> {
        let m = JobMetrics {
            nodes: Vec::new(),
            records_in: Family::default(),
            records_out: Family::default(),
            late_records: Family::default(),
            malformed: Family::default(),
            tasks: Mutex::default(),
            alignment: Family::new_with_constructor(alignment_histogram),
            latency: Family::new_with_constructor(latency_histogram),
            kafka_lag: Family::default(),
            net: NetMetrics::default(),
        };
        let nodes = nodes
            .into_iter()
            .map(|(id, parallelism)| {
                let subtasks = (0..parallelism.max(1))
                    .map(|subtask| {
                        let l = SubtaskLabels { node: id.clone(), subtask };
                        SubtaskMetrics {
                            records_in: m.records_in.get_or_create_owned(&l),
                            records_out: m.records_out.get_or_create_owned(&l),
                            late_records: m.late_records.get_or_create_owned(&l),
                            malformed: m.malformed.get_or_create_owned(&l),
                            ..SubtaskMetrics::new()
                        }
                    })
                    .collect();
                NodeMetrics { id, subtasks }
            })
            .collect();
        Arc::new(JobMetrics { nodes, ..m })
    }

    /// The network exchange's metrics: what a worker's `NetExchange` is started with, so they
    /// are exported with the job's.
    pub fn net(&self) -> &NetMetrics {
        &self.net
    }

    /// The handles of node `node`'s subtask `subtask` (a detached, unexported set when the
    /// job has no such subtask).
    pub fn subtask(&self, node: usize, subtask: u32) -> SubtaskMetrics {
        self.nodes.get(node).and_then(|n| n.subtasks.get(subtask as usize)).cloned().unwrap_or_else(SubtaskMetrics::new)
    }

    fn labels(&self, node: usize, subtask: u32) -> SubtaskLabels {
        SubtaskLabels { node: self.nodes.get(node).map_or_else(String::new, |n| n.id.clone()), subtask }
    }

    /// The time counters of the task whose chain starts at `node`, subtask `subtask`. Called once
    /// per task when it is built.
    pub fn task_times(&self, node: usize, subtask: u32) -> Arc<TaskTimes> {
        let labels = self.labels(node, subtask);
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, t)) = tasks.iter().find(|(l, _)| *l == labels) {
            return t.clone();
        }
        let t = Arc::new(TaskTimes::default());
        tasks.push((labels, t.clone()));
        t
    }

    /// The alignment-time histogram of the task whose chain starts at `node`.
    pub fn alignment(&self, node: usize, subtask: u32) -> Histogram {
        self.alignment.get_or_create_owned(&self.labels(node, subtask))
    }

    /// The end-to-end latency histogram of sink node `node`'s subtask.
    pub fn latency(&self, node: usize, subtask: u32) -> TaskLatency {
        TaskLatency(self.latency.get_or_create_owned(&self.labels(node, subtask)))
    }

    /// Sets the consumer lag of a Kafka source's partition (not on the hot path: a source
    /// reports it about once a second).
    pub fn set_kafka_lag(&self, node: usize, topic: &str, partition: i32, lag: i64) {
        let node = self.labels(node, 0).node;
        self.kafka_lag.get_or_create(&PartitionLabels { node, topic: topic.to_string(), partition }).set(lag);
    }

    /// Records that entered node `node`, over its subtasks.
    pub fn records_in(&self, node: usize) -> u64 {
        self.nodes.get(node).map_or(0, |n| n.subtasks.iter().map(|s| s.records_in.get()).sum())
    }

    /// Records node `node` emitted, over its subtasks.
    pub fn records_out(&self, node: usize) -> u64 {
        self.nodes.get(node).map_or(0, |n| n.subtasks.iter().map(|s| s.records_out.get()).sum())
    }

    /// The lowest watermark among node `node`'s subtasks that have one.
    pub fn low_watermark(&self, node: usize) -> Option<i64> {
        self.nodes.get(node).and_then(|n| n.subtasks.iter().filter_map(SubtaskMetrics::watermark).min())
    }

    /// Busy, idle and backpressured time so far of the task whose chain starts at node `node`,
    /// summed over its subtasks (takes the lock tasks take once when they are built).
    pub fn task_time_totals(&self, node: usize) -> TimeTotals {
        let Some(id) = self.nodes.get(node).map(|n| n.id.as_str()) else { return TimeTotals::default() };
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.iter().filter(|(l, _)| l.node == id).fold(TimeTotals::default(), |acc, (_, t)| TimeTotals {
            busy: acc.busy + t.busy(),
            idle: acc.idle + t.idle(),
            backpressured: acc.backpressured + t.backpressured(),
        })
    }

    /// Records emitted by all source nodes so far.
    pub fn source_records(&self, sources: &[usize]) -> u64 {
        sources.iter().map(|&i| self.records_out(i)).sum()
    }
}

/// Busy, idle and backpressured time of a task, summed over subtasks ([`TaskTimes`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeTotals {
    /// Time spent working.
    pub busy: std::time::Duration,
    /// Time spent waiting for input.
    pub idle: std::time::Duration,
    /// Time spent blocked on a full output channel.
    pub backpressured: std::time::Duration,
}

/// Sampled end-to-end latency of a sink subtask: once per batch that reaches the sink, the wall
/// clock minus the event time of the batch's first record, in seconds (negative differences —
/// event times in the future — count as zero).
///
/// Why event time rather than latency markers: a marker (Flink's way) measures only the time a
/// marker spends queued in channels; it skips what a result really waits for — a window holds
/// its records until the watermark passes its end. Event time is what a reader of the output
/// compares with the clock, so this is the freshness of the output. The price: when a job
/// replays old data (a file of past events, a Kafka topic read from the start) the figure is the
/// age of that data, not the pipeline's delay; `sluice_runtime_watermark_lag_seconds` tells the
/// two apart. One clock read and one histogram update per sink batch, none per record.
#[derive(Clone, Debug)]
pub struct TaskLatency(Histogram);

impl TaskLatency {
    /// Samples a batch whose first record has event time `ts` (ms since the epoch).
    pub fn sample(&self, ts: i64) {
        let now = now_epoch_ms();
        self.0.observe(now.saturating_sub(ts).max(0) as f64 / 1000.0);
    }
}

/// Wall-clock time, ms since the epoch.
pub fn now_epoch_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
