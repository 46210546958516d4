//! A source-side throttle: at most `rate` records per second on average since the start.

use std::time::{Duration, Instant};

/// Tracks records emitted against a records-per-second budget.
#[derive(Clone, Debug)]
pub struct RateLimit {
    rate: f64,
    started: Instant,
    emitted: u64,
}

impl RateLimit {
    /// A limit of `rate` records per second (per subtask), starting now.
    pub fn new(rate: f64) -> RateLimit {
        RateLimit { rate, started: Instant::now(), emitted: 0 }
    }

    /// Restarts the clock (after a restore, so a replay is not "behind").
    pub fn restart(&mut self) {
        self.started = Instant::now();
        self.emitted = 0;
    }

    /// How many records may go now, at most `max`; `Err(wait)` when none may.
    pub fn budget(&self, max: usize) -> Result<usize, Duration> {
        let allowed = (self.started.elapsed().as_secs_f64() * self.rate) as u64;
        match allowed.saturating_sub(self.emitted) {
            0 => Err(Duration::from_secs_f64((1.0 / self.rate).clamp(0.0005, 0.01))),
            n => Ok(max.min(usize::try_from(n).unwrap_or(usize::MAX))),
        }
    }

    /// Counts `n` records emitted.
    pub fn emitted(&mut self, n: usize) {
        self.emitted += n as u64;
    }
}
