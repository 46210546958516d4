//! Prometheus text exposition of the runtime's counters (`sluice_runtime_*`).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::ControlState;
use crate::checkpoint::driver::stats;

/// Renders every metric in the Prometheus text format.
pub fn render(state: &ControlState) -> String {
    let mut out = String::new();
    let ready = u8::from(state.is_ready());
    let _ = writeln!(out, "# HELP sluice_runtime_ready Whether the job restored its state and runs.");
    let _ = writeln!(out, "# TYPE sluice_runtime_ready gauge\nsluice_runtime_ready {ready}");
    let Some(h) = state.handles.get() else { return out };
    let m = &h.metrics;
    let _ = writeln!(out, "# HELP sluice_runtime_records_in_total Records that entered a node.");
    let _ = writeln!(out, "# TYPE sluice_runtime_records_in_total counter");
    for (i, node) in m.nodes.iter().enumerate() {
        let v = m.per_node[i].records_in.load(Ordering::Relaxed);
        let _ = writeln!(out, "sluice_runtime_records_in_total{{node=\"{node}\"}} {v}");
    }
    let _ = writeln!(out, "# HELP sluice_runtime_records_out_total Records a node emitted.");
    let _ = writeln!(out, "# TYPE sluice_runtime_records_out_total counter");
    for (i, node) in m.nodes.iter().enumerate() {
        let v = m.per_node[i].records_out.load(Ordering::Relaxed);
        let _ = writeln!(out, "sluice_runtime_records_out_total{{node=\"{node}\"}} {v}");
    }
    let _ = writeln!(
        out,
        "# HELP sluice_runtime_late_records_total Records that came after their window closed (dropped or dead-lettered)."
    );
    let _ = writeln!(out, "# TYPE sluice_runtime_late_records_total counter");
    for (i, node) in m.nodes.iter().enumerate() {
        let v = m.per_node[i].late_records.load(Ordering::Relaxed);
        let _ = writeln!(out, "sluice_runtime_late_records_total{{node=\"{node}\"}} {v}");
    }
    let s = stats(&h.stats).clone();
    let latest = s.latest.as_ref();
    let gauges = [
        ("checkpoints_completed_total", "counter", "Checkpoints completed by this run.", s.completed),
        ("checkpoints_failed_total", "counter", "Checkpoints failed or aborted by this run.", s.failed),
        ("checkpoint_last_completed_id", "gauge", "Id of the latest completed checkpoint.", latest.map_or(0, |l| l.id)),
        (
            "checkpoint_last_duration_ms",
            "gauge",
            "Trigger-to-completion time of the latest checkpoint.",
            latest.map_or(0, |l| l.duration_ms),
        ),
        (
            "checkpoint_last_size_bytes",
            "gauge",
            "State bytes the latest checkpoint references.",
            latest.map_or(0, |l| l.size_bytes),
        ),
        (
            "checkpoint_alignment_us_total",
            "counter",
            "Time spent aligning barriers, microseconds.",
            m.alignment_us.load(Ordering::Relaxed),
        ),
        ("malformed_records_total", "counter", "Records skipped as malformed.", m.malformed.load(Ordering::Relaxed)),
        (
            "checkpoint_storage_live_bytes",
            "gauge",
            "Bytes the retained checkpoints reference.",
            s.storage.as_ref().map_or(0, |r| r.live_bytes),
        ),
        (
            "checkpoint_storage_shared_bytes",
            "gauge",
            "Bytes referenced by more than one retained checkpoint.",
            s.storage.as_ref().map_or(0, |r| r.shared_bytes),
        ),
        (
            "checkpoint_storage_orphan_bytes_deleted",
            "gauge",
            "Bytes of failed-checkpoint leftovers the last sweep removed.",
            s.storage.as_ref().map_or(0, |r| r.orphan_bytes),
        ),
    ];
    for (name, kind, help, v) in gauges {
        let _ = writeln!(
            out,
            "# HELP sluice_runtime_{name} {help}\n# TYPE sluice_runtime_{name} {kind}\nsluice_runtime_{name} {v}"
        );
    }
    out
}
