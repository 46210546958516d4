//! The runtime's control endpoint (`sluice_crds::contract::control` is the wire contract): what
//! the operator and people use to watch a job, take savepoints and stop it.

pub mod http;
pub mod metrics;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sluice_crds::contract::control::{JobState, SavepointState, SavepointStatus};
use tokio::sync::{mpsc, oneshot};

use crate::job::JobHandles;

/// A request from the endpoint to the checkpoint coordinator.
#[derive(Debug)]
pub enum ControlCommand {
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
        reply: oneshot::Sender<Result<Option<String>, String>>,
    },
}

/// What the endpoint shows and where its commands go. Created before the job starts.
pub struct ControlState {
    /// The run's id.
    pub run_id: String,
    ready: AtomicBool,
    state: Mutex<JobState>,
    /// The checkpoint or savepoint the run restored from.
    pub restored_from: Mutex<Option<String>>,
    /// Live counters, once the job is wired.
    pub handles: OnceLock<JobHandles>,
    savepoints: Mutex<BTreeMap<String, SavepointStatus>>,
    next_savepoint: Mutex<u64>,
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
            restored_from: Mutex::new(None),
            handles: OnceLock::new(),
            savepoints: Mutex::new(BTreeMap::new()),
            next_savepoint: Mutex::new(1),
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

    /// Sets the job's overall state.
    pub fn set_job_state(&self, s: JobState) {
        *lock(&self.state) = s;
    }

    /// Takes the command receiver (the job's coordinator does, once).
    pub fn take_commands(&self) -> Option<mpsc::UnboundedReceiver<ControlCommand>> {
        lock(&self.receiver).take()
    }

    /// Registers a savepoint request and forwards it to the coordinator.
    pub fn request_savepoint(&self, location: Option<String>) -> SavepointStatus {
        let id = {
            let mut n = lock(&self.next_savepoint);
            let id = format!("sp-{}-{}", self.run_id, *n);
            *n += 1;
            id
        };
        let status = SavepointStatus {
            version: sluice_crds::contract::control::CONTROL_VERSION,
            id: id.clone(),
            state: SavepointState::Pending,
            location: None,
            error: None,
        };
        lock(&self.savepoints).insert(id.clone(), status.clone());
        if self.commands.send(ControlCommand::Savepoint { id: id.clone(), location }).is_err() {
            self.finish_savepoint(&id, Err("the job is not running".into()));
            return self.savepoint(&id).unwrap_or(status);
        }
        status
    }

    /// Asks the job to stop; resolves when it has.
    pub async fn stop(&self, savepoint: bool) -> Result<Option<String>, String> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(ControlCommand::Stop { savepoint, reply })
            .map_err(|_| "the job is not running".to_string())?;
        rx.await.map_err(|_| "the job ended before it could stop as asked".to_string())?
    }

    /// A savepoint's status.
    pub fn savepoint(&self, id: &str) -> Option<SavepointStatus> {
        lock(&self.savepoints).get(id).cloned()
    }

    /// Records a savepoint's outcome: its location, or why it failed.
    pub fn finish_savepoint(&self, id: &str, outcome: Result<String, String>) {
        if let Some(s) = lock(&self.savepoints).get_mut(id) {
            match outcome {
                Ok(location) => {
                    s.state = SavepointState::Completed;
                    s.location = Some(location);
                }
                Err(e) => {
                    s.state = SavepointState::Failed;
                    s.error = Some(e);
                }
            }
        }
    }
}
