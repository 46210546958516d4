//! A worker other than worker 0: it waits for worker 0's word on where to restore from, wires
//! its share of the tasks, then carries worker 0's commands to them and their events and ends
//! back, until its tasks ended and worker 0 says goodbye — or fails when worker 0 is lost.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::link::Link;
use super::placement::placement;
use super::protocol::{ControlMsg, RemoteFailure};
use super::{WorkerError, WorkerSpec};
use crate::checkpoint::driver::ControlSender;
use crate::engine::cancel::Cancellation;
use crate::engine::message::TaskId;
use crate::engine::metrics::JobMetrics;
use crate::engine::net::NetExchange;
use crate::engine::task::TaskError;
use crate::graph::{JobShape, PhysicalPlan};
use crate::job::{JobError, RuntimeConfig, describe_task, recover, supervise, task_env, wiring};

/// Runs worker `spec.index`'s share of the job; `link` is its control connection to worker 0.
pub(super) async fn run(
    config: &RuntimeConfig,
    spec: &WorkerSpec,
    plan: &PhysicalPlan,
    exchange: NetExchange,
    mut link: Link,
) -> Result<(), JobError> {
    let restore = match link.rx.recv().await {
        Some(Ok(ControlMsg::Start { restore })) => restore,
        Some(Ok(ControlMsg::Bye)) => {
            return Err(WorkerError::LostCoordinator("it ended the attempt before it started".into()).into());
        }
        Some(Ok(other)) => return Err(WorkerError::Protocol { worker: 0, what: format!("{other:?}") }.into()),
        Some(Err(reason)) => return Err(WorkerError::LostCoordinator(reason).into()),
        None => return Err(WorkerError::LostCoordinator("its connection ended".into()).into()),
    };
    let (store, mut restore_plan) = recover::prepare_member(config, restore.as_deref()).await?;
    let shape = JobShape::new(&config.job.name, &config.job.pipeline, plan);
    let metrics = JobMetrics::new(shape.nodes.iter().map(|n| (n.id.clone(), n.parallelism)).collect());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let cancellation = Arc::new(Cancellation::default());
    let env = task_env(config, store, metrics, events_tx, cancellation.clone());
    let mut wired = wiring::Wired::default();
    let here = placement(plan, spec.index, spec.peers.len());
    let w = wiring::Wiring { config, plan, placement: &here, exchange: &exchange, env: env.clone() };
    wiring::wire(&w, &mut restore_plan, &mut wired)?;
    drop(env);
    exchange.ready().await.map_err(WorkerError::from)?;
    let _ = link.tx.send(ControlMsg::Ready);
    tracing::info!(worker = spec.index, tasks = wired.handles.len(), "wired; running");

    let handles: HashMap<TaskId, ControlSender> = wired.handles.drain(..).map(|h| (h.id, h.control)).collect();
    let (mut tasks, ids) = (wired.tasks, wired.ids);
    let mut failed: Option<TaskError> = None;
    let mut tasks_done = tasks.is_empty();
    let outcome = loop {
        tokio::select! {
            msg = link.rx.recv() => match msg {
                Some(Ok(ControlMsg::Control(task, c))) => match handles.get(&task) {
                    // A task that already ended does not need to hear it.
                    Some(h) => { let _ = h.send(c); }
                    None => tracing::warn!(%task, "control: a command for a task this worker does not run"),
                },
                Some(Ok(ControlMsg::Cancel(keep))) => cancellation.cancel(keep),
                Some(Ok(ControlMsg::Bye)) if tasks_done => break Ok(()),
                Some(Ok(ControlMsg::Bye)) => break Err(WorkerError::LostCoordinator("it ended the attempt".into())),
                Some(Ok(other)) => break Err(WorkerError::Protocol { worker: 0, what: format!("{other:?}") }),
                Some(Err(_)) | None if tasks_done => break Ok(()),
                Some(Err(reason)) => break Err(WorkerError::LostCoordinator(reason)),
                None => break Err(WorkerError::LostCoordinator("its connection ended".into())),
            },
            Some(e) = events.recv() => { let _ = link.tx.send(ControlMsg::Event(e)); }
            joined = tasks.join_next_with_id(), if !tasks_done => {
                // Whatever a task reported before it ended goes first.
                while let Ok(e) = events.try_recv() {
                    let _ = link.tx.send(ControlMsg::Event(e));
                }
                let ended = match joined {
                    None => { tasks_done = true; continue; }
                    Some(Ok((id, Ok(())))) => ids.get(&id).map(|&t| (t, None)),
                    Some(Ok((_, Err(e)))) => Some(report(supervise::first_cause_task(e, &mut tasks).await)),
                    Some(Err(e)) => ids.get(&e.id()).map(|&task| {
                        report(TaskError::Thread { task, message: format!("its supervisor failed: {e}") })
                    }),
                };
                if let Some((task, failure)) = ended {
                    if let Some(f) = &failure {
                        failed.get_or_insert(TaskError::Remote {
                            task, kind: f.kind, symptom: f.symptom, message: f.message.clone(),
                        });
                    }
                    let _ = link.tx.send(ControlMsg::Ended(task, failure));
                }
                tasks_done = tasks.is_empty();
            }
        }
    };
    tasks.abort_all();
    drop(handles);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), link.close()).await;
    exchange.shutdown().await;
    outcome?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// A failed task as worker 0 hears of it.
fn report(e: TaskError) -> (TaskId, Option<RemoteFailure>) {
    let failure = RemoteFailure { kind: e.kind(), symptom: e.is_symptom(), message: describe_task(&e) };
    (e.task(), Some(failure))
}
