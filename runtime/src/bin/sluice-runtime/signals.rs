//! SIGTERM and SIGINT for `sluice-runtime run` (PID 1 in a pod): the first one cancels the job
//! gracefully — open transactions aborted, exit 0 — within
//! [`STOP_GRACE_SECS`](sluice_crds::contract::control::STOP_GRACE_SECS), after which the
//! process exits anyway ([`StopTimeout`]); a second one exits at once with 128 + its number.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use sluice_crds::contract::control::{STOP_GRACE_SECS, StopKind};
use sluice_runtime::control::{ControlState, StopError};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The graceful cancel after a signal did not finish in time.
#[derive(Debug, thiserror::Error)]
#[error(
    "the job did not cancel within {STOP_GRACE_SECS} s of the signal: exiting anyway (open transactions are left for the next run's recovery)"
)]
pub struct StopTimeout;

/// Set once SIGTERM or SIGINT arrived: the process is asked to go, so it does not linger.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// The next signal's name and number.
    async fn next(&mut self) -> (&'static str, i32) {
        tokio::select! {
            _ = self.term.recv() => ("SIGTERM", 15),
            _ = self.int.recv() => ("SIGINT", 2),
        }
    }
}

/// Runs `job`; the first SIGTERM/SIGINT cancels it through `control` (as `POST /v1/stop
/// {"savepoint": false}` does, or waits for a stop already in progress).
pub async fn cancel_on_signal(job: impl Future<Output = Result<()>>, control: Arc<ControlState>) -> Result<()> {
    cancel_on_signal_within(job, control, Duration::from_secs(STOP_GRACE_SECS)).await
}

async fn cancel_on_signal_within(
    job: impl Future<Output = Result<()>>,
    control: Arc<ControlState>,
    grace: Duration,
) -> Result<()> {
    let mut signals = Signals::install()?;
    tokio::pin!(job);
    let (name, _) = tokio::select! {
        r = &mut job => return r,
        s = signals.next() => s,
    };
    SIGNALLED.store(true, Ordering::Relaxed);
    tracing::warn!(signal = name, grace_s = STOP_GRACE_SECS, "cancelling the job; a second signal exits at once");
    tokio::spawn(async move {
        match control.stop(StopKind::Cancel).await {
            Ok(_) => {}
            Err(StopError::InProgress(kind)) => tracing::info!(%kind, "a stop is already in progress: waiting for it"),
            Err(e) => tracing::warn!(error = %e, "cancel on signal failed"),
        }
    });
    // `biased`: a second signal already delivered wins over a cancel that finished in the same
    // wake-up (an unbiased select picks one of the ready branches at random).
    tokio::select! {
        biased;
        (name, number) = signals.next() => {
            eprintln!("error: second signal ({name}): exiting at once (open transactions are left for the next run's recovery)");
            std::process::exit(128 + number);
        }
        r = &mut job => r,
        _ = tokio::time::sleep(grace) => Err(StopTimeout.into()),
    }
}

/// Runs `job` on a worker other than worker 0: that worker's coordinator cancels the job for
/// every worker (it gets the same signal: Ctrl-C reaches the whole process group, a pod
/// deletion every pod), so a first signal is only noted; a second exits at once.
pub async fn defer_to_coordinator(job: impl Future<Output = Result<()>>) -> Result<()> {
    let mut signals = Signals::install()?;
    tokio::pin!(job);
    tokio::select! {
        r = &mut job => return r,
        (name, _) = signals.next() => {
            SIGNALLED.store(true, Ordering::Relaxed);
            tracing::warn!(signal = name, "worker 0 cancels the job for every worker; a second signal exits at once");
        }
    }
    tokio::select! {
        biased;
        (name, number) = signals.next() => {
            eprintln!("error: second signal ({name}): exiting at once");
            std::process::exit(128 + number);
        }
        r = &mut job => r,
    }
}

/// Waits `duration`, or not at all when SIGTERM or SIGINT ended the job, or less when one
/// arrives meanwhile: the endpoint's linger must not hold a person's Ctrl-C or a pod's deletion.
pub async fn linger(duration: Duration) {
    if duration.is_zero() || SIGNALLED.load(Ordering::Relaxed) {
        return;
    }
    match Signals::install() {
        Ok(mut signals) => {
            tokio::select! {
                _ = tokio::time::sleep(duration) => {}
                (name, _) = signals.next() => tracing::info!(signal = name, "exiting without the rest of the control linger"),
            }
        }
        Err(_) => tokio::time::sleep(duration).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_that_does_not_finish_in_time_ends_with_stop_timeout() {
        let control = ControlState::new("t");
        let job = std::future::pending::<Result<()>>(); // never ends, and nobody takes the cancel
        let pid = std::process::id().to_string();
        let raise = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await; // the handlers are installed
            tokio::process::Command::new("kill").args(["-TERM", &pid]).status().await
        });
        let result = cancel_on_signal_within(job, control.clone(), Duration::from_millis(300)).await;
        assert!(raise.await.expect("join").expect("kill").success());
        let err = result.expect_err("must time out");
        assert!(err.downcast_ref::<StopTimeout>().is_some(), "{err:#}");
        assert_eq!(control.stop_in_progress(), Some(StopKind::Cancel), "the signal asked for a cancel");
    }
}
