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

/// Why `/healthz` fails.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    /// Watches have been failing for at least [`WATCH_GRACE`] (by name).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Watches(Vec<DeadWatch>),
    /// A thread panicked while updating the watch states.
    #[error("health state poisoned")]
    Poisoned,
}

/// A watch failing past [`WATCH_GRACE`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("watch of {watch} failing for {seconds}s: {error}")]
pub struct DeadWatch {
    /// The watch's name.
    pub watch: &'static str,
    /// How long it has been failing, in whole seconds.
    pub seconds: u64,
    /// Its last error.
    pub error: String,
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
    pub fn check_at(&self, now: Instant) -> Result<(), Unhealthy> {
        let failing = self.failing.lock().map_err(|_| Unhealthy::Poisoned)?;
        let dead: Vec<DeadWatch> = failing
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.since) >= WATCH_GRACE)
            .map(|(w, f)| DeadWatch {
                watch: w,
                seconds: now.duration_since(f.since).as_secs(),
                error: f.error.clone(),
            })
            .collect();
        if dead.is_empty() { Ok(()) } else { Err(Unhealthy::Watches(dead)) }
    }

    /// [`Health::check_at`] now.
    pub fn check(&self) -> Result<(), Unhealthy> {
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
        let err = h.check_at(later).expect_err("failing past the grace period").to_string();
        assert!(err.contains("streamjobs") && err.contains("403 Forbidden"), "{err}");
        h.watch_failed("streamjobs", "500");
        assert!(h.check_at(later).is_err(), "a repeated failure keeps its first time");
        h.watch_ok("streamjobs");
        assert!(h.check_at(later).is_ok());
    }

    #[test]
    fn the_unhealthy_answer_names_every_dead_watch_in_the_words_healthz_always_used() {
        let h = Health::default();
        h.watch_failed("pods", "500");
        h.watch_failed("streamjobs", "403 Forbidden");
        let later = Instant::now() + WATCH_GRACE + Duration::from_secs(2);
        let Err(Unhealthy::Watches(dead)) = h.check_at(later) else { panic!("both watches are dead") };
        assert_eq!(dead.iter().map(|d| d.watch).collect::<Vec<_>>(), ["pods", "streamjobs"]);
        let text = Unhealthy::Watches(dead.clone()).to_string();
        let expected: Vec<String> =
            dead.iter().map(|d| format!("watch of {} failing for {}s: {}", d.watch, d.seconds, d.error)).collect();
        assert_eq!(text, expected.join("; "));
        assert!(dead.iter().all(|d| d.seconds >= WATCH_GRACE.as_secs()), "{text}");
        assert_eq!(Unhealthy::Poisoned.to_string(), "health state poisoned");
    }
}
