//! Retries with exponential backoff and jitter, bounded in attempts and in total time. Only
//! errors that say they are retryable (throttling, 5xx, connection and timeout) are retried.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::super::Error;

/// How often and how long to retry one storage operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retries).
    pub max_attempts: u32,
    /// Backoff before the first retry; it doubles after each failure.
    pub initial_backoff: Duration,
    /// Cap on one backoff.
    pub max_backoff: Duration,
    /// No retry is started once this much time has passed since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (0-based): "equal jitter", i.e. a random duration
    /// between half and all of `initial_backoff * 2^retry`, capped at `max_backoff`.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.initial_backoff.saturating_mul(1u32 << retry.min(20));
        let cap = exp.min(self.max_backoff);
        let half = cap / 2;
        half + half.mul_f64(rng.random::<f64>())
    }

    /// Runs `attempt` until it succeeds, fails with a non-retryable error, or the attempt or time
    /// budget is spent; then returns the last error. `what` names the operation in logs.
    pub async fn run<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let start = Instant::now();
        let mut retry = 0;
        loop {
            let err = match attempt().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            let attempts = retry + 1;
            if !err.is_retryable() || attempts >= self.max_attempts {
                return Err(err);
            }
            let backoff = self.backoff(retry, &mut rand::rng());
            if start.elapsed() + backoff > self.max_elapsed {
                tracing::warn!(what, attempts, "storage retry budget spent: {err}");
                return Err(err);
            }
            tracing::warn!(
                what,
                attempt = attempts,
                backoff_ms = backoff.as_millis() as u64,
                "retrying storage operation: {err}"
            );
            tokio::time::sleep(backoff).await;
            retry += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn flaky(retryable: bool) -> Error {
        Error::Backend { store: "s3://t".into(), op: "put", key: "k".into(), message: "boom".into(), retryable }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_elapsed: Duration::from_secs(3600),
        }
    }

    #[test]
    fn backoff_grows_exponentially_within_jitter_bounds_and_is_capped() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Default::default()
        };
        let mut rng = rand::rng();
        for (retry, full) in [(0, 100), (1, 200), (2, 400), (3, 800), (4, 1000), (30, 1000)] {
            let b = policy.backoff(retry, &mut rng);
            assert!(b >= Duration::from_millis(full / 2) && b <= Duration::from_millis(full), "retry {retry}: {b:?}");
        }
    }

    #[tokio::test]
    async fn retryable_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let out = fast()
            .run("put", || async { if calls.fetch_add(1, Ordering::SeqCst) < 2 { Err(flaky(true)) } else { Ok(7) } })
            .await;
        assert_eq!(out.expect("succeeds"), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn non_retryable_errors_fail_at_once_and_attempts_are_bounded() {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = fast()
            .run("put", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(flaky(false))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let policy = RetryPolicy { max_attempts: 4, ..fast() };
        let out: Result<(), _> = policy
            .run("put", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(flaky(true))
            })
            .await;
        assert!(out.expect_err("gives up").is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn no_retry_starts_once_the_time_budget_is_spent() {
        let calls = AtomicU32::new(0);
        let policy = RetryPolicy { max_attempts: 1000, max_elapsed: Duration::ZERO, ..fast() };
        let out = policy
            .run("get", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(flaky(true))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
