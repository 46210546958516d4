//! Counters the tasks update once per batch (never per record) and the control endpoint,
//! progress reporter and benchmarks read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-node counters.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    /// Records that entered the node.
    pub records_in: AtomicU64,
    /// Records the node emitted.
    pub records_out: AtomicU64,
    /// Records the node found too late for their window (dropped or dead-lettered).
    pub late_records: AtomicU64,
}

/// Counters of a whole job, indexed by node.
#[derive(Debug)]
pub struct JobMetrics {
    /// Node ids, in pipeline order.
    pub nodes: Vec<String>,
    /// Counters, parallel to `nodes`.
    pub per_node: Vec<NodeMetrics>,
    /// Records skipped as malformed.
    pub malformed: AtomicU64,
    /// Total barrier-alignment time, microseconds.
    pub alignment_us: AtomicU64,
}

impl JobMetrics {
    /// Counters for the given nodes, all zero.
    pub fn new(nodes: Vec<String>) -> Arc<JobMetrics> {
        let per_node = nodes.iter().map(|_| NodeMetrics::default()).collect();
        Arc::new(JobMetrics { nodes, per_node, malformed: AtomicU64::new(0), alignment_us: AtomicU64::new(0) })
    }

    /// Adds to a node's input counter.
    pub fn add_in(&self, node: usize, n: usize) {
        self.per_node[node].records_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Adds to a node's output counter.
    pub fn add_out(&self, node: usize, n: usize) {
        self.per_node[node].records_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Adds to a node's late-record counter.
    pub fn add_late(&self, node: usize, n: u64) {
        self.per_node[node].late_records.fetch_add(n, Ordering::Relaxed);
    }

    /// Records emitted by all source nodes so far.
    pub fn source_records(&self, sources: &[usize]) -> u64 {
        sources.iter().map(|&i| self.per_node[i].records_out.load(Ordering::Relaxed)).sum()
    }
}
