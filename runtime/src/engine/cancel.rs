//! Cancellation of a running job, shared by the coordinator and every task.
//!
//! The coordinator cancels in this order: it stops triggering, lets manifests already being
//! published settle (their completions reach the tasks first, so sinks commit them), aborts the
//! other checkpoints in flight, then calls [`Cancellation::cancel`] and wakes every task with a
//! control message. A task that sees the flag — at its next step, or when a neighbour that
//! already ended closes a channel — drains its control messages (completions first), aborts its
//! sinks' open transactions and ends with `Ok`. Nothing it does after the flag is emitted or
//! committed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_crds::CheckpointId;

/// The job-wide cancel flag, and which pre-committed transactions tasks must leave alone.
#[derive(Debug, Default)]
pub struct Cancellation {
    requested: AtomicBool,
    keep_up_to: Mutex<Option<CheckpointId>>,
}

impl Cancellation {
    /// Cancels the job. Pre-committed transactions of checkpoints up to `keep_up_to` may be
    /// listed by a published manifest (its publish outcome is unknown) and are left for the next
    /// run's recovery; every other transaction is aborted.
    pub fn cancel(&self, keep_up_to: Option<CheckpointId>) {
        *self.keep_up_to.lock().unwrap_or_else(|p| p.into_inner()) = keep_up_to;
        self.requested.store(true, Ordering::Release);
    }

    /// Whether the job is being cancelled (one atomic load: cheap enough per batch).
    pub fn is_cancelled(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// The newest checkpoint whose pre-committed transactions must be kept (see [`Self::cancel`]).
    pub fn keep_up_to(&self) -> Option<CheckpointId> {
        *self.keep_up_to.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_sets_the_flag_and_the_kept_checkpoints() {
        let c = Cancellation::default();
        assert!(!c.is_cancelled());
        c.cancel(Some(CheckpointId(7)));
        assert!(c.is_cancelled());
        assert_eq!(c.keep_up_to(), Some(CheckpointId(7)));
    }
}
