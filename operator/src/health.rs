//! Liveness of the operator's watches, for `/healthz`: a watch that cannot list or watch (RBAC
//! removed, CRD gone, API server refusing) is reported instead of leaving a green probe over a
//! controller that reconciles nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a watch may fail continuously before `/healthz` reports it (its own backoff
/// retries first; a single failed request is not a dead controller).
pub const WATCH_GRACE: Duration = Duration::from_secs(60);

/// What one watch last did.
#[derive(Clone, Debug)]
struct Failing {
    since: Instant,
    error: String,
}

/// The state of every watch of the controller, by name.
#[derive(Debug, Default)]
pub struct Health {
    failing: Mutex<BTreeMap<&'static str, Failing>>,
}

impl Health {
    /// `watch` delivered an event: it lists and watches.
    pub fn watch_ok(&self, watch: &'static str) {
        if let Ok(mut f) = self.failing.lock() {
            f.remove(watch);
        }
    }

    /// `watch` failed with `error`; it counts as failing from its first consecutive error.
    pub fn watch_failed(&self, watch: &'static str, error: &str) {
        if let Ok(mut f) = self.failing.lock() {
            let entry = f.entry(watch).or_insert_with(|| Failing { since: Instant::now(), error: String::new() });
            entry.error = error.to_string();
        }
    }

    /// `Ok` unless a watch has been failing for at least [`WATCH_GRACE`] at `now`; the error
    /// names the watch and its last error.
    pub fn check_at(&self, now: Instant) -> Result<(), String> {
        let failing = self.failing.lock().map_err(|_| "health state poisoned".to_string())?;
        let dead: Vec<String> = failing
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.since) >= WATCH_GRACE)
            .map(|(w, f)| format!("watch of {w} failing for {}s: {}", now.duration_since(f.since).as_secs(), f.error))
            .collect();
        if dead.is_empty() { Ok(()) } else { Err(dead.join("; ")) }
    }

    /// [`Health::check_at`] now.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_is_unhealthy_only_after_failing_for_the_grace_period_and_recovers_on_success() {
        let h = Health::default();
        assert!(h.check().is_ok(), "no watch yet (not leading): healthy");
        h.watch_failed("streamjobs", "403 Forbidden");
        let start = Instant::now();
        assert!(h.check_at(start).is_ok(), "a fresh failure is retried first");
        let later = start + WATCH_GRACE + Duration::from_secs(1);
        let err = h.check_at(later).expect_err("failing past the grace period");
        assert!(err.contains("streamjobs") && err.contains("403 Forbidden"), "{err}");
        h.watch_failed("streamjobs", "500");
        assert!(h.check_at(later).is_err(), "a repeated failure keeps its first time");
        h.watch_ok("streamjobs");
        assert!(h.check_at(later).is_ok());
    }
}
