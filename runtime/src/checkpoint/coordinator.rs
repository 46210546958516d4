//! The checkpoint coordinator as a pure state machine: inputs (time passing, acks, declines,
//! publish results, finished sources) go in, actions (trigger, publish, notify, abort, end,
//! fail) come out. The driver does the I/O; tests and the model checker drive this directly.

use std::collections::{BTreeMap, BTreeSet};

use sluice_crds::CheckpointId;

use crate::engine::message::{BarrierKind, TaskAck, TaskId};
use crate::error::ErrorKind;

/// Timing and tolerance settings, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Trigger interval; `None` disables periodic checkpoints.
    pub interval_ms: Option<u64>,
    /// Abort a checkpoint not complete after this long.
    pub timeout_ms: u64,
    /// Least time from a completion to the next trigger.
    pub min_pause_ms: u64,
    /// Checkpoints in flight at once.
    pub max_concurrent: usize,
    /// Consecutive failures tolerated before the job fails.
    pub tolerable_failures: u32,
}

/// Something that happened.
#[derive(Debug)]
pub enum Input {
    /// Time passed (the driver ticks regularly).
    Tick,
    /// A task acknowledged.
    Ack(TaskAck),
    /// A task declined a checkpoint.
    Decline(CheckpointId, String),
    /// A source task ran out of data.
    SourceFinished(TaskId),
    /// The manifest of a checkpoint was published.
    Published(CheckpointId),
    /// Publishing failed; `fatal` when another writer already owns the id.
    PublishFailed(CheckpointId, String, bool),
    /// Someone asked for a savepoint; with `stop`, the job ends right after it.
    SavepointRequested {
        /// Stop the job after the savepoint.
        stop: bool,
    },
}

/// Something to do.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Tell every source to inject this barrier.
    Trigger(CheckpointId, BarrierKind),
    /// Every ack is in: write the manifest (create-if-absent).
    Publish {
        /// The checkpoint.
        id: CheckpointId,
        /// Its kind.
        kind: BarrierKind,
        /// Trigger time.
        triggered_ms: u64,
        /// Every task's ack.
        acks: Vec<TaskAck>,
    },
    /// The checkpoint is complete: tell every task (sinks commit), then apply retention.
    NotifyComplete(CheckpointId, BarrierKind),
    /// Give up on a checkpoint and clean up its files.
    Abort(CheckpointId, String),
    /// The final checkpoint is complete: sources end their streams.
    EndInput,
    /// The job must stop: too many failures, or another writer owns our checkpoint ids.
    Fail(JobFailure),
}

/// Why the coordinator stops the job. Each is [`ErrorKind::Retryable`]: a new attempt starts
/// from the latest completed checkpoint (or, for a stale attempt, the newer one goes on).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// More consecutive checkpoints failed than the job tolerates.
    #[error(
        "{failures} consecutive checkpoint failures exceed tolerableFailures={tolerable} (last: checkpoint {checkpoint}: {reason})"
    )]
    TooManyFailures {
        /// Consecutive failures.
        failures: u32,
        /// The job's `tolerableFailures`.
        tolerable: u32,
        /// The last failed checkpoint.
        checkpoint: CheckpointId,
        /// Why it failed.
        reason: String,
    },
    /// The checkpoint of a stop-with-savepoint failed; its sources stopped at the barrier.
    #[error("stop-with-savepoint failed: checkpoint {checkpoint}: {reason}")]
    StopSavepointFailed {
        /// The savepoint's checkpoint.
        checkpoint: CheckpointId,
        /// Why it failed.
        reason: String,
    },
    /// Another attempt of this job published one of this attempt's checkpoint ids: this
    /// attempt is stale.
    #[error("{reason}")]
    Superseded {
        /// The checkpoint id another attempt owns.
        checkpoint: CheckpointId,
        /// What the publish said.
        reason: String,
    },
}

impl JobFailure {
    /// What the failure means for the run (see [`crate::error`]).
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Retryable
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Pending {
    kind: BarrierKind,
    triggered_ms: u64,
    acks: Vec<TaskAck>,
    acked: BTreeSet<TaskId>,
    publishing: bool,
}

/// Coordinator state (ordered sets, so that `Debug` output is deterministic: the model checker
/// fingerprints it).
#[derive(Clone, Debug, PartialEq)]
pub struct Coordinator {
    cfg: CoordinatorConfig,
    tasks: usize,
    sources: usize,
    next_id: CheckpointId,
    pending: BTreeMap<CheckpointId, Pending>,
    last_trigger_ms: Option<u64>,
    last_complete_ms: Option<u64>,
    failures: u32,
    finished_sources: BTreeSet<TaskId>,
    savepoint_wanted: Option<BarrierKind>,
    stopping: bool,
    ended: bool,
}

impl Coordinator {
    /// A coordinator for `tasks` tasks of which `sources` are source tasks; the first
    /// checkpoint gets `first_id`.
    pub fn new(cfg: CoordinatorConfig, tasks: usize, sources: usize, first_id: CheckpointId) -> Coordinator {
        Coordinator {
            cfg,
            tasks,
            sources,
            next_id: first_id,
            pending: BTreeMap::new(),
            last_trigger_ms: None,
            last_complete_ms: None,
            failures: 0,
            finished_sources: BTreeSet::new(),
            savepoint_wanted: None,
            stopping: false,
            ended: false,
        }
    }

    /// Checkpoints in flight.
    pub fn in_flight(&self) -> Vec<CheckpointId> {
        self.pending.keys().copied().collect()
    }

    /// Consecutive failed checkpoints.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// The job is being cancelled: nothing triggers any more, and every checkpoint in flight
    /// whose manifest is not being published is aborted (not counted as a failure). Returns
    /// the aborts; the checkpoints still in flight afterwards are those being published —
    /// their `Published`/`PublishFailed` still arrive and complete or abort them.
    pub fn cancel(&mut self) -> Vec<Action> {
        self.ended = true;
        self.savepoint_wanted = None;
        let idle: Vec<CheckpointId> = self.pending.iter().filter(|(_, p)| !p.publishing).map(|(id, _)| *id).collect();
        idle.into_iter()
            .map(|id| {
                self.pending.remove(&id);
                Action::Abort(id, "the job is cancelled".into())
            })
            .collect()
    }

    fn all_sources_finished(&self) -> bool {
        self.finished_sources.len() >= self.sources
    }

    fn fail_checkpoint(&mut self, id: CheckpointId, reason: String, out: &mut Vec<Action>) {
        let Some(p) = self.pending.remove(&id) else { return };
        if p.kind == BarrierKind::StopSavepoint {
            // Sources stopped at the barrier; without the savepoint the job cannot go on safely
            // in this run: fail it, so that it restarts from its last checkpoint.
            self.ended = true;
            out.push(Action::Abort(id, reason.clone()));
            out.push(Action::Fail(JobFailure::StopSavepointFailed { checkpoint: id, reason }));
            return;
        }
        self.failures += 1;
        out.push(Action::Abort(id, reason.clone()));
        if self.failures > self.cfg.tolerable_failures {
            self.ended = true;
            out.push(Action::Fail(JobFailure::TooManyFailures {
                failures: self.failures,
                tolerable: self.cfg.tolerable_failures,
                checkpoint: id,
                reason,
            }));
        }
    }

    fn maybe_trigger(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.ended || self.stopping || self.pending.len() >= self.cfg.max_concurrent.max(1) {
            return;
        }
        let finishing = self.all_sources_finished();
        if finishing && self.cfg.interval_ms.is_none() {
            self.ended = true;
            out.push(Action::EndInput);
            return;
        }
        if finishing && self.pending.values().any(|p| p.kind == BarrierKind::Final) {
            return;
        }
        let paused = self.last_complete_ms.is_some_and(|t| now < t + self.cfg.min_pause_ms);
        let due = match (self.cfg.interval_ms, self.last_trigger_ms) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(i), Some(t)) => now >= t + i,
        };
        let kind = if finishing {
            BarrierKind::Final
        } else if let Some(k) = self.savepoint_wanted {
            k
        } else if due {
            BarrierKind::Checkpoint
        } else {
            return;
        };
        if paused && !kind.is_savepoint() {
            return;
        }
        if kind.is_savepoint() {
            self.savepoint_wanted = None;
        }
        if kind == BarrierKind::StopSavepoint {
            self.stopping = true;
        }
        let id = self.next_id;
        self.next_id = id.next();
        self.last_trigger_ms = Some(now);
        self.pending.insert(
            id,
            Pending { kind, triggered_ms: now, acks: Vec::new(), acked: BTreeSet::new(), publishing: false },
        );
        out.push(Action::Trigger(id, kind));
    }

    /// Feeds one input at time `now` (milliseconds on any monotonic clock).
    pub fn step(&mut self, input: Input, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Tick => {
                let expired: Vec<CheckpointId> = self
                    .pending
                    .iter()
                    .filter(|(_, p)| !p.publishing && now >= p.triggered_ms + self.cfg.timeout_ms)
                    .map(|(id, _)| *id)
                    .collect();
                for id in expired {
                    self.fail_checkpoint(id, format!("timed out after {} ms", self.cfg.timeout_ms), &mut out);
                }
            }
            Input::Ack(ack) => {
                let tasks = self.tasks;
                if let Some(p) = self.pending.get_mut(&ack.checkpoint) {
                    let id = ack.checkpoint;
                    if p.acked.insert(ack.task) {
                        p.acks.push(ack);
                    }
                    if p.acked.len() == tasks && !p.publishing {
                        p.publishing = true;
                        let acks = std::mem::take(&mut p.acks);
                        out.push(Action::Publish { id, kind: p.kind, triggered_ms: p.triggered_ms, acks });
                    }
                }
            }
            Input::Decline(id, reason) => self.fail_checkpoint(id, reason, &mut out),
            Input::SourceFinished(task) => {
                self.finished_sources.insert(task);
            }
            Input::SavepointRequested { stop } => {
                let kind = if stop { BarrierKind::StopSavepoint } else { BarrierKind::Savepoint };
                if self.savepoint_wanted != Some(BarrierKind::StopSavepoint) {
                    self.savepoint_wanted = Some(kind);
                }
            }
            Input::Published(id) => {
                if let Some(p) = self.pending.remove(&id) {
                    // Older checkpoints still in flight are subsumed by this one.
                    let older: Vec<CheckpointId> = self.pending.range(..id).map(|(k, _)| *k).collect();
                    for o in older {
                        self.pending.remove(&o);
                        out.push(Action::Abort(o, format!("subsumed by checkpoint {id}")));
                    }
                    self.failures = 0;
                    self.last_complete_ms = Some(now);
                    out.push(Action::NotifyComplete(id, p.kind));
                    if matches!(p.kind, BarrierKind::Final | BarrierKind::StopSavepoint) {
                        self.ended = true;
                        out.push(Action::EndInput);
                    }
                }
            }
            Input::PublishFailed(id, reason, fatal) => {
                if fatal {
                    self.pending.remove(&id);
                    self.ended = true;
                    out.push(Action::Fail(JobFailure::Superseded { checkpoint: id, reason }));
                } else {
                    self.fail_checkpoint(id, reason, &mut out);
                }
            }
        }
        self.maybe_trigger(now, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CoordinatorConfig {
        CoordinatorConfig {
            interval_ms: Some(100),
            timeout_ms: 1000,
            min_pause_ms: 0,
            max_concurrent: 1,
            tolerable_failures: 1,
        }
    }

    fn ack(id: u64, chain: usize) -> Input {
        Input::Ack(TaskAck {
            checkpoint: CheckpointId(id),
            task: TaskId { chain, subtask: 0 },
            states: vec![],
            alignment_us: 0,
            records: 0,
        })
    }

    #[test]
    fn publishes_only_after_every_task_acked_and_notifies_only_after_publish() {
        let mut c = Coordinator::new(cfg(), 2, 1, CheckpointId(5));
        assert_eq!(c.step(Input::Tick, 0), vec![Action::Trigger(CheckpointId(5), BarrierKind::Checkpoint)]);
        assert_eq!(c.step(Input::Tick, 150), vec![], "max_concurrent = 1");
        assert!(c.step(ack(5, 0), 160).is_empty());
        assert!(c.step(ack(5, 0), 161).is_empty(), "a duplicate ack counts once");
        let actions = c.step(ack(5, 1), 170);
        assert!(matches!(&actions[0], Action::Publish { id: CheckpointId(5), acks, .. } if acks.len() == 2));
        let actions = c.step(Input::Published(CheckpointId(5)), 180);
        assert_eq!(actions[0], Action::NotifyComplete(CheckpointId(5), BarrierKind::Checkpoint));
        assert_eq!(actions[1], Action::Trigger(CheckpointId(6), BarrierKind::Checkpoint));
    }

    #[test]
    fn timeouts_and_declines_abort_and_too_many_fail_the_job() {
        let mut c = Coordinator::new(cfg(), 1, 1, CheckpointId(1));
        c.step(Input::Tick, 0);
        let a = c.step(Input::Tick, 1000);
        assert!(matches!(a[0], Action::Abort(CheckpointId(1), _)));
        assert!(matches!(a[1], Action::Trigger(CheckpointId(2), _)), "the job goes on");
        let a = c.step(Input::Decline(CheckpointId(2), "storage down".into()), 1001);
        assert!(matches!(a[0], Action::Abort(CheckpointId(2), _)));
        assert!(matches!(&a[1], Action::Fail(m) if m.to_string().contains("storage down")));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut c = Coordinator::new(cfg(), 1, 1, CheckpointId(1));
        c.step(Input::Tick, 0);
        c.step(Input::Decline(CheckpointId(1), "x".into()), 1);
        c.step(Input::Tick, 200);
        c.step(ack(2, 0), 201);
        c.step(Input::Published(CheckpointId(2)), 202);
        assert_eq!(c.consecutive_failures(), 0);
    }

    #[test]
    fn finished_sources_lead_to_a_final_checkpoint_then_end_of_input() {
        let mut c = Coordinator::new(cfg(), 1, 1, CheckpointId(1));
        c.step(Input::Tick, 0);
        let a = c.step(Input::SourceFinished(TaskId { chain: 0, subtask: 0 }), 10);
        assert!(a.is_empty(), "waits for the checkpoint in flight");
        c.step(ack(1, 0), 11);
        let a = c.step(Input::Published(CheckpointId(1)), 12);
        assert_eq!(a[1], Action::Trigger(CheckpointId(2), BarrierKind::Final));
        c.step(ack(2, 0), 13);
        let a = c.step(Input::Published(CheckpointId(2)), 14);
        assert_eq!(a, vec![Action::NotifyComplete(CheckpointId(2), BarrierKind::Final), Action::EndInput]);
        assert!(c.step(Input::Tick, 10_000).is_empty(), "nothing after the end");
    }

    #[test]
    fn a_savepoint_jumps_the_interval_and_a_stop_savepoint_ends_the_job() {
        let mut c = Coordinator::new(cfg(), 1, 1, CheckpointId(1));
        c.step(Input::Tick, 0);
        c.step(ack(1, 0), 1);
        c.step(Input::Published(CheckpointId(1)), 2);
        let a = c.step(Input::SavepointRequested { stop: false }, 3);
        assert_eq!(a, vec![Action::Trigger(CheckpointId(2), BarrierKind::Savepoint)]);
        c.step(ack(2, 0), 4);
        c.step(Input::Published(CheckpointId(2)), 5);
        let a = c.step(Input::SavepointRequested { stop: true }, 6);
        assert_eq!(a, vec![Action::Trigger(CheckpointId(3), BarrierKind::StopSavepoint)]);
        assert!(c.step(Input::Tick, 500).is_empty(), "no checkpoint after a stop barrier");
        c.step(ack(3, 0), 501);
        let a = c.step(Input::Published(CheckpointId(3)), 502);
        assert_eq!(a, vec![Action::NotifyComplete(CheckpointId(3), BarrierKind::StopSavepoint), Action::EndInput]);
    }

    #[test]
    fn cancel_aborts_what_is_not_publishing_and_lets_a_publish_settle() {
        let cfg = CoordinatorConfig { max_concurrent: 2, interval_ms: Some(10), ..cfg() };
        let mut c = Coordinator::new(cfg, 1, 1, CheckpointId(1));
        c.step(Input::Tick, 0);
        c.step(Input::Tick, 10);
        let a = c.step(ack(1, 0), 11);
        assert!(matches!(a[0], Action::Publish { id: CheckpointId(1), .. }));
        let a = c.cancel();
        assert_eq!(a, vec![Action::Abort(CheckpointId(2), "the job is cancelled".into())]);
        assert_eq!(c.in_flight(), vec![CheckpointId(1)], "the publish in progress stays");
        assert_eq!(c.consecutive_failures(), 0, "a cancel is no failure");
        let a = c.step(Input::Published(CheckpointId(1)), 12);
        assert_eq!(a, vec![Action::NotifyComplete(CheckpointId(1), BarrierKind::Checkpoint)], "no new trigger");
        assert!(c.in_flight().is_empty());
        assert!(c.step(Input::SavepointRequested { stop: false }, 500).is_empty(), "nothing triggers after");
    }

    #[test]
    fn a_lost_publish_race_is_fatal() {
        let mut c = Coordinator::new(cfg(), 1, 1, CheckpointId(1));
        c.step(Input::Tick, 0);
        c.step(ack(1, 0), 1);
        let a = c.step(Input::PublishFailed(CheckpointId(1), "exists".into(), true), 2);
        let stale = JobFailure::Superseded { checkpoint: CheckpointId(1), reason: "exists".into() };
        assert_eq!(a, vec![Action::Fail(stale)], "a zombie stops triggering");
    }

    #[test]
    fn without_checkpoints_finished_sources_end_input_at_once() {
        let cfg = CoordinatorConfig { interval_ms: None, ..cfg() };
        let mut c = Coordinator::new(cfg, 2, 2, CheckpointId(1));
        assert!(c.step(Input::SourceFinished(TaskId { chain: 0, subtask: 0 }), 0).is_empty());
        assert_eq!(c.step(Input::SourceFinished(TaskId { chain: 0, subtask: 1 }), 0), vec![Action::EndInput]);
    }
}
