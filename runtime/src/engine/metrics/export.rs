//! Registers a job's metrics in a `prometheus_client` registry (done at each scrape: the live
//! families are shared, the values read from the tasks' atomics are turned into metrics then).

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{JobMetrics, SubtaskLabels};

type SecondsCounter = Family<SubtaskLabels, Counter<f64, AtomicU64>>;

impl JobMetrics {
    /// Registers every job metric in `r` (expected to carry the `sluice_runtime` prefix).
    /// `now_ms` is the wall clock the watermark lag is measured against.
    pub fn register(&self, r: &mut Registry, now_ms: i64) {
        r.register("records_in", "Records that entered a node, per subtask", self.records_in.clone());
        r.register("records_out", "Records a node emitted, per subtask", self.records_out.clone());
        r.register(
            "late_records",
            "Records that came after their window closed (dropped or dead-lettered), per subtask",
            self.late_records.clone(),
        );
        r.register("malformed_records", "Records a source skipped as malformed, per subtask", self.malformed.clone());
        self.register_watermarks(r, now_ms);
        self.register_times(r);
        r.register(
            "checkpoint_alignment_seconds",
            "Time from a task's first barrier of a checkpoint to the last (0 with one input), per checkpoint",
            self.alignment.clone(),
        );
        r.register(
            "end_to_end_latency_seconds",
            "Wall clock minus event time of a sampled record (the first of each batch) reaching a sink",
            self.latency.clone(),
        );
        r.register(
            "kafka_consumer_lag_records",
            "Records between a Kafka source's position and the partition's high watermark",
            self.kafka_lag.clone(),
        );
        self.net.register(r);
    }

    fn register_watermarks(&self, r: &mut Registry, now_ms: i64) {
        let watermark: Family<SubtaskLabels, Gauge> = Family::default();
        let lag: Family<SubtaskLabels, Gauge<f64, AtomicU64>> = Family::default();
        for n in &self.nodes {
            for (i, s) in n.subtasks.iter().enumerate() {
                let Some(wm) = s.watermark() else { continue };
                let l = SubtaskLabels { node: n.id.clone(), subtask: i as u32 };
                watermark.get_or_create(&l).set(wm);
                lag.get_or_create(&l).set(now_ms.saturating_sub(wm) as f64 / 1000.0);
            }
        }
        r.register(
            "watermark_milliseconds",
            "A node's current event-time watermark, ms since the epoch (absent before the first)",
            watermark,
        );
        r.register("watermark_lag_seconds", "Wall clock minus a node's current watermark", lag);
    }

    fn register_times(&self, r: &mut Registry) {
        let (busy, idle, bp) = (SecondsCounter::default(), SecondsCounter::default(), SecondsCounter::default());
        for (l, t) in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            busy.get_or_create(l).inc_by(t.busy().as_secs_f64());
            idle.get_or_create(l).inc_by(t.idle().as_secs_f64());
            bp.get_or_create(l).inc_by(t.backpressured().as_secs_f64());
        }
        let chain = "(by its chain's first node)";
        r.register("busy_seconds", format!("Time a task spent working {chain}"), busy);
        r.register("idle_seconds", format!("Time a task spent waiting for input {chain}"), idle);
        r.register(
            "backpressured_seconds",
            format!("Time a task spent blocked sending on a full output channel {chain}"),
            bp,
        );
    }
}
