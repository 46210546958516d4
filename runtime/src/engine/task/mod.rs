//! One subtask of one chain: reads its inputs (or polls its source), pushes batches through
//! the chained operators, routes the output, aligns barriers and takes its part of checkpoints.
//!
//! Here: the task, what it shares with its job, and the chain's push of a batch. A source task's
//! loop is in `source.rs`, an input-fed task's in `inputs.rs`, the checkpoint part in
//! `checkpoint.rs`.

mod checkpoint;
mod inputs;
mod source;

use std::collections::BTreeSet;
use std::sync::Arc;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::EdgeOutput;
use tokio::sync::mpsc;

pub use self::checkpoint::MAX_DELTAS;
use self::checkpoint::{NodeChain, PendingFiles};
use super::cancel::Cancellation;
use super::capture::CaptureWriter;
use super::channel::{Closed, MessageReceiver};
use super::message::{Message, TaskControl, TaskEvent, TaskId};
use super::metrics::{JobMetrics, SubtaskMetrics, TaskClock, TaskLatency};
use super::operator::{OpError, Operator, Restored, Source};
use super::router::Router;
use crate::fault::Faults;
use crate::record::Batch;

/// Why a task stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// An operator or source failed.
    #[error("task {task}: {source}")]
    Op {
        /// The task.
        task: TaskId,
        /// The operator error.
        source: OpError,
    },
    /// A downstream task went away (it failed; its error is the one to report).
    #[error("task {task}: downstream channel closed")]
    Downstream {
        /// The task.
        task: TaskId,
    },
    /// An input channel closed without its end message: the worker running its upstream, or
    /// the connection to it, was lost.
    #[error("task {task}: input lost: {failure}")]
    Upstream {
        /// The task.
        task: TaskId,
        /// What was lost.
        failure: super::channel::ChannelFailure,
    },
    /// The coordinator went away.
    #[error("task {task}: coordinator gone")]
    Coordinator {
        /// The task.
        task: TaskId,
    },
    /// The task's thread could not start or died.
    #[error("task {task}: thread failed: {message}")]
    Thread {
        /// The task.
        task: TaskId,
        /// What happened.
        message: String,
    },
    /// A task in another worker process failed there, or that worker was lost (the message
    /// says which, naming the worker).
    #[error("task {task}: {message}")]
    Remote {
        /// The task (for a lost worker: one of the tasks it ran).
        task: TaskId,
        /// What its failure means for the run, as its worker said.
        kind: crate::error::ErrorKind,
        /// A symptom of another failure (its downstream closed), not a cause.
        symptom: bool,
        /// The failure in the job document's terms, naming the worker.
        message: String,
    },
}

impl TaskError {
    /// What the failure means for the run: an operator's failure is its own kind; a task that
    /// lost a peer or its thread may succeed on a new attempt.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            TaskError::Op { source, .. } => source.kind(),
            TaskError::Remote { kind, .. } => *kind,
            TaskError::Downstream { .. }
            | TaskError::Upstream { .. }
            | TaskError::Coordinator { .. }
            | TaskError::Thread { .. } => crate::error::ErrorKind::Retryable,
        }
    }

    /// The failed task.
    pub fn task(&self) -> TaskId {
        match self {
            TaskError::Op { task, .. }
            | TaskError::Downstream { task }
            | TaskError::Upstream { task, .. }
            | TaskError::Coordinator { task }
            | TaskError::Thread { task, .. }
            | TaskError::Remote { task, .. } => *task,
        }
    }

    /// Whether this failure is only a symptom of another (a downstream task went away, or an
    /// upstream task of this process failed): the other one is the failure to report. A channel
    /// lost with its worker or connection is a cause.
    pub fn is_symptom(&self) -> bool {
        match self {
            TaskError::Downstream { .. } | TaskError::Remote { symptom: true, .. } => true,
            TaskError::Upstream { failure, .. } => failure.is_sender_gone(),
            _ => false,
        }
    }
}

/// What every task shares: where state goes, how to report, what to count.
pub struct TaskEnv {
    /// Where checkpoint captures are written (absent when the job takes no checkpoints).
    pub snapshots: Option<Arc<dyn CaptureWriter>>,
    /// Fault plan.
    pub faults: Faults,
    /// Counters.
    pub metrics: Arc<JobMetrics>,
    /// Reports to the coordinator.
    pub events: mpsc::UnboundedSender<TaskEvent>,
    /// The runtime that does storage I/O (snapshot writes), apart from the task threads.
    pub io: tokio::runtime::Handle,
    /// Set when the job is cancelled: the task aborts its open transactions and ends.
    pub cancel: Arc<Cancellation>,
}

/// A node of the task's chain.
#[derive(Clone, Debug)]
pub struct ChainNode {
    /// Index in the pipeline's node list (for metrics).
    pub index: usize,
    /// Node id.
    pub id: String,
    /// Node parallelism.
    pub parallelism: u32,
}

/// An input channel of a task, with the input of the head node it feeds (see
/// [`Operator::process_input`]; 0 unless the head is a join).
pub type InputChannel = (usize, Box<dyn MessageReceiver>);

/// How the chain's head gets records.
pub enum Head {
    /// A source (the first node of the chain).
    Source(Box<dyn Source>, Option<Vec<serde_json::Value>>),
    /// Input channels from upstream tasks.
    Inputs(Vec<InputChannel>),
}

/// A runnable task.
pub struct Task {
    id: TaskId,
    nodes: Vec<ChainNode>,
    ops: Vec<Box<dyn Operator>>,
    router: Router,
    control: mpsc::UnboundedReceiver<TaskControl>,
    env: Arc<TaskEnv>,
    chains: Vec<NodeChain>,
    /// Checkpoints this task snapshotted that are neither complete nor aborted yet.
    unresolved: BTreeSet<CheckpointId>,
    pending: PendingFiles,
    /// A stop-with-savepoint barrier passed: end without draining (no `finish`).
    stopping: bool,
    /// Counters of each node of the chain, parallel to `nodes`.
    counters: Vec<SubtaskMetrics>,
    /// Busy / idle / backpressured time.
    clock: TaskClock,
    /// Sampled end-to-end latency, when the chain ends in a sink.
    latency: Option<TaskLatency>,
}

impl Task {
    /// A task over `nodes` (head first); `ops` are the operators after the source, or all of
    /// them when the head reads inputs. Restored operator state is applied here.
    pub fn new(
        id: TaskId,
        nodes: Vec<ChainNode>,
        mut ops: Vec<Box<dyn Operator>>,
        restored: Vec<Restored>,
        router: Router,
        control: mpsc::UnboundedReceiver<TaskControl>,
        env: Arc<TaskEnv>,
    ) -> Result<Task, TaskError> {
        for (op, r) in ops.iter_mut().zip(restored) {
            op.restore(r).map_err(|source| TaskError::Op { task: id, source })?;
        }
        let chains = nodes.iter().map(|_| NodeChain::default()).collect();
        let m = &env.metrics;
        let counters = nodes.iter().map(|n| m.subtask(n.index, id.subtask)).collect();
        let head = nodes.first().map_or(0, |n| n.index);
        let clock = TaskClock::new(m.task_times(head, id.subtask));
        let latency = match nodes.last() {
            Some(tail) if router.is_empty() => Some(m.latency(tail.index, id.subtask)),
            _ => None,
        };
        Ok(Task {
            id,
            nodes,
            ops,
            router,
            control,
            env,
            chains,
            unresolved: BTreeSet::new(),
            pending: PendingFiles::default(),
            stopping: false,
            counters,
            clock,
            latency,
        })
    }

    fn op_err(&self) -> impl Fn(OpError) -> TaskError + use<> {
        let task = self.id;
        move |source| TaskError::Op { task, source }
    }

    fn closed(&self) -> impl Fn(Closed) -> TaskError + use<> {
        let task = self.id;
        move |_| TaskError::Downstream { task }
    }

    /// Index into `nodes` of `ops[0]`.
    fn op_offset(&self) -> usize {
        self.nodes.len() - self.ops.len()
    }

    /// Pushes a batch through operators `from..` and routes what comes out. Counters move once
    /// per batch.
    async fn push(&mut self, from: usize, batch: Batch) -> Result<(), TaskError> {
        self.push_input(from, 0, batch).await
    }

    /// [`Task::push`] of a batch that came in on input `input` of operator `from`.
    async fn push_input(&mut self, from: usize, input: usize, batch: Batch) -> Result<(), TaskError> {
        let offset = self.op_offset();
        let mut cur = batch;
        for i in from..self.ops.len() {
            if cur.is_empty() {
                return Ok(());
            }
            let c = &self.counters[offset + i];
            c.records_in.inc_by(cur.len() as u64);
            if i + 1 == self.ops.len()
                && let Some(l) = &self.latency
            {
                l.sample(cur[0].ts);
            }
            let mut out = Batch::new();
            let processed = if i == from {
                self.ops[i].process_input(input, cur, &mut out)
            } else {
                self.ops[i].process(cur, &mut out)
            };
            processed.map_err(self.op_err())?;
            let c = &self.counters[offset + i];
            c.records_out.inc_by(out.len() as u64);
            let mut late = Batch::new();
            let late_count = self.ops[i].take_late(&mut late);
            if late_count > 0 {
                c.late_records.inc_by(late_count);
                // Only a chain's tail has late edges (they are never chained).
                self.router.route_output(EdgeOutput::Late, late).await.map_err(self.closed())?;
            }
            cur = out;
        }
        self.router.route(cur).await.map_err(self.closed())
    }

    async fn watermark(&mut self, wm: i64) -> Result<(), TaskError> {
        for i in 0..self.ops.len() {
            // Windows fire a chunk per call, each sent on before the next.
            loop {
                let mut out = Batch::new();
                self.ops[i].on_watermark(wm, &mut out).map_err(self.op_err())?;
                let c = &self.counters[self.op_offset() + i];
                c.set_watermark(wm);
                if !out.is_empty() {
                    c.records_out.inc_by(out.len() as u64);
                    self.push(i + 1, out).await?;
                }
                if !self.ops[i].more_due() {
                    break;
                }
            }
        }
        self.router.broadcast(|| Message::Watermark(wm)).await.map_err(self.closed())
    }

    /// Ends the task: drains the operators (unless stopping at a savepoint) and ends the outputs.
    async fn finish(&mut self) -> Result<(), TaskError> {
        if self.stopping {
            return self.router.broadcast(|| Message::End).await.map_err(self.closed());
        }
        for i in 0..self.ops.len() {
            loop {
                let mut out = Batch::new();
                self.ops[i].finish(&mut out).map_err(self.op_err())?;
                self.push(i + 1, out).await?;
                if !self.ops[i].more_due() {
                    break;
                }
            }
        }
        self.router.broadcast(|| Message::End).await.map_err(self.closed())
    }

    /// Accounts the time since the last tick as busy or backpressured (once per message).
    fn tick(&mut self) {
        self.clock.blocked(self.router.take_blocked());
        self.clock.tick();
    }

    /// Accounts a wait for input (after the time before it).
    fn waited(&mut self, waited: super::metrics::clock::Waited) {
        self.clock.blocked(self.router.take_blocked());
        self.clock.waited(waited);
    }

    fn drain_control(&mut self) -> Result<(), TaskError> {
        while let Ok(c) = self.control.try_recv() {
            self.on_control(c)?;
        }
        Ok(())
    }

    /// Runs the task to completion (or until the job is cancelled).
    pub async fn run(mut self, head: Head) -> Result<(), TaskError> {
        let result = match head {
            Head::Source(source, restored) => self.run_source(source, restored).await,
            Head::Inputs(inputs) => self.run_inputs(inputs).await,
        };
        self.tick();
        match result {
            // A neighbour that ended on the cancel closed its channel: not a failure.
            Err(TaskError::Downstream { .. } | TaskError::Coordinator { .. }) if self.env.cancel.is_cancelled() => {
                self.cancel()
            }
            r => r,
        }
    }

    /// Ends the task for a cancel: completions already sent apply first (sinks commit them),
    /// then every sink aborts its open transactions. Nothing is emitted.
    fn cancel(&mut self) -> Result<(), TaskError> {
        self.drain_control()?;
        let keep = self.env.cancel.keep_up_to();
        let err = self.op_err();
        for op in &mut self.ops {
            op.cancel(keep).map_err(&err)?;
        }
        tracing::debug!(task = %self.id, "cancelled");
        Ok(())
    }
}
