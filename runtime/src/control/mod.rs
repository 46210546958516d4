//! The runtime's control endpoint (`sluice_crds::contract::control` is the wire contract): what
//! the operator and people use to watch a job, take savepoints and stop it.

pub mod body;
pub mod client;
pub mod http;
pub mod job_view;
pub mod location;
pub mod metrics;
pub mod savepoints;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sluice_crds::contract::control::{CONTROL_VERSION, History, JobState, SavepointStatus, StopKind};
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::driver::stats;
use crate::checkpoint::publish::now_ms;
use crate::checkpoint::savepoint::SavepointError;
use crate::job::JobHandles;
use savepoints::SavepointBook;

/// What the control endpoint asks of the job: the driver's plain commands.
pub use crate::checkpoint::driver::DriverCommand as ControlCommand;

/// How long an answered stop with savepoint waits for the job to end before it answers anyway.
const STOP_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a stop (or a savepoint during one) was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopError {
    /// Another stop is in progress.
    #[error("a stop is already in progress ({0})")]
    InProgress(StopKind),
    /// The job no longer runs.
    #[error("the job is not running (state {0:?})")]
    NotRunning(JobState),
    /// The stop was tried and failed.
    #[error("{0}")]
    Failed(String),
}

/// What the endpoint shows and where its commands go. Created before the job starts.
pub struct ControlState {
    /// The run's id.
    pub run_id: String,
    ready: AtomicBool,
    state: Mutex<JobState>,
    /// Becomes true once the job no longer runs.
    ended: tokio::sync::watch::Sender<bool>,
    /// The checkpoint or savepoint the run restored from.
    pub restored_from: Mutex<Option<String>>,
    /// Live counters, once the job is wired.
    pub handles: OnceLock<JobHandles>,
    savepoints: Mutex<SavepointBook>,
    /// The stop in progress (or done): at most one stop runs.
    stop: Mutex<Option<StopKind>>,
    next_savepoint: Mutex<u64>,
    /// Recent samples of the job's counters, for the rates of `GET /v1/job`.
    rates: Mutex<job_view::RateWindow>,
    commands: mpsc::UnboundedSender<ControlCommand>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<ControlCommand>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ControlState {
    /// A fresh state for run `run_id`.
    pub fn new(run_id: &str) -> Arc<ControlState> {
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(ControlState {
            run_id: run_id.to_string(),
            ready: AtomicBool::new(false),
            state: Mutex::new(JobState::Running),
            ended: tokio::sync::watch::Sender::new(false),
            restored_from: Mutex::new(None),
            handles: OnceLock::new(),
            savepoints: Mutex::new(SavepointBook::default()),
            stop: Mutex::new(None),
            next_savepoint: Mutex::new(1),
            rates: Mutex::default(),
            commands: tx,
            receiver: Mutex::new(Some(rx)),
        })
    }

    /// Whether the job restored its state and runs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the job ready (restored and running) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// The job's overall state.
    pub fn job_state(&self) -> JobState {
        *lock(&self.state)
    }

    /// Sets the job's overall state. Once the job no longer runs, a savepoint still pending
    /// never completes: it is marked failed.
    pub fn set_job_state(&self, s: JobState) {
        *lock(&self.state) = s;
        self.ended.send_replace(s != JobState::Running);
        if s != JobState::Running {
            let reason = format!("the job ended ({s:?}) before the savepoint completed");
            lock(&self.savepoints).fail_pending(&reason, now_ms());
        }
    }

    /// The stop in progress, if any.
    pub fn stop_in_progress(&self) -> Option<StopKind> {
        *lock(&self.stop)
    }

    /// Takes the command receiver (the job's coordinator does, once).
    pub fn take_commands(&self) -> Option<mpsc::UnboundedReceiver<ControlCommand>> {
        lock(&self.receiver).take()
    }

    /// Registers a savepoint request and forwards it to the coordinator; refused while a stop
    /// is in progress (the stop would leave it pending forever).
    pub fn request_savepoint(&self, location: Option<String>) -> Result<SavepointStatus, StopError> {
        let stop = lock(&self.stop);
        if let Some(kind) = *stop {
            return Err(StopError::InProgress(kind));
        }
        let id = {
            let mut n = lock(&self.next_savepoint);
            let id = format!("sp-{}-{}", self.run_id, *n);
            *n += 1;
            id
        };
        let status = lock(&self.savepoints).add(&id, now_ms());
        // Sent under the stop lock: the coordinator sees it before any stop.
        let sent = self.commands.send(ControlCommand::Savepoint { id: id.clone(), location });
        drop(stop);
        if sent.is_err() {
            self.finish_savepoint(&id, Err(SavepointError::NotTaken("the job is not running".into())));
            return Ok(self.savepoint(&id).unwrap_or(status));
        }
        Ok(status)
    }

    /// Asks the job to stop; resolves when it has, with the final savepoint's location. Exactly
    /// one stop runs: while one is in progress (or after the job ended) the others are refused.
    pub async fn stop(&self, kind: StopKind) -> Result<Option<String>, StopError> {
        let (reply, rx) = oneshot::channel();
        {
            let mut stop = lock(&self.stop);
            if let Some(current) = *stop {
                return Err(StopError::InProgress(current));
            }
            let state = self.job_state();
            if state != JobState::Running {
                return Err(StopError::NotRunning(state));
            }
            let savepoint = kind == StopKind::Savepoint;
            self.commands
                .send(ControlCommand::Stop { savepoint, reply })
                .map_err(|_| StopError::NotRunning(self.job_state()))?;
            *stop = Some(kind);
            if savepoint {
                lock(&self.savepoints).add(&self.stop_savepoint_id(), now_ms());
            }
        }
        let outcome = match rx.await {
            Ok(Ok(location)) if kind == StopKind::Cancel => return Ok(location),
            Ok(Ok(location)) => {
                // The savepoint is there; answer once the job ended too, so that whoever asked
                // reads the final state next (bounded: the answer must not hang on a stuck task).
                let mut ended = self.ended.subscribe();
                let _ = tokio::time::timeout(STOP_ANSWER_WAIT, ended.wait_for(|e| *e)).await;
                return Ok(location);
            }
            Ok(Err(e)) => e,
            Err(_) => "the job ended before it could stop as asked".to_string(),
        };
        if kind == StopKind::Savepoint {
            lock(&self.savepoints).finish(&self.stop_savepoint_id(), Err(outcome.clone()), now_ms());
        }
        // The job may go on (e.g. no storage for the savepoint): a later stop may try again.
        if self.job_state() == JobState::Running {
            *lock(&self.stop) = None;
        }
        Err(StopError::Failed(outcome))
    }

    /// The id under which a stop with savepoint appears among the savepoints (the name of
    /// the directory it writes by default).
    pub fn stop_savepoint_id(&self) -> String {
        sluice_storage::layout::stop_savepoint_name(&self.run_id)
    }

    /// A savepoint's status.
    pub fn savepoint(&self, id: &str) -> Option<SavepointStatus> {
        lock(&self.savepoints).get(id)
    }

    /// Records a savepoint's outcome: its location, or why it failed.
    pub fn finish_savepoint(&self, id: &str, outcome: Result<String, SavepointError>) {
        lock(&self.savepoints).finish(id, outcome.map_err(|e| e.to_string()), now_ms());
    }

    /// The samples the job view's rates are measured against.
    pub(crate) fn rates(&self) -> std::sync::MutexGuard<'_, job_view::RateWindow> {
        lock(&self.rates)
    }

    /// The run's recent checkpoints and savepoints, newest first.
    pub fn history(&self) -> History {
        let checkpoints = match self.handles.get() {
            Some(h) => stats(&h.stats).history.newest_first(),
            None => Vec::new(),
        };
        History {
            version: CONTROL_VERSION,
            run_id: self.run_id.clone(),
            checkpoints,
            savepoints: lock(&self.savepoints).recent(),
        }
    }
}

impl crate::checkpoint::driver::SavepointListener for ControlState {
    fn savepoint_finished(&self, id: &str, outcome: Result<String, SavepointError>) {
        self.finish_savepoint(id, outcome);
    }
}

impl crate::job::RunObserver for ControlState {
    fn take_commands(&self) -> Option<mpsc::UnboundedReceiver<ControlCommand>> {
        ControlState::take_commands(self)
    }

    fn started(&self, handles: JobHandles, restored_from: Option<String>) {
        // The first sample: the job view's first rates are measured since the start.
        self.rates().baseline(std::time::Instant::now(), &job_view::totals(&handles));
        let _ = self.handles.set(handles);
        *lock(&self.restored_from) = restored_from;
        self.set_ready(true);
    }

    fn ended(&self, state: JobState) {
        self.set_ready(false);
        self.set_job_state(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::contract::control::SavepointState;

    #[tokio::test]
    async fn one_stop_runs_the_others_and_savepoints_get_a_conflict_naming_it() {
        let state = ControlState::new("r1");
        let mut commands = state.take_commands().expect("receiver");
        let first = tokio::spawn({
            let state = state.clone();
            async move { state.stop(StopKind::Cancel).await }
        });
        let Some(ControlCommand::Stop { savepoint: false, reply }) = commands.recv().await else {
            panic!("the coordinator gets the cancel")
        };
        assert_eq!(state.stop(StopKind::Savepoint).await, Err(StopError::InProgress(StopKind::Cancel)));
        assert_eq!(state.request_savepoint(None), Err(StopError::InProgress(StopKind::Cancel)));
        assert!(commands.try_recv().is_err(), "nothing else reaches the coordinator");
        reply.send(Ok(None)).expect("reply");
        assert_eq!(first.await.expect("join"), Ok(None));
        state.set_job_state(JobState::Cancelled);
        assert_eq!(state.stop(StopKind::Cancel).await, Err(StopError::InProgress(StopKind::Cancel)));
    }

    #[tokio::test]
    async fn a_stop_with_savepoint_answers_once_the_job_ended() {
        let state = ControlState::new("r1");
        let mut commands = state.take_commands().expect("receiver");
        let stopping = tokio::spawn({
            let state = state.clone();
            async move { state.stop(StopKind::Savepoint).await }
        });
        let Some(ControlCommand::Stop { savepoint: true, reply }) = commands.recv().await else { panic!("stop") };
        // As the driver does: the listener hears first, then the stop's reply.
        state.finish_savepoint(&state.stop_savepoint_id(), Ok("file:///sp".into()));
        reply.send(Ok(Some("file:///sp".into()))).expect("reply");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!stopping.is_finished(), "no answer while the job still runs");
        state.set_job_state(JobState::Finished);
        assert_eq!(stopping.await.expect("join"), Ok(Some("file:///sp".into())));
        let sp = state.savepoint(&state.stop_savepoint_id()).expect("listed");
        assert_eq!((sp.state, sp.location.as_deref()), (SavepointState::Completed, Some("file:///sp")));
    }

    #[tokio::test]
    async fn a_failed_stop_of_a_running_job_frees_the_way_for_another() {
        let state = ControlState::new("r1");
        let mut commands = state.take_commands().expect("receiver");
        let first = tokio::spawn({
            let state = state.clone();
            async move { state.stop(StopKind::Savepoint).await }
        });
        let Some(ControlCommand::Stop { reply, .. }) = commands.recv().await else { panic!("stop") };
        reply.send(Err("no storage".into())).expect("reply");
        assert_eq!(first.await.expect("join"), Err(StopError::Failed("no storage".into())));
        assert_eq!(state.stop_in_progress(), None);
    }

    #[test]
    fn savepoints_still_pending_when_the_job_ends_are_failed_with_a_reason() {
        let state = ControlState::new("r1");
        let _commands = state.take_commands();
        let sp = state.request_savepoint(None).expect("accepted");
        assert_eq!(sp.state, SavepointState::Pending);
        state.set_job_state(JobState::Cancelled);
        let after = state.savepoint(&sp.id).expect("known");
        assert_eq!(after.state, SavepointState::Failed);
        assert!(after.error.is_some_and(|e| e.contains("ended")));
    }
}
