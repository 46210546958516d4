//! What the driver is asked from outside (the control endpoint, a signal): savepoints, stop
//! with a savepoint, and the cancel protocol (see [`crate::engine::cancel`]). The asks arrive as
//! plain [`DriverCommand`]s and savepoint outcomes leave through a [`SavepointListener`]: the
//! driver knows nothing of the control endpoint above it.

use std::time::{Duration, Instant};

use sluice_crds::CheckpointId;
use tokio::sync::mpsc;

use super::{Driver, SavepointRequest, StopReply};
use crate::checkpoint::coordinator::{Input, JobFailure};
use crate::checkpoint::savepoint::{SavepointError, write_savepoint};
use crate::engine::message::TaskControl;

/// A request to the driver.
#[derive(Debug)]
pub enum DriverCommand {
    /// Take a savepoint with this id, at `location` (default under the storage root).
    Savepoint {
        /// Savepoint id (as returned to the caller).
        id: String,
        /// Target directory URI.
        location: Option<String>,
    },
    /// Stop the job, optionally with a final savepoint; the reply carries its location.
    Stop {
        /// Take a savepoint first.
        savepoint: bool,
        /// Where the outcome goes.
        reply: StopReply,
    },
}

/// Told how each savepoint a [`DriverCommand::Savepoint`] asked for ended.
pub trait SavepointListener: Send + Sync {
    /// Savepoint `id` is complete at the location given, or failed for the reason given.
    fn savepoint_finished(&self, id: &str, outcome: Result<String, SavepointError>);
}

/// Longest wait, on a cancel, for manifests being published to settle before the tasks cancel;
/// after it, their transactions are left for the next run's recovery.
const CANCEL_SETTLE: Duration = Duration::from_secs(5);

/// A cancel in progress.
pub(super) struct Cancelling {
    pub(super) reply: StopReply,
    pub(super) deadline: Instant,
    /// The tasks were told.
    pub(super) signalled: bool,
}

/// The newest checkpoint whose pre-committed transactions a cancel must keep: the newest one
/// completed or still being published. Aborting one of those would lose data a published
/// manifest promises.
fn keep_on_cancel(last_completed: Option<CheckpointId>, publishing: &[CheckpointId]) -> Option<CheckpointId> {
    last_completed.max(publishing.iter().max().copied())
}

impl Driver {
    pub(super) fn on_command(&mut self, cmd: DriverCommand) -> Result<Option<Input>, StopReply> {
        let no_storage = "the job has no checkpoint storage configured".to_string();
        match cmd {
            DriverCommand::Savepoint { id, .. } if self.stopping => {
                self.fail_savepoint(&id, "the job is stopping: no savepoint is taken after a stop".into());
                Ok(None)
            }
            DriverCommand::Stop { reply, .. } if self.stopping => {
                let _ = reply.send(Err("a stop is already in progress".into()));
                Ok(None)
            }
            DriverCommand::Savepoint { id, location } => {
                if self.store.is_none() {
                    self.fail_savepoint(&id, no_storage);
                    return Ok(None);
                }
                self.queued.push_back(SavepointRequest { name: id, location, stop: None });
                Ok(Some(Input::SavepointRequested { stop: false }))
            }
            DriverCommand::Stop { savepoint: true, reply } => {
                if self.store.is_none() {
                    let _ = reply.send(Err(no_storage));
                    return Ok(None);
                }
                let name = crate::storage::layout::stop_savepoint_name(self.run_id.as_deref().unwrap_or("run"));
                self.queued.push_back(SavepointRequest { name, location: None, stop: Some(reply) });
                self.stopping = true;
                Ok(Some(Input::SavepointRequested { stop: true }))
            }
            // A stop without savepoint cancels the tasks; the caller answers once they are gone.
            DriverCommand::Stop { savepoint: false, reply } => {
                self.stopping = true;
                Err(reply)
            }
        }
    }

    fn fail_savepoint(&self, name: &str, reason: String) {
        if let Some(l) = &self.listener {
            l.savepoint_finished(name, Err(SavepointError::NotTaken(reason)));
        }
    }

    /// Fails every savepoint request not taken yet, and (`in_flight_too`) those in flight.
    pub(super) fn fail_savepoints(&mut self, reason: &str, in_flight_too: bool) {
        let mut requests: Vec<SavepointRequest> = self.queued.drain(..).collect();
        if in_flight_too {
            requests.extend(self.in_flight.drain().flat_map(|(_, r)| r));
        }
        for req in requests {
            self.fail_savepoint(&req.name, reason.to_string());
            if let Some(reply) = req.stop {
                let _ = reply.send(Err(reason.to_string()));
            }
        }
    }

    /// Starts a cancel: nothing triggers, checkpoints not being published are aborted.
    pub(super) fn start_cancel(
        &mut self,
        reply: StopReply,
        results: &mpsc::UnboundedSender<Input>,
        started: Instant,
    ) -> Result<Cancelling, JobFailure> {
        tracing::info!("cancelling the job on request");
        self.fail_savepoints("the job is cancelled", false);
        for action in self.coordinator.cancel() {
            self.execute(action, results, started)?;
        }
        Ok(Cancelling { reply, deadline: Instant::now() + CANCEL_SETTLE, signalled: false })
    }

    /// Once no manifest is being published (or the settle time is up), tells every task to
    /// cancel. Transactions of a completed checkpoint (a task may not have seen its completion
    /// yet) or of one whose manifest is still being published are kept: the next run's
    /// recovery commits those a published manifest lists. Only newer ones are aborted.
    pub(super) fn signal_cancel(&mut self, c: &mut Cancelling) {
        let publishing = self.coordinator.in_flight();
        if c.signalled || (!publishing.is_empty() && Instant::now() < c.deadline) {
            return;
        }
        if let Some(last) = publishing.last() {
            tracing::warn!(checkpoint = %last, "manifest publish did not settle: its transactions are left for recovery");
        }
        self.cancel.cancel(keep_on_cancel(self.last_completed, &publishing));
        self.send_all(TaskControl::Cancel, false);
        c.signalled = true;
    }

    pub(super) fn finish_savepoints(&mut self, id: CheckpointId, outcome: Result<(), SavepointError>) {
        let Some(requests) = self.in_flight.remove(&id) else { return };
        for req in requests {
            let listener = self.listener.clone();
            match (&outcome, self.store.clone(), self.storage.clone()) {
                (Ok(()), Some(store), Some(spec)) => {
                    let target = req
                        .location
                        .clone()
                        .unwrap_or_else(|| crate::storage::layout::savepoint_uri(&spec.uri, &req.name));
                    self.copies.spawn(async move {
                        let result = write_savepoint(store.as_ref(), id, &target, &spec).await;
                        match &result {
                            Ok(loc) => tracing::info!(checkpoint = %id, location = %loc, "savepoint complete"),
                            Err(e) => tracing::warn!(checkpoint = %id, error = %e, "savepoint copy failed"),
                        }
                        if let Some(l) = listener {
                            l.savepoint_finished(&req.name, result.clone());
                        }
                        if let Some(reply) = req.stop {
                            let _ = reply.send(result.map(Some).map_err(|e| e.to_string()));
                        }
                    });
                }
                (outcome, _, _) => {
                    let reason = outcome
                        .clone()
                        .err()
                        .unwrap_or_else(|| SavepointError::NotTaken("no checkpoint storage".into()));
                    if let Some(reply) = req.stop {
                        let _ = reply.send(Err(reason.to_string()));
                    }
                    if let Some(l) = listener {
                        l.savepoint_finished(&req.name, Err(reason));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancel_keeps_what_completed_or_is_being_published() {
        let c = CheckpointId;
        assert_eq!(keep_on_cancel(None, &[]), None, "nothing completed: abort every transaction");
        assert_eq!(keep_on_cancel(Some(c(7)), &[]), Some(c(7)), "a completed checkpoint's are never aborted");
        assert_eq!(keep_on_cancel(Some(c(7)), &[c(8), c(9)]), Some(c(9)), "nor those a manifest being published lists");
        assert_eq!(keep_on_cancel(None, &[c(3)]), Some(c(3)));
    }
}
