//! `GET /metrics`: the runtime's metrics (`sluice_runtime_*`) in the OpenMetrics text format,
//! encoded by `prometheus-client` from a registry built at each scrape: the job's live metrics
//! ([`crate::engine::metrics::JobMetrics`]), the checkpoint statistics, readiness and the
//! process's CPU and memory.

mod process;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::ControlState;
use crate::checkpoint::driver::{CheckpointStats, stats};
use crate::engine::metrics::now_epoch_ms;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A rendered scrape: answers with the OpenMetrics content type.
#[derive(Clone, Debug)]
pub struct Exposition(pub String);

impl IntoResponse for Exposition {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], self.0).into_response()
    }
}

/// Renders every metric. The checkpoint statistics stay locked while the registry is encoded,
/// so the duration histogram's count and `checkpoints_completed_total` agree in every scrape.
pub fn render(state: &ControlState) -> Exposition {
    let mut registry = Registry::with_prefix("sluice_runtime");
    registry.register(
        "ready",
        "Whether the job restored its state and runs (1) or not (0)",
        ConstGauge::new(i64::from(state.is_ready())),
    );
    process::register(&mut registry);
    let mut out = String::new();
    let encoded = match state.handles.get() {
        None => prometheus_client::encoding::text::encode(&mut out, &registry),
        Some(h) => {
            let s = stats(&h.stats);
            register_checkpoints(&mut registry, &s);
            h.metrics.register(&mut registry, now_epoch_ms());
            prometheus_client::encoding::text::encode(&mut out, &registry)
        }
    };
    if let Err(e) = encoded {
        tracing::warn!(error = %e, "encoding the metrics failed");
    }
    Exposition(out)
}

/// The checkpoint statistics as metrics.
fn register_checkpoints(r: &mut Registry, s: &CheckpointStats) {
    let latest = s.latest.as_ref();
    r.register("checkpoints_completed", "Checkpoints completed by this run", ConstCounter::new(s.completed));
    r.register("checkpoints_failed", "Checkpoints failed or aborted by this run", ConstCounter::new(s.failed));
    r.register(
        "checkpoint_duration_seconds",
        "Trigger-to-completion time of the checkpoints completed by this run",
        s.duration_histogram.0.clone(),
    );
    r.register(
        "checkpoint_last_completed_id",
        "Id of the latest completed checkpoint (0 before the first)",
        ConstGauge::new(latest.map_or(0, |l| l.id as i64)),
    );
    r.register(
        "checkpoint_last_duration_seconds",
        "Trigger-to-completion time of the latest checkpoint",
        ConstGauge::new(latest.map_or(0.0, |l| l.duration_ms as f64 / 1000.0)),
    );
    let bytes = |v: u64| ConstGauge::new(v as i64);
    r.register_with_unit(
        "checkpoint_last_size",
        "State bytes the latest checkpoint references",
        Unit::Bytes,
        bytes(latest.map_or(0, |l| l.size_bytes)),
    );
    let storage = s.storage.as_ref();
    r.register_with_unit(
        "checkpoint_storage_live",
        "Bytes the retained checkpoints reference",
        Unit::Bytes,
        bytes(storage.map_or(0, |r| r.live_bytes)),
    );
    r.register_with_unit(
        "checkpoint_storage_shared",
        "Bytes referenced by more than one retained checkpoint",
        Unit::Bytes,
        bytes(storage.map_or(0, |r| r.shared_bytes)),
    );
    r.register_with_unit(
        "checkpoint_storage_orphan_deleted",
        "Bytes of failed-checkpoint leftovers the last sweep removed",
        Unit::Bytes,
        bytes(storage.map_or(0, |r| r.orphan_bytes)),
    );
}
