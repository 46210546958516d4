//! Fault points: named places in the checkpoint protocol where a test (or chaos mode) makes the
//! process crash on purpose, to prove recovery from exactly there. Inert unless configured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every fault point the runtime defines.
pub const POINTS: &[&str] = &[
    // A task snapshotted (sinks pre-committed) but did not ack yet.
    "task.after_precommit",
    // A state file is half written at its final key (a non-atomic store), then the process dies.
    "snapshot.mid_write",
    // Every ack is in; the manifest is not yet published.
    "coordinator.before_publish",
    // The manifest is published; no task was told, so no sink committed.
    "coordinator.after_publish",
    // A sink is about to pre-commit at a barrier (its transaction still open).
    "sink.before_precommit",
    // A sink committed one transaction; the job's other pending ones are not committed yet.
    "sink.mid_commit",
    // Sink recovery committed one listed transaction (the others are not finished yet), or
    // finished committing and has not fenced the job's other transactions yet.
    "sink.mid_recovery",
    // Restore chose a checkpoint and recovered sinks, before tasks start.
    "restore.after_sink_recovery",
    // Retention deleted old manifests but not yet their unreferenced files.
    "retention.mid_sweep",
];

/// Why a fault plan (`--fault-point`, `--chaos-probability`) is unusable: bad input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FaultPlanError {
    /// `name@N` with an `N` that is not a count.
    #[error("bad hit count in {0:?}")]
    HitCount(String),
    /// No fault point has this name.
    #[error("unknown fault point {0:?}; known: {points}", points = POINTS.join(", "))]
    UnknownPoint(String),
    /// A chaos probability outside [0, 1].
    #[error("chaos probability {0} is not in [0, 1]")]
    Probability(f64),
}

/// The configured faults, shared by every task. Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Faults(Option<Arc<Plan>>);

#[derive(Debug)]
struct Plan {
    point: Option<String>,
    nth: u64,
    hits: AtomicU64,
    chaos: Option<f64>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Faults {
        Faults(None)
    }

    /// Crash at `point` (`name` or `name@N` for the N-th hit), and/or at any point with
    /// probability `chaos` per hit.
    pub fn new(point: Option<&str>, chaos: Option<f64>) -> Result<Faults, FaultPlanError> {
        if point.is_none() && chaos.is_none() {
            return Ok(Faults(None));
        }
        let (name, nth) = match point {
            None => (None, 1),
            Some(p) => {
                let (name, nth) = match p.split_once('@') {
                    Some((n, k)) => (n, k.parse::<u64>().map_err(|_| FaultPlanError::HitCount(p.to_string()))?),
                    None => (p, 1),
                };
                if !POINTS.contains(&name) {
                    return Err(FaultPlanError::UnknownPoint(name.to_string()));
                }
                (Some(name.to_string()), nth.max(1))
            }
        };
        if let Some(c) = chaos
            && !(0.0..=1.0).contains(&c)
        {
            return Err(FaultPlanError::Probability(c));
        }
        Ok(Faults(Some(Arc::new(Plan { point: name, nth, hits: AtomicU64::new(0), chaos }))))
    }

    /// Passes fault point `point`: crashes the process if the plan says so.
    pub fn hit(&self, point: &'static str) {
        if self.due(point) {
            crash(point);
        }
    }

    /// Counts a pass of `point` and says whether the process should crash there now; the
    /// caller may do damage first (e.g. a torn write), then call [`crash`].
    pub fn due(&self, point: &'static str) -> bool {
        let Some(plan) = &self.0 else { return false };
        if plan.point.as_deref() == Some(point) && plan.hits.fetch_add(1, Ordering::SeqCst) + 1 == plan.nth {
            return true;
        }
        plan.chaos.is_some_and(|p| rand::random::<f64>() < p)
    }
}

/// Exit status of a process that crashed on purpose at a fault point (distinct from 1, an
/// error, 3, a data-loss risk, and from death by a signal), so a test tells a planned crash
/// from any other failure.
pub const EXIT_FAULT: i32 = 86;

/// The line a crash at a fault point writes to standard error, before anything else happens:
/// `sluice-fault: hit POINT`. Tests confirm each planned fault from it.
pub const HIT_PREFIX: &str = "sluice-fault: hit ";

/// Ends the process at once, as a crash would: no destructors run, no buffered output of the
/// job (sink writers, state) is flushed, no cleanup happens. It first reports the point on
/// standard error ([`HIT_PREFIX`]) and exits with [`EXIT_FAULT`], so the crash is unambiguous.
pub fn crash(point: &str) -> ! {
    use std::io::Write as _;
    // One write of the whole line: standard error is unbuffered, so `writeln!` would write its
    // pieces one by one, and the workers of one attempt share the pipe: their lines interleaved.
    let line = format!("{HIT_PREFIX}{point}\n");
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
    // `_exit` semantics as far as the job is concerned: `exit` runs no Rust destructors (other
    // threads keep their buffers; nothing is flushed but the C stdio streams, which the
    // runtime does not use for data).
    std::process::exit(EXIT_FAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_points_and_bad_probabilities_are_refused() {
        assert!(Faults::new(Some("nope"), None).is_err());
        assert!(Faults::new(Some("sink.mid_commit@x"), None).is_err());
        assert!(Faults::new(None, Some(1.5)).is_err());
        assert!(Faults::new(Some("sink.mid_commit@3"), Some(0.0)).is_ok());
    }

    #[test]
    fn inert_plan_never_crashes() {
        let f = Faults::new(Some("sink.mid_commit@1000000"), None).expect("plan");
        for _ in 0..10 {
            f.hit("sink.mid_commit");
            f.hit("coordinator.after_publish");
        }
    }
}
