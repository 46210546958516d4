//! The exactly-once sink's start-up check on `transaction.timeout.ms`: a pre-committed
//! transaction must outlive a whole checkpoint cycle plus a restart (or the broker aborts it
//! before recovery can commit it), and the broker must accept the timeout at all.

use std::time::Duration;

/// What the transaction timeout must cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutBudget {
    /// Time between checkpoint starts.
    pub checkpoint_interval: Duration,
    /// Longest a checkpoint may take before it is declared failed.
    pub checkpoint_timeout: Duration,
    /// Expected time from a crash until the restarted job has finished recovery.
    pub restart_time: Duration,
}

impl TimeoutBudget {
    /// The least transaction timeout that covers a checkpoint cycle plus a restart.
    pub fn required(&self) -> Duration {
        self.checkpoint_interval + self.checkpoint_timeout + self.restart_time
    }
}

/// `transaction.timeout.ms` does not fit; the message names both values. Not retryable:
/// the job's configuration must change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TimeoutError {
    /// The timeout is not longer than the checkpoint cycle plus restart.
    #[error(
        "transaction.timeout.ms = {timeout_ms} must exceed checkpoint interval + checkpoint timeout + expected restart time = {required_ms} ms, or the broker may abort pre-committed transactions before recovery commits them"
    )]
    TooShort {
        /// Configured transaction timeout.
        timeout_ms: u128,
        /// Interval + timeout + restart.
        required_ms: u128,
    },
    /// The timeout exceeds what the broker accepts.
    #[error(
        "transaction.timeout.ms = {timeout_ms} exceeds the broker's transaction.max.timeout.ms = {broker_max_ms}; the broker would refuse the producer"
    )]
    AboveBrokerMax {
        /// Configured transaction timeout.
        timeout_ms: u128,
        /// The broker's `transaction.max.timeout.ms`.
        broker_max_ms: u128,
    },
}

/// Checks `timeout` against `budget` and, when the broker reported it, against the
/// broker's `transaction.max.timeout.ms` (see [`super::broker_config`]).
pub fn check_transaction_timeout(
    timeout: Duration,
    budget: TimeoutBudget,
    broker_max: Option<Duration>,
) -> Result<(), TimeoutError> {
    let required = budget.required();
    if timeout <= required {
        return Err(TimeoutError::TooShort { timeout_ms: timeout.as_millis(), required_ms: required.as_millis() });
    }
    if let Some(max) = broker_max
        && timeout > max
    {
        return Err(TimeoutError::AboveBrokerMax { timeout_ms: timeout.as_millis(), broker_max_ms: max.as_millis() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: TimeoutBudget = TimeoutBudget {
        checkpoint_interval: Duration::from_secs(10),
        checkpoint_timeout: Duration::from_secs(60),
        restart_time: Duration::from_secs(120),
    };

    #[test]
    fn timeout_above_the_cycle_and_below_the_broker_max_is_accepted() {
        let max = Some(Duration::from_secs(900));
        assert_eq!(check_transaction_timeout(Duration::from_secs(300), BUDGET, max), Ok(()));
        assert_eq!(check_transaction_timeout(Duration::from_secs(900), BUDGET, max), Ok(()));
        assert_eq!(check_transaction_timeout(Duration::from_secs(191), BUDGET, None), Ok(()));
    }

    #[test]
    fn timeout_not_above_the_cycle_is_refused_naming_both_values() {
        let error = check_transaction_timeout(Duration::from_secs(190), BUDGET, None).expect_err("too short");
        assert_eq!(error, TimeoutError::TooShort { timeout_ms: 190_000, required_ms: 190_000 });
        let message = error.to_string();
        assert!(message.contains("190000 ms") && message.contains("= 190000 must"), "{message}");
    }

    #[test]
    fn timeout_above_the_broker_max_is_refused_naming_both_values() {
        let error = check_transaction_timeout(Duration::from_secs(901), BUDGET, Some(Duration::from_secs(900)))
            .expect_err("above max");
        let message = error.to_string();
        assert!(message.contains("901000") && message.contains("900000"), "{message}");
    }
}
