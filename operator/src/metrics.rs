//! Prometheus metrics (prefix `sluice_operator_`): reconciles, errors, duration, jobs per phase.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sluice_crds::Phase;

/// Label of the errors counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The failed step ([`crate::error::Error::metric_label`]).
    pub error: String,
}

/// Label of the per-phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The phase.
    pub phase: String,
}

/// Label of the per-job phase record.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// namespace/name.
    pub job: String,
    /// The phase.
    pub phase: String,
}

/// The operator's metrics.
pub struct Metrics {
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles failed, by step.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// Jobs per phase (as last reconciled).
    pub jobs: Family<PhaseLabels, Gauge>,
    /// Last known phase of each job (1 for its phase), to keep `jobs` right on phase changes.
    job_phase: std::sync::Mutex<std::collections::HashMap<String, Phase>>,
    /// Restarts launched after failures.
    pub restarts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            duration: Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            jobs: Family::default(),
            job_phase: Default::default(),
            restarts: Counter::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric in `registry` under the `sluice_operator` prefix.
    pub fn register(self, registry: &mut Registry) -> Self {
        let r = registry.sub_registry_with_prefix("sluice_operator");
        r.register("reconciles", "Reconciles run", self.reconciles.clone());
        r.register("reconcile_errors", "Reconciles that failed, by step", self.errors.clone());
        r.register("reconcile_duration_seconds", "Reconcile duration", self.duration.clone());
        r.register("jobs", "StreamJobs per phase", self.jobs.clone());
        r.register("restarts", "Attempts relaunched after a failure", self.restarts.clone());
        self
    }

    /// Records one reconcile's duration.
    pub fn observe_reconcile(&self, took: Duration) {
        self.reconciles.inc();
        self.duration.observe(took.as_secs_f64());
    }

    /// Records a failed reconcile.
    pub fn observe_error(&self, label: &str) {
        self.errors.get_or_create(&ErrorLabels { error: label.to_string() }).inc();
    }

    /// Records the phase of `job` (`None` when the job is gone).
    pub fn set_phase(&self, job: &str, phase: Option<Phase>) {
        let mut known = self.job_phase.lock().unwrap_or_else(|p| p.into_inner());
        let old = match phase {
            Some(p) => known.insert(job.to_string(), p),
            None => known.remove(job),
        };
        if old == phase {
            return;
        }
        if let Some(o) = old {
            self.jobs.get_or_create(&PhaseLabels { phase: o.as_str().into() }).dec();
        }
        if let Some(p) = phase {
            self.jobs.get_or_create(&PhaseLabels { phase: p.as_str().into() }).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_gauge_follows_phase_changes() {
        let mut registry = Registry::default();
        let m = Metrics::default().register(&mut registry);
        m.set_phase("ns/a", Some(Phase::Deploying));
        m.set_phase("ns/a", Some(Phase::Running));
        m.set_phase("ns/b", Some(Phase::Running));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(text.contains("sluice_operator_jobs{phase=\"Running\"} 2"), "{text}");
        assert!(text.contains("sluice_operator_jobs{phase=\"Deploying\"} 0"), "{text}");
    }
}
