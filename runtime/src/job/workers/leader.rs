//! Worker 0's side of the control connections: it tells the other workers where to restore
//! from, waits until they are wired, then stands in for their tasks. Each remote task gets a
//! proxy [`TaskHandle`] whose commands go over its worker's connection; each remote worker gets
//! one entry in the run's join set that ends when all its tasks ended (or with the first
//! failure it reports, or when it is lost); its tasks' events feed the driver's channel like
//! the local tasks' do.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::WorkerError;
use super::link::Link;
use super::placement::{is_source, tasks_of};
use super::protocol::{ControlMsg, RemoteFailure};
use crate::checkpoint::driver::{ControlSender, TaskHandle};
use crate::engine::cancel::Cancellation;
use crate::engine::message::{TaskControl, TaskEvent, TaskId};
use crate::engine::task::TaskError;
use crate::error::ErrorKind;
use crate::graph::PhysicalPlan;
use crate::job::wiring::Wired;
use crate::storage::layout::SAVEPOINT_MANIFEST;

/// Worker 0's connections to the other workers of the attempt.
pub struct Leader {
    links: Vec<Link>,
    count: usize,
    ready_timeout: Duration,
}

impl Leader {
    /// Worker 0 of `count` workers, connected to the others by `links`.
    pub(super) fn new(links: Vec<Link>, count: usize, ready_timeout: Duration) -> Leader {
        Leader { links, count, ready_timeout }
    }

    /// The restore point is chosen (`location`, as the restore reports it; `None` for a fresh
    /// start), older attempts are fenced and the sinks recovered: the other workers may load it.
    pub(in crate::job) fn start(&self, location: Option<&str>) {
        // A savepoint is restored by its directory.
        let restore = location.map(|l| l.strip_suffix(&format!("/{SAVEPOINT_MANIFEST}")).unwrap_or(l).to_string());
        for link in &self.links {
            let _ = link.tx.send(ControlMsg::Start { restore: restore.clone() });
        }
    }

    /// Waits until every other worker wired its tasks and reached its peers, then adds proxies
    /// for their tasks to `wired`, their events going to `events`.
    pub(in crate::job) async fn attach(
        &mut self,
        plan: &PhysicalPlan,
        pipeline: &sluice_crds::contract::pipeline::Pipeline,
        wired: &mut Wired,
        events: &mpsc::UnboundedSender<TaskEvent>,
        cancel: &Arc<Cancellation>,
    ) -> Result<(), WorkerError> {
        for link in &mut self.links {
            let worker = link.worker;
            match tokio::time::timeout(self.ready_timeout, link.rx.recv()).await {
                Ok(Some(Ok(ControlMsg::Ready))) => {}
                Ok(Some(Ok(ControlMsg::Ended(task, Some(f))))) => {
                    return Err(WorkerError::Lost { worker, reason: format!("task {task} failed: {}", f.message) });
                }
                Ok(Some(Ok(other))) => return Err(WorkerError::Protocol { worker, what: format!("{other:?}") }),
                Ok(Some(Err(reason))) => return Err(WorkerError::Lost { worker, reason }),
                Ok(None) => return Err(WorkerError::Lost { worker, reason: "its connection ended".into() }),
                Err(_) => return Err(WorkerError::NotReady { worker, within: self.ready_timeout }),
            }
        }
        for link in &mut self.links {
            let worker = link.worker;
            let tasks = tasks_of(plan, worker, self.count);
            // One channel per worker: its commands leave in the order the driver sent them.
            let (tx, rx) = mpsc::unbounded_channel();
            for &task in &tasks {
                let control = ControlSender::Tagged(task, tx.clone());
                wired.handles.push(TaskHandle { id: task, control, is_source: is_source(plan, pipeline, task) });
            }
            tokio::spawn(forward(rx, link.tx.clone(), cancel.clone()));
            let Some(&first) = tasks.first() else { continue };
            let (done_tx, done_rx) = oneshot::channel();
            let rx = std::mem::replace(&mut link.rx, mpsc::unbounded_channel().1);
            tokio::spawn(route(worker, rx, tasks.into_iter().collect(), events.clone(), done_tx));
            wired.tasks.spawn(async move {
                done_rx.await.unwrap_or_else(|_| Err(lost(worker, first, "its connection was dropped".into())))
            });
        }
        Ok(())
    }

    /// The run is over: tells every other worker, and gives the goodbyes a moment to leave.
    pub(super) async fn finish(self) {
        let mut writers = Vec::new();
        for link in self.links {
            let _ = link.tx.send(ControlMsg::Bye);
            writers.push(link.close());
        }
        for w in writers {
            let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
        }
    }
}

/// The error for a worker lost while `task` (one of its tasks) had not ended.
fn lost(worker: usize, task: TaskId, reason: String) -> TaskError {
    TaskError::Remote {
        task,
        kind: ErrorKind::Retryable,
        symptom: false,
        message: format!("worker {worker} was lost: {reason}"),
    }
}

/// Sends the proxy handles' commands to their tasks over their worker's connection, in the
/// order the driver sent them. A cancel first carries the cancel flag's setting, which the
/// remote worker sets before waking its tasks.
async fn forward(
    mut rx: mpsc::UnboundedReceiver<(TaskId, TaskControl)>,
    tx: mpsc::UnboundedSender<ControlMsg>,
    cancel: Arc<Cancellation>,
) {
    while let Some((task, c)) = rx.recv().await {
        if c == TaskControl::Cancel {
            let _ = tx.send(ControlMsg::Cancel(cancel.keep_up_to()));
        }
        if tx.send(ControlMsg::Control(task, c)).is_err() {
            return;
        }
    }
}

/// Hands a worker's task events to the driver and says how its tasks ended.
async fn route(
    worker: usize,
    mut rx: mpsc::UnboundedReceiver<Result<ControlMsg, String>>,
    mut running: BTreeSet<TaskId>,
    events: mpsc::UnboundedSender<TaskEvent>,
    done: oneshot::Sender<Result<(), TaskError>>,
) {
    let result = loop {
        let Some(&first) = running.first() else { break Ok(()) };
        match rx.recv().await {
            Some(Ok(ControlMsg::Event(e))) => {
                let _ = events.send(e);
            }
            Some(Ok(ControlMsg::Ended(task, None))) => {
                running.remove(&task);
            }
            Some(Ok(ControlMsg::Ended(task, Some(RemoteFailure { kind, symptom, message })))) => {
                break Err(TaskError::Remote { task, kind, symptom, message: format!("worker {worker}: {message}") });
            }
            Some(Ok(other)) => break Err(lost(worker, first, format!("unexpected control message {other:?}"))),
            Some(Err(reason)) => break Err(lost(worker, first, reason)),
            None => break Err(lost(worker, first, "its connection ended".into())),
        }
    };
    let _ = done.send(result);
}
