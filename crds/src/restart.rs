//! The StreamJob's `restartStrategy` block: how often and how fast the operator relaunches a
//! failed attempt.

use kube::KubeSchema;
use kube::core::Duration;
use serde::{Deserialize, Serialize};

/// Default number of restarts allowed within the window.
pub const DEFAULT_MAX_RESTARTS: u32 = 10;
/// Default length of the window restarts are counted in.
pub const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);
/// Default delay before the first restart.
pub const DEFAULT_BACKOFF_INITIAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Default cap on the restart delay.
pub const DEFAULT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// Restart policy for failed attempts: exponential backoff, and a budget after which the job
/// goes to `Failed` instead of restarting again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.window) || duration(self.window) >= duration('1s')")
        .message("spec.restartStrategy.window must be at least 1s")
)]
pub struct RestartStrategy {
    /// Restarts allowed within `window`; one more failure moves the job to Failed. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_restarts: Option<u32>,
    /// Length of the sliding window restarts are counted in, as a Go duration. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub window: Option<Duration>,
    /// Delay between a failure and the relaunch, doubling with each restart in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// Exponential restart delay: `initial * 2^(restarts in window)`, capped at `max`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.initial) || duration(self.initial) >= duration('0s')")
        .message("spec.restartStrategy.backoff.initial must not be negative"),
    validation = Rule::new("!has(self.max) || duration(self.max) >= duration('0s')")
        .message("spec.restartStrategy.backoff.max must not be negative"),
    validation = Rule::new("!has(self.initial) || !has(self.max) || duration(self.max) >= duration(self.initial)")
        .message("spec.restartStrategy.backoff.max must be at least spec.restartStrategy.backoff.initial")
)]
pub struct Backoff {
    /// Delay before the first restart. Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub initial: Option<Duration>,
    /// Largest delay. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub max: Option<Duration>,
}

impl RestartStrategy {
    /// Restarts allowed within the window.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS)
    }

    /// The window restarts are counted in.
    pub fn window(&self) -> std::time::Duration {
        self.window.map(Into::into).unwrap_or(DEFAULT_WINDOW)
    }

    /// The delay before the restart that follows `restarts_in_window` earlier restarts.
    pub fn delay(&self, restarts_in_window: u32) -> std::time::Duration {
        let b = self.backoff.clone().unwrap_or_default();
        let initial: std::time::Duration = b.initial.map(Into::into).unwrap_or(DEFAULT_BACKOFF_INITIAL);
        let max: std::time::Duration = b.max.map(Into::into).unwrap_or(DEFAULT_BACKOFF_MAX);
        let factor = 1u32.checked_shl(restarts_in_window.min(31)).unwrap_or(u32::MAX);
        initial.checked_mul(factor).unwrap_or(max).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_per_restart_and_stops_at_max() {
        let s = RestartStrategy::default();
        assert_eq!(s.delay(0), std::time::Duration::from_secs(1));
        assert_eq!(s.delay(3), std::time::Duration::from_secs(8));
        assert_eq!(s.delay(9), std::time::Duration::from_secs(300));
        assert_eq!(s.delay(400), std::time::Duration::from_secs(300));
    }
}
