//! One subtask of one chain: reads its inputs (or polls its source), pushes batches through
//! the chained operators, routes the output, aligns barriers and takes its part of checkpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::StateFile;
use sluice_crds::contract::pipeline::EdgeOutput;
use tokio::sync::mpsc;

use super::barrier::{Alignment, BarrierAligner};
use super::cancel::Cancellation;
use super::channel::{Closed, MessageReceiver};
use super::message::{Barrier, BarrierKind, Message, TaskAck, TaskControl, TaskEvent, TaskId};
use super::metrics::JobMetrics;
use super::router::Router;
use super::watermark::WatermarkTracker;
use crate::checkpoint::snapshot::{NodeCapture, write_task_snapshot};
use crate::fault::Faults;
use crate::ops::{OpError, OpSnapshot, Operator, Restored, SnapshotMode, Source, SourcePoll};
use crate::record::{BATCH_SIZE, Batch};
use crate::storage::SharedStore;

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
}

impl TaskError {
    /// What the failure means for the run: an operator's failure is its own kind; a task that
    /// lost a peer or its thread may succeed on a new attempt.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            TaskError::Op { source, .. } => source.kind(),
            TaskError::Downstream { .. } | TaskError::Coordinator { .. } | TaskError::Thread { .. } => {
                crate::error::ErrorKind::Retryable
            }
        }
    }
}

/// What every task shares: where state goes, how to report, what to count.
pub struct TaskEnv {
    /// Checkpoint storage (absent when the job takes no checkpoints).
    pub store: Option<SharedStore>,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// This run's id.
    pub run_id: String,
    /// Fault plan.
    pub faults: Faults,
    /// Counters.
    pub metrics: Arc<JobMetrics>,
    /// Reports to the coordinator.
    pub events: mpsc::UnboundedSender<TaskEvent>,
    /// The runtime that does storage I/O (snapshot uploads), apart from the task threads.
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

/// How the chain's head gets records.
pub enum Head {
    /// A source (the first node of the chain).
    Source(Box<dyn Source>, Option<Vec<serde_json::Value>>),
    /// Input channels from upstream tasks.
    Inputs(Vec<Box<dyn MessageReceiver>>),
}

/// Longest run of deltas on one base before the next snapshot is a full one again (compaction).
pub const MAX_DELTAS: usize = 8;

/// The keyed-state files of one node as of its last completed checkpoint.
#[derive(Debug, Default)]
struct NodeChain {
    confirmed: Vec<StateFile>,
}

impl NodeChain {
    /// Whether the chain is long or heavy enough to rebase: more than [`MAX_DELTAS`] deltas, or
    /// deltas that together outweigh the base (restore time stays bounded).
    fn wants_rebase(&self) -> bool {
        let (base, deltas): (Vec<_>, Vec<_>) = self.confirmed.iter().partition(|f| !f.delta);
        let base_bytes: u64 = base.iter().map(|f| f.size_bytes).sum();
        let delta_bytes: u64 = deltas.iter().map(|f| f.size_bytes).sum();
        base.is_empty() || deltas.len() >= MAX_DELTAS || delta_bytes > base_bytes
    }
}

/// Files written per (checkpoint, node position), waiting for the checkpoint's completion.
type PendingFiles = Arc<Mutex<BTreeMap<(CheckpointId, usize), Vec<StateFile>>>>;

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
}

enum Event {
    Control(TaskControl),
    Input(usize, Message),
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

    /// Pushes a batch through operators `from..` and routes what comes out.
    async fn push(&mut self, from: usize, batch: Batch) -> Result<(), TaskError> {
        let offset = self.op_offset();
        let mut cur = batch;
        for i in from..self.ops.len() {
            if cur.is_empty() {
                return Ok(());
            }
            let node = self.nodes[offset + i].index;
            self.env.metrics.add_in(node, cur.len());
            let mut out = Batch::new();
            self.ops[i].process(cur, &mut out).map_err(self.op_err())?;
            self.env.metrics.add_out(node, out.len());
            let mut late = Batch::new();
            let late_count = self.ops[i].take_late(&mut late);
            if late_count > 0 {
                self.env.metrics.add_late(node, late_count);
                // Only a chain's tail has late edges (they are never chained).
                self.router.route_output(EdgeOutput::Late, late).await.map_err(self.closed())?;
            }
            cur = out;
        }
        self.router.route(cur).await.map_err(self.closed())
    }

    async fn watermark(&mut self, wm: i64) -> Result<(), TaskError> {
        for i in 0..self.ops.len() {
            let mut out = Batch::new();
            self.ops[i].on_watermark(wm, &mut out).map_err(self.op_err())?;
            if !out.is_empty() {
                let node = self.nodes[self.op_offset() + i].index;
                self.env.metrics.add_out(node, out.len());
                self.push(i + 1, out).await?;
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
            let mut out = Batch::new();
            self.ops[i].finish(&mut out).map_err(self.op_err())?;
            self.push(i + 1, out).await?;
        }
        self.router.broadcast(|| Message::End).await.map_err(self.closed())
    }

    /// Synchronous part of a checkpoint, then the barrier goes downstream and the upload runs
    /// in the background.
    async fn checkpoint(
        &mut self,
        barrier: Barrier,
        source_state: Option<Vec<serde_json::Value>>,
        alignment_us: u64,
    ) -> Result<(), TaskError> {
        let mut snapshots = Vec::with_capacity(self.nodes.len());
        if let Some(state) = source_state {
            snapshots.push((OpSnapshot { operator_state: state, ..OpSnapshot::default() }, Vec::new()));
        }
        // A delta is only safe on top of a confirmed chain with no earlier checkpoint unresolved
        // (an aborted or still-running one may hold changes the delta would miss).
        let settled = self.unresolved.is_empty();
        let offset = self.op_offset();
        let err = self.op_err();
        for (i, op) in self.ops.iter_mut().enumerate() {
            let chain = &self.chains[offset + i];
            let full = barrier.kind.is_savepoint() || !settled || chain.wants_rebase();
            let mode = if full { SnapshotMode::Full } else { SnapshotMode::Incremental };
            let base = if full { Vec::new() } else { chain.confirmed.clone() };
            snapshots.push((op.snapshot(barrier.id, mode).map_err(&err)?, base));
        }
        self.unresolved.insert(barrier.id);
        if barrier.kind == BarrierKind::StopSavepoint {
            self.stopping = true;
        }
        self.router.broadcast(|| Message::Barrier(barrier)).await.map_err(self.closed())?;
        self.env.faults.hit("task.after_precommit");
        let captures: Vec<NodeCapture> = self
            .nodes
            .iter()
            .zip(snapshots)
            .map(|(n, (snapshot, base))| NodeCapture { node: n.id.clone(), parallelism: n.parallelism, snapshot, base })
            .collect();
        let (env, task, pending) = (self.env.clone(), self.id, self.pending.clone());
        let io = env.io.clone();
        io.spawn(async move {
            let Some(store) = env.store.clone() else {
                let reason = "the job has no checkpoint storage".to_string();
                let _ = env.events.send(TaskEvent::Decline { checkpoint: barrier.id, task, reason });
                return;
            };
            let written = write_task_snapshot(
                &store,
                barrier.id,
                task.subtask,
                &env.run_id,
                env.max_parallelism,
                captures,
                &env.faults,
            )
            .await;
            let event = match written {
                Ok(states) => {
                    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                    for (i, st) in states.iter().enumerate() {
                        p.insert((barrier.id, i), st.files.clone());
                    }
                    drop(p);
                    TaskEvent::Ack(TaskAck { checkpoint: barrier.id, task, states, alignment_us })
                }
                Err(e) => TaskEvent::Decline { checkpoint: barrier.id, task, reason: e.to_string() },
            };
            let _ = env.events.send(event);
        });
        Ok(())
    }

    fn on_control(&mut self, c: TaskControl) -> Result<(), TaskError> {
        match c {
            TaskControl::Complete(id) => self.complete(id),
            TaskControl::Abort(id) => {
                self.unresolved.remove(&id);
                self.pending.lock().unwrap_or_else(|e| e.into_inner()).retain(|(c, _), _| *c != id);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn complete(&mut self, id: CheckpointId) -> Result<(), TaskError> {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (i, chain) in self.chains.iter_mut().enumerate() {
                if let Some(files) = p.remove(&(id, i)) {
                    chain.confirmed = files;
                }
            }
            p.retain(|(c, _), _| *c > id);
        }
        // Everything up to a completed checkpoint is settled (older ones were subsumed).
        self.unresolved = self.unresolved.split_off(&id.next());
        let err = self.op_err();
        for op in &mut self.ops {
            op.checkpoint_complete(id).map_err(&err)?;
        }
        Ok(())
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

    /// Handles one control message in a source task; `Ok(true)` when the task has ended.
    async fn source_control(&mut self, source: &mut dyn Source, c: Option<TaskControl>) -> Result<bool, TaskError> {
        match c {
            Some(TaskControl::Trigger(b)) => {
                let state = source.snapshot(b.id).map_err(self.op_err())?;
                self.checkpoint(b, Some(state), 0).await?;
                Ok(false)
            }
            Some(TaskControl::EndInput) => {
                self.drain_control()?;
                self.finish().await?;
                Ok(true)
            }
            Some(other) => {
                if let TaskControl::Complete(id) = &other {
                    source.checkpoint_complete(*id).map_err(self.op_err())?;
                }
                self.on_control(other).map(|()| false)
            }
            None => Err(TaskError::Coordinator { task: self.id }),
        }
    }

    async fn run_source(
        &mut self,
        mut source: Box<dyn Source>,
        restored: Option<Vec<serde_json::Value>>,
    ) -> Result<(), TaskError> {
        source.open(restored).map_err(self.op_err())?;
        let head = self.nodes[0].index;
        let mut last_wm = i64::MIN;
        let mut exhausted = false;
        loop {
            if self.env.cancel.is_cancelled() {
                return self.cancel();
            }
            loop {
                match self.control.try_recv() {
                    Ok(c) => {
                        if self.source_control(source.as_mut(), Some(c)).await? {
                            return Ok(());
                        }
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        return Err(TaskError::Coordinator { task: self.id });
                    }
                }
            }
            if exhausted || self.stopping {
                // No more data: wait for barriers and the end of input.
                let c = self.control.recv().await;
                if self.source_control(source.as_mut(), c).await? {
                    return Ok(());
                }
                continue;
            }
            let mut batch = Batch::with_capacity(BATCH_SIZE);
            match source.poll(&mut batch, BATCH_SIZE).map_err(self.op_err())? {
                SourcePoll::Data => {
                    self.env.metrics.add_out(head, batch.len());
                    self.push(0, batch).await?;
                    let wm = source.watermark();
                    if wm > last_wm {
                        last_wm = wm;
                        self.watermark(wm).await?;
                    }
                    tokio::task::yield_now().await;
                }
                SourcePoll::Idle(d) => {
                    let c = tokio::select! {
                        _ = tokio::time::sleep(d) => continue,
                        c = self.control.recv() => c,
                    };
                    if self.source_control(source.as_mut(), c).await? {
                        return Ok(());
                    }
                }
                SourcePoll::Finished => {
                    if last_wm < i64::MAX {
                        last_wm = i64::MAX;
                        self.watermark(i64::MAX).await?;
                    }
                    exhausted = true;
                    self.env
                        .events
                        .send(TaskEvent::SourceFinished(self.id))
                        .map_err(|_| TaskError::Coordinator { task: self.id })?;
                }
            }
        }
    }

    async fn run_inputs(&mut self, mut inputs: Vec<Box<dyn MessageReceiver>>) -> Result<(), TaskError> {
        let n = inputs.len();
        let mut aligner = BarrierAligner::new(n);
        let mut watermarks = WatermarkTracker::new(n);
        let mut ended = vec![false; n];
        let mut live = n;
        let mut rr = 0usize;
        let mut align_started: Option<Instant> = None;
        loop {
            let event = {
                let control = &mut self.control;
                let aligner = &aligner;
                let ended = &ended;
                poll_fn(|cx| {
                    if let Poll::Ready(c) = control.poll_recv(cx) {
                        return Poll::Ready(c.map(Event::Control));
                    }
                    for k in 0..n {
                        let i = (rr + k) % n;
                        if ended[i] || aligner.is_blocked(i) {
                            continue;
                        }
                        if let Poll::Ready(m) = inputs[i].poll_recv(cx) {
                            rr = i + 1;
                            return Poll::Ready(Some(Event::Input(i, m.unwrap_or(Message::End))));
                        }
                    }
                    Poll::Pending
                })
                .await
            };
            if self.env.cancel.is_cancelled() {
                // A completion taken off the channel just now still applies: the driver sends
                // completions before it sets the flag, and a completed checkpoint's transactions
                // must be committed, never aborted by the cancel.
                if let Some(Event::Control(c)) = event {
                    self.on_control(c)?;
                }
                return self.cancel();
            }
            let alignment = match event {
                None => return Err(TaskError::Coordinator { task: self.id }),
                Some(Event::Control(c)) => {
                    self.on_control(c)?;
                    Alignment::Wait
                }
                Some(Event::Input(_, Message::Batch(b))) => {
                    self.push(0, b).await?;
                    Alignment::Wait
                }
                Some(Event::Input(ch, Message::Watermark(w))) => {
                    if let Some(wm) = watermarks.update(ch, w) {
                        self.watermark(wm).await?;
                    }
                    Alignment::Wait
                }
                Some(Event::Input(ch, Message::Barrier(b))) => {
                    if aligner.current().is_none() && n > 1 {
                        align_started = Some(Instant::now());
                    }
                    aligner.on_barrier(ch, b)
                }
                Some(Event::Input(ch, Message::End)) => {
                    ended[ch] = true;
                    live -= 1;
                    // After a stop-with-savepoint barrier nothing may be emitted: an ended
                    // channel must not advance the watermark (and fire windows) then.
                    if let Some(wm) = watermarks.end(ch)
                        && !self.stopping
                    {
                        self.watermark(wm).await?;
                    }
                    aligner.on_end(ch)
                }
            };
            if let Alignment::Aligned(b) = alignment {
                let us = align_started.take().map_or(0, |t| t.elapsed().as_micros() as u64);
                self.env.metrics.alignment_us.fetch_add(us, std::sync::atomic::Ordering::Relaxed);
                self.checkpoint(b, None, us).await?;
            }
            if live == 0 {
                self.drain_control()?;
                return self.finish().await;
            }
        }
    }
}
