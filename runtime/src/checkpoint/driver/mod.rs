//! The coordinator's I/O loop: feeds task events, publish results and clock ticks into the
//! pure [`Coordinator`] and carries out its actions.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_crds::CheckpointId;
use sluice_crds::contract::job_config::StorageSpec;
use sluice_crds::contract::manifest::{Manifest, SnapshotKind};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::completed;
use super::coordinator::{Action, Coordinator, Input, JobFailure};
use super::publish::{PublishError, build_manifest, now_ms, publish};
use super::retention::sweep;
use super::savepoint::SavepointError;
use crate::engine::cancel::Cancellation;
use crate::engine::message::{BarrierKind, TaskAck, TaskControl, TaskEvent, TaskId};
use crate::fault::Faults;
use crate::storage::SharedStore;
use crate::storage::layout::checkpoint_state_prefix;

mod commands;
mod history;
use commands::Cancelling;
pub use commands::{DriverCommand, SavepointListener};
pub use history::CheckpointHistory;

/// A completed checkpoint, as reported in status and progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedCheckpoint {
    /// Checkpoint id.
    pub id: u64,
    /// Completion time, ms since the epoch.
    pub completed_at_ms: u64,
    /// Trigger → complete, milliseconds.
    pub duration_ms: u64,
    /// Bytes of state the manifest references.
    pub size_bytes: u64,
    /// Manifest location.
    pub location: String,
}

/// Checkpoint statistics of the running job.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckpointStats {
    /// Completed checkpoints.
    pub completed: u64,
    /// Failed or aborted checkpoints.
    pub failed: u64,
    /// The latest completed one.
    pub latest: Option<CompletedCheckpoint>,
    /// Ids in flight.
    pub in_progress: Vec<u64>,
    /// Failures since the last completed checkpoint.
    pub consecutive_failures: u32,
    /// What the last retention sweep found (live / shared / orphan bytes).
    pub storage: Option<super::retention::SweepReport>,
    /// Why the last checkpoint failed.
    pub last_failure: Option<String>,
    /// Durations of every completed checkpoint (ms), for percentiles.
    #[serde(skip)]
    pub durations_ms: Vec<u64>,
    /// Trigger-to-completion seconds of the checkpoints counted in `completed` (updated with it,
    /// under the same lock, so a scrape sees its count equal `completed`).
    #[serde(skip)]
    pub duration_histogram: DurationHistogram,
    /// Durations (ms) of published checkpoints not yet counted complete, by id.
    #[serde(skip)]
    pub(crate) published: Vec<(u64, u64)>,
    /// The last checkpoints of this run, for the control endpoint's history.
    #[serde(skip)]
    pub history: CheckpointHistory,
}

/// The checkpoint-duration histogram (seconds).
#[derive(Clone, Debug)]
pub struct DurationHistogram(pub prometheus_client::metrics::histogram::Histogram);

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram(crate::engine::metrics::checkpoint_duration_histogram())
    }
}

impl CheckpointStats {
    /// Counts checkpoint `id` complete, observing its duration.
    fn count_completed(&mut self, id: u64) {
        self.completed += 1;
        if let Some(i) = self.published.iter().position(|(p, _)| *p == id) {
            let (_, ms) = self.published.swap_remove(i);
            self.duration_histogram.0.observe(ms as f64 / 1000.0);
        }
    }
}

/// Shared, rarely-updated checkpoint statistics.
pub type SharedStats = Arc<Mutex<CheckpointStats>>;

/// Locks the stats (a poisoned lock still holds valid counters).
pub fn stats(s: &SharedStats) -> std::sync::MutexGuard<'_, CheckpointStats> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a task's commands go: its own channel, or — a task in another worker process — that
/// worker's one channel, tagged with the task, so that the worker receives every command in the
/// order the driver sent them (a completion for a sink before the end of input of its source).
#[derive(Clone, Debug)]
pub enum ControlSender {
    /// The task's own channel.
    Local(mpsc::UnboundedSender<TaskControl>),
    /// Its worker's channel.
    Tagged(TaskId, mpsc::UnboundedSender<(TaskId, TaskControl)>),
}

impl ControlSender {
    /// Sends `c`; `false` when the receiving side is gone.
    pub fn send(&self, c: TaskControl) -> bool {
        match self {
            ControlSender::Local(tx) => tx.send(c).is_ok(),
            ControlSender::Tagged(task, tx) => tx.send((*task, c)).is_ok(),
        }
    }
}

impl From<mpsc::UnboundedSender<TaskControl>> for ControlSender {
    fn from(tx: mpsc::UnboundedSender<TaskControl>) -> ControlSender {
        ControlSender::Local(tx)
    }
}

/// A task as the coordinator addresses it.
pub struct TaskHandle {
    /// The task.
    pub id: TaskId,
    /// Its control channel.
    pub control: ControlSender,
    /// Whether it runs a source.
    pub is_source: bool,
}

/// How a caller learns that a stop completed.
pub type StopReply = oneshot::Sender<Result<Option<String>, String>>;

/// A savepoint someone asked for.
struct SavepointRequest {
    /// Name (the control endpoint's id), also the default directory name.
    name: String,
    location: Option<String>,
    /// For stop-with-savepoint: where to report the savepoint's location.
    stop: Option<StopReply>,
}

/// Everything the loop needs.
pub struct Driver {
    /// The decisions.
    pub coordinator: Coordinator,
    /// Reports from tasks.
    pub events: mpsc::UnboundedReceiver<TaskEvent>,
    /// Every task.
    pub tasks: Vec<TaskHandle>,
    /// Checkpoint storage.
    pub store: Option<SharedStore>,
    /// Job name (in manifests).
    pub job: String,
    /// Key groups (in manifests).
    pub max_parallelism: u32,
    /// Completed checkpoints to keep.
    pub retained: usize,
    /// Fault plan.
    pub faults: Faults,
    /// Statistics for status and progress.
    pub stats: SharedStats,
    /// The storage block (savepoint default location and options).
    pub storage: Option<StorageSpec>,
    /// Told how savepoints ended (the control endpoint, when one serves this job).
    pub listener: Option<Arc<dyn SavepointListener>>,
    /// Requests from outside (the control endpoint, signals).
    pub commands: Option<mpsc::UnboundedReceiver<DriverCommand>>,
    /// Savepoints asked for and not yet triggered.
    queued: VecDeque<SavepointRequest>,
    /// Savepoints triggered, by checkpoint.
    in_flight: HashMap<CheckpointId, Vec<SavepointRequest>>,
    /// Savepoint copies running.
    copies: JoinSet<()>,
    /// The flag tasks watch for a cancel.
    cancel: Arc<Cancellation>,
    /// A stop was accepted: no other stop or savepoint is.
    stopping: bool,
    /// The newest checkpoint this run completed (its transactions are never aborted).
    last_completed: Option<CheckpointId>,
    /// This run's id, recorded in every manifest it publishes.
    run_id: Option<String>,
    /// Records counted before this run (the restored manifest's `records`, 0 for a fresh
    /// start); `None` when the restored manifest has no count (an older runtime wrote it).
    records_before: Option<u64>,
}

/// Why the loop ended without an error.
pub enum DriverExit {
    /// Every task finished.
    Done,
    /// A stop without savepoint was asked and every task has ended: answer it.
    Cancel(StopReply),
}

async fn next_command(commands: &mut Option<mpsc::UnboundedReceiver<DriverCommand>>) -> DriverCommand {
    match commands {
        Some(rx) => match rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Driver {
    /// A driver; the fields after `stats` have defaults that [`Driver::with_commands`] sets.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        coordinator: Coordinator,
        events: mpsc::UnboundedReceiver<TaskEvent>,
        tasks: Vec<TaskHandle>,
        store: Option<SharedStore>,
        job: String,
        max_parallelism: u32,
        retained: usize,
        faults: Faults,
        stats: SharedStats,
    ) -> Driver {
        Driver {
            coordinator,
            events,
            tasks,
            store,
            job,
            max_parallelism,
            retained,
            faults,
            stats,
            storage: None,
            listener: None,
            commands: None,
            queued: VecDeque::new(),
            in_flight: HashMap::new(),
            copies: JoinSet::new(),
            cancel: Arc::default(),
            stopping: false,
            last_completed: None,
            run_id: None,
            records_before: Some(0),
        }
    }

    /// Records `run_id` in every manifest this driver publishes.
    pub fn with_run_id(mut self, run_id: &str) -> Driver {
        self.run_id = Some(run_id.to_string());
        self
    }

    /// Carries the restored checkpoint's record count into every manifest this driver
    /// publishes (`None`: the restored manifest had none, so none is written).
    pub fn with_records_before(mut self, records: Option<u64>) -> Driver {
        self.records_before = records;
        self
    }

    /// Shares the cancel flag with the tasks (their `TaskEnv::cancel`).
    pub fn with_cancellation(mut self, cancel: Arc<Cancellation>) -> Driver {
        self.cancel = cancel;
        self
    }

    /// Attaches the requests the driver answers, who hears of savepoints, and the storage block
    /// savepoints need.
    pub fn with_commands(
        mut self,
        storage: Option<StorageSpec>,
        commands: Option<mpsc::UnboundedReceiver<DriverCommand>>,
        listener: Option<Arc<dyn SavepointListener>>,
    ) -> Driver {
        self.commands = commands;
        self.storage = storage;
        self.listener = listener;
        self
    }

    fn send_all(&self, c: TaskControl, sources_only: bool) {
        for t in &self.tasks {
            if !sources_only || t.is_source {
                // A task that already ended does not need to hear it.
                let _ = t.control.send(c);
            }
        }
    }

    /// Runs until every task is gone (`Ok`) or the coordinator decides the job must fail.
    pub async fn run(mut self) -> Result<DriverExit, JobFailure> {
        let started = Instant::now();
        let (results_tx, mut results) = mpsc::unbounded_channel::<Input>();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cancelling: Option<Cancelling> = None;
        loop {
            let input = tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(TaskEvent::Ack(a)) => Input::Ack(a),
                    Some(TaskEvent::Decline { checkpoint, task, reason }) => {
                        tracing::warn!(%checkpoint, %task, %reason, "task declined checkpoint");
                        Input::Decline(checkpoint, format!("task {task}: {reason}"))
                    }
                    Some(TaskEvent::SourceFinished(t)) => Input::SourceFinished(t),
                    None => {
                        // Every task is gone: let savepoint copies finish, then end.
                        while self.copies.join_next().await.is_some() {}
                        self.fail_savepoints("the job ended before the savepoint was taken", true);
                        return Ok(match cancelling {
                            Some(c) => DriverExit::Cancel(c.reply),
                            None => DriverExit::Done,
                        });
                    }
                },
                Some(r) = results.recv() => r,
                cmd = next_command(&mut self.commands) => match self.on_command(cmd) {
                    Ok(Some(input)) => input,
                    Ok(None) => continue,
                    Err(reply) => {
                        cancelling = Some(self.start_cancel(reply, &results_tx, started)?);
                        Input::Tick
                    }
                },
                _ = tick.tick() => Input::Tick,
            };
            let now = started.elapsed().as_millis() as u64;
            for action in self.coordinator.step(input, now) {
                self.execute(action, &results_tx, started)?;
            }
            if let Some(c) = cancelling.as_mut() {
                self.signal_cancel(c);
            }
            let mut s = stats(&self.stats);
            s.in_progress = self.coordinator.in_flight().iter().map(|c| c.0).collect();
            s.consecutive_failures = self.coordinator.consecutive_failures();
        }
    }

    fn execute(
        &mut self,
        action: Action,
        results: &mpsc::UnboundedSender<Input>,
        started: Instant,
    ) -> Result<(), JobFailure> {
        match action {
            Action::Trigger(id, kind) => {
                tracing::debug!(checkpoint = %id, ?kind, "triggering checkpoint");
                if kind.is_savepoint() {
                    let requests: Vec<SavepointRequest> = self.queued.drain(..).collect();
                    self.in_flight.insert(id, requests);
                }
                stats(&self.stats).history.triggered(id, kind, now_ms());
                self.send_all(TaskControl::Trigger(crate::engine::Barrier { id, kind }), true);
            }
            Action::Publish { id, kind, triggered_ms, acks } => {
                self.spawn_publish(id, kind, triggered_ms, acks, results, started);
            }
            Action::NotifyComplete(id, kind) => {
                self.faults.hit("coordinator.after_publish");
                stats(&self.stats).count_completed(id.0);
                self.last_completed = self.last_completed.max(Some(id));
                tracing::debug!(checkpoint = %id, ?kind, "checkpoint complete");
                self.send_all(TaskControl::Complete(id), false);
                if kind != BarrierKind::Final {
                    self.spawn_sweep(); // the job sweeps once more, awaited, after the final one
                }
                if kind.is_savepoint() {
                    self.finish_savepoints(id, Ok(()));
                }
            }
            Action::Abort(id, reason) => self.abort(id, reason),
            Action::EndInput => self.send_all(TaskControl::EndInput, true),
            Action::Fail(reason) => return Err(reason),
        }
        Ok(())
    }

    /// Builds checkpoint `id`'s manifest from the tasks' acks and publishes it in the
    /// background; the answer comes back on `results`.
    fn spawn_publish(
        &self,
        id: CheckpointId,
        kind: BarrierKind,
        triggered_ms: u64,
        acks: Vec<TaskAck>,
        results: &mpsc::UnboundedSender<Input>,
        started: Instant,
    ) {
        let Some(store) = self.store.clone() else {
            let _ = results.send(Input::PublishFailed(id, "no checkpoint storage".into(), false));
            return;
        };
        let snapshot_kind =
            if kind == BarrierKind::Savepoint { SnapshotKind::Savepoint } else { SnapshotKind::Checkpoint };
        let trigger_epoch_ms =
            now_ms().saturating_sub((started.elapsed().as_millis() as u64).saturating_sub(triggered_ms));
        let records = self.records_before.map(|before| before + acks.iter().map(|a| a.records).sum::<u64>());
        let mut manifest = build_manifest(&self.job, id, snapshot_kind, trigger_epoch_ms, self.max_parallelism, acks);
        manifest.run_id = self.run_id.clone();
        manifest.records = records;
        let (results, faults, shared) = (results.clone(), self.faults.clone(), self.stats.clone());
        tokio::spawn(async move {
            faults.hit("coordinator.before_publish");
            let _ = results.send(publish_and_record(store, manifest, id, &shared).await);
        });
    }

    /// Checkpoint `id` failed: counted, its savepoint requests answered, the tasks told, its
    /// files deleted.
    fn abort(&mut self, id: CheckpointId, reason: String) {
        tracing::warn!(checkpoint = %id, %reason, "checkpoint aborted");
        {
            let mut s = stats(&self.stats);
            s.failed += 1;
            s.last_failure = Some(format!("checkpoint {id}: {reason}"));
            s.history.ended(id, &reason, now_ms());
        }
        self.finish_savepoints(id, Err(SavepointError::NotTaken(reason.clone())));
        self.send_all(TaskControl::Abort(id), false);
        self.spawn_delete(id);
    }

    fn spawn_sweep(&self) {
        let Some(store) = self.store.clone() else { return };
        let (retained, faults, shared) = (self.retained, self.faults.clone(), self.stats.clone());
        tokio::spawn(async move {
            match sweep(store.as_ref(), retained, &faults).await {
                Ok(r) => {
                    if r.files_deleted + r.manifests_deleted > 0 {
                        tracing::debug!(?r, "retention sweep");
                    }
                    stats(&shared).storage = Some(r);
                }
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; will retry after the next checkpoint"),
            }
        });
    }

    fn spawn_delete(&self, id: CheckpointId) {
        let Some(store) = self.store.clone() else { return };
        tokio::spawn(async move {
            let prefix = checkpoint_state_prefix(id);
            if let Ok(objs) = store.list(&prefix).await {
                let keys: Vec<String> = objs.into_iter().map(|o| o.key).collect();
                if let Err(e) = store.delete(&keys).await {
                    tracing::debug!(error = %e, checkpoint = %id, "could not delete files of aborted checkpoint (the sweep will)");
                }
            }
        });
    }
}

/// Publishes `manifest`; when it is published, records the completion note and the stats.
/// Returns what the driver hears.
async fn publish_and_record(store: SharedStore, manifest: Manifest, id: CheckpointId, shared: &SharedStats) -> Input {
    let location = crate::storage::layout::manifest_uri(&store.describe(), id);
    match publish(store.as_ref(), &manifest).await {
        Ok(()) => {
            // Before any sink hears of the completion (see `completed`).
            if let Err(e) = completed::record(store.as_ref(), id).await {
                tracing::warn!(checkpoint = %id, error = %e, "checkpoint complete, but the completion note was not written: removing its manifest later would go unnoticed");
            }
            let mut s = stats(shared);
            let duration = manifest.completed_at_ms.saturating_sub(manifest.triggered_at_ms);
            s.durations_ms.push(duration);
            s.published.push((id.0, duration));
            let latest = CompletedCheckpoint {
                id: id.0,
                completed_at_ms: manifest.completed_at_ms,
                duration_ms: duration,
                size_bytes: manifest.state_bytes(),
                location,
            };
            s.history.completed(&latest);
            s.latest = Some(latest);
            Input::Published(id)
        }
        Err(e @ PublishError::AlreadyPublished(_)) => Input::PublishFailed(id, e.to_string(), true),
        Err(e) => Input::PublishFailed(id, e.to_string(), false),
    }
}
