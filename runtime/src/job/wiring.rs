//! From the physical plan to running tasks: for every subtask that runs in this process, its
//! operators (with their restored state), its input and output channels (through the
//! [`Exchange`]), and a thread to run on. Which subtasks run here is a [`Placement`]: all of
//! them in a single-process job; a multi-process job wires each process's share the same way,
//! with an exchange whose channels cross processes.

use std::collections::BTreeSet;
use std::sync::Arc;

use sluice_crds::contract::pipeline::Partitioning;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{JobError, RuntimeConfig};
use crate::checkpoint::driver::TaskHandle;
use crate::checkpoint::restore::RestorePlan;
use crate::engine::channel::{ChannelId, Exchange, ExchangeError, MessageSender};
use crate::engine::message::TaskId;
use crate::engine::router::{OutputEdge, Router};
use crate::engine::task::{ChainNode, Head, InputChannel, Task, TaskEnv, TaskError};
use crate::graph::{KeyGroupRange, PhysicalPlan};
use crate::nodes::{Instance, instantiate};
use crate::ops::OpContext;
use crate::ops::reads::Reads;

/// Which subtasks of the physical plan run in this process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Every subtask (a single-process job).
    #[default]
    All,
    /// Only these.
    Only(BTreeSet<TaskId>),
}

impl Placement {
    /// Whether `task` runs in this process.
    pub fn runs_here(&self, task: TaskId) -> bool {
        match self {
            Placement::All => true,
            Placement::Only(tasks) => tasks.contains(&task),
        }
    }
}

/// What wiring needs besides the plan.
pub(super) struct Wiring<'a> {
    /// The run's configuration (job document, run id, faults).
    pub config: &'a RuntimeConfig,
    /// The physical plan of `config.job.pipeline`.
    pub plan: &'a PhysicalPlan,
    /// Which subtasks to start here.
    pub placement: &'a Placement,
    /// Where channel ends come from.
    pub exchange: &'a dyn Exchange,
    /// Shared by every task: storage, metrics, events to the coordinator, cancellation.
    pub env: Arc<TaskEnv>,
}

/// The tasks started here.
#[derive(Default)]
pub(super) struct Wired {
    /// One entry per task thread; each ends with the task's result.
    pub tasks: JoinSet<Result<(), TaskError>>,
    /// The coordinator's handles to them.
    pub handles: Vec<TaskHandle>,
    /// Which task each entry of `tasks` runs (a worker reports each task's end by its id).
    pub ids: std::collections::HashMap<tokio::task::Id, TaskId>,
}

/// Number of source subtasks in the whole plan (wherever they run): the coordinator triggers
/// checkpoints at each of them.
pub(super) fn source_task_count(plan: &PhysicalPlan, pipeline: &sluice_crds::contract::pipeline::Pipeline) -> usize {
    plan.chains
        .iter()
        .filter(|c| c.nodes.first().is_some_and(|&n| pipeline.nodes[n].kind().is_some_and(|k| k.is_source())))
        .map(|c| c.parallelism as usize)
        .sum()
}

/// Starts every subtask `w.placement` puts here, taking each one's restored state out of
/// `restore`, and adds them to `wired`.
pub(super) fn wire(w: &Wiring<'_>, restore: &mut RestorePlan, wired: &mut Wired) -> Result<(), JobError> {
    for (ci, chain) in w.plan.chains.iter().enumerate() {
        for subtask in 0..chain.parallelism {
            let id = TaskId { chain: ci, subtask };
            if !w.placement.runs_here(id) {
                continue;
            }
            let (ops, restored, source) = operators(w, id, restore)?;
            let is_source = source.is_some();
            let head = match source {
                Some(s) => s,
                None => Head::Inputs(inputs(w.plan, id, w.exchange)?),
            };
            let nodes: Vec<ChainNode> = chain
                .nodes
                .iter()
                .map(|&n| ChainNode {
                    index: n,
                    id: w.config.job.pipeline.nodes[n].id.clone(),
                    parallelism: chain.parallelism,
                })
                .collect();
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            let task = Task::new(
                id,
                nodes,
                ops,
                restored,
                Router::new(outputs(w.plan, w.config.job.pipeline.max_parallelism, id, w.exchange)?),
                ctl_rx,
                w.env.clone(),
            )?;
            wired.handles.push(TaskHandle { id, control: ctl_tx.into(), is_source });
            let entry = spawn_task_thread(&mut wired.tasks, id, task.run(head));
            wired.ids.insert(entry, id);
        }
    }
    Ok(())
}

type Operators = (Vec<Box<dyn crate::ops::Operator>>, Vec<crate::ops::Restored>, Option<Head>);

/// The chain's operators with their restored state, and its source head if it has one.
fn operators(w: &Wiring<'_>, id: TaskId, restore: &mut RestorePlan) -> Result<Operators, JobError> {
    let (job, pipeline) = (&w.config.job, &w.config.job.pipeline);
    let chain = &w.plan.chains[id.chain];
    let (mut ops, mut restored, mut head) = (Vec::new(), Vec::new(), None);
    for &n in &chain.nodes {
        let node = &pipeline.nodes[n];
        let ctx = OpContext {
            node: node.id.clone(),
            subtask: id.subtask,
            parallelism: chain.parallelism,
            max_parallelism: pipeline.max_parallelism,
            key_groups: KeyGroupRange::for_subtask(id.subtask, chain.parallelism, pipeline.max_parallelism),
            run_id: w.config.run_id.clone(),
            job: job.name.clone(),
            checkpointing: job.checkpointing.is_some(),
            max_concurrent_checkpoints: job.checkpointing.as_ref().map_or(1, |c| c.max_concurrent),
            io: Some(w.env.io.clone()),
        };
        let was_restored = restore.operators.contains_key(&(n, id.subtask));
        let r = restore.take(n, id.subtask);
        // What the job reads of a source's records: a source that can makes only that.
        let reads = match node.kind().is_some_and(|k| k.is_source()) {
            true => crate::nodes::reads::of_output(pipeline, &node.id),
            false => Reads::Whole,
        };
        match instantiate(node, &reads, ctx, pipeline.error_policy, &w.config.faults)? {
            Instance::Source(s) => head = Some(Head::Source(s, was_restored.then_some(r.operator_state))),
            Instance::Operator(op) => {
                ops.push(op);
                restored.push(r);
            }
        }
    }
    Ok((ops, restored, head))
}

/// The subtasks of chain edge `edge`'s upstream that feed downstream subtask `to`: the same
/// index along a forward edge, every one otherwise.
fn upstream_of(plan: &PhysicalPlan, edge: usize, to: u32) -> Vec<u32> {
    let e = &plan.edges[edge];
    if e.partition == Partitioning::Forward { vec![to] } else { (0..plan.chains[e.from].parallelism).collect() }
}

/// The task's input channels, each with the head's input it feeds: edges in plan order,
/// upstream subtasks ascending.
fn inputs(plan: &PhysicalPlan, id: TaskId, exchange: &dyn Exchange) -> Result<Vec<InputChannel>, ExchangeError> {
    let mut receivers = Vec::new();
    for (edge, e) in plan.edges.iter().enumerate().filter(|(_, e)| e.to == id.chain) {
        for from in upstream_of(plan, edge, id.subtask) {
            receivers.push((e.input, exchange.receiver(ChannelId { edge, from, to: id.subtask })?));
        }
    }
    Ok(receivers)
}

/// The task's output edges; along each, one sender per downstream subtask it feeds (indexed by
/// downstream subtask, which hash routing relies on).
fn outputs(
    plan: &PhysicalPlan,
    max_parallelism: u32,
    id: TaskId,
    exchange: &dyn Exchange,
) -> Result<Vec<OutputEdge>, ExchangeError> {
    let mut outputs = Vec::new();
    for &edge in &plan.chains[id.chain].outputs {
        let e = &plan.edges[edge];
        let mut senders: Vec<Box<dyn MessageSender>> = Vec::new();
        for to in 0..plan.chains[e.to].parallelism {
            if upstream_of(plan, edge, to).contains(&id.subtask) {
                senders.push(exchange.sender(ChannelId { edge, from: id.subtask, to })?);
            }
        }
        outputs.push(OutputEdge::of_output(e.partition, e.output, senders, max_parallelism));
    }
    Ok(outputs)
}

/// Runs a task on a thread of its own (with a single-threaded async runtime for its channels),
/// so that every task gets a core of its own as the OS schedules it; storage I/O and the
/// coordinator stay on the main runtime. The join set sees the task's result under the id
/// returned.
fn spawn_task_thread(
    tasks: &mut JoinSet<Result<(), TaskError>>,
    id: TaskId,
    fut: impl std::future::Future<Output = Result<(), TaskError>> + Send + 'static,
) -> tokio::task::Id {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name(format!("sluice-{id}")).spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(fut),
            Err(e) => Err(TaskError::Thread { task: id, message: format!("cannot start its runtime: {e}") }),
        };
        let _ = tx.send(result);
    });
    let spawn_error = spawned.err().map(|e| e.to_string());
    tasks
        .spawn(async move {
            if let Some(message) = spawn_error {
                return Err(TaskError::Thread { task: id, message });
            }
            rx.await.unwrap_or_else(|_| Err(TaskError::Thread { task: id, message: "panicked".into() }))
        })
        .id()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::engine::channel::{LocalExchange, MessageReceiver};

    /// Records every end asked for, and hands out in-process ends.
    #[derive(Default)]
    struct Recording {
        inner: LocalExchange,
        senders: Mutex<Vec<ChannelId>>,
        receivers: Mutex<Vec<ChannelId>>,
    }

    impl Exchange for Recording {
        fn sender(&self, c: ChannelId) -> Result<Box<dyn MessageSender>, ExchangeError> {
            self.senders.lock().expect("lock").push(c);
            self.inner.sender(c)
        }
        fn receiver(&self, c: ChannelId) -> Result<Box<dyn MessageReceiver>, ExchangeError> {
            self.receivers.lock().expect("lock").push(c);
            self.inner.receiver(c)
        }
    }

    fn plan(yaml: &str) -> PhysicalPlan {
        let job = sluice_crds::JobConfig::from_yaml(yaml).expect("job");
        PhysicalPlan::build(&job.pipeline)
    }

    const SHAPES: &str = r#"
name: shapes
pipeline:
  maxParallelism: 64
  parallelism: 3
  nodes:
    - {id: a, generator: {count: 10, keys: 5}}
    - {id: b, generator: {count: 10, keys: 5}, parallelism: 2}
    - {id: k, keyBy: {expr: "value % 7"}}
    - {id: w, window: {size: 1s, function: count}, parallelism: 4}
    - {id: f, filter: {expr: "value > 1"}, parallelism: 4}
    - {id: out, parallelism: 1, fileSink: {path: /tmp/unused}}
  edges:
    - {from: a, to: k}
    - {from: b, to: k, partition: rebalance}
    - {from: k, to: w, partition: hash}
    - {from: w, to: f}
    - {from: f, to: out, partition: rebalance}
"#;

    /// Every task's ends, wired per process for a random split of the tasks over `processes`
    /// placements: each channel has exactly one sender and one receiver, the same set however
    /// the tasks are split, and every downstream subtask of a partitioned edge is reached.
    #[test]
    fn any_split_of_the_tasks_asks_for_each_end_of_each_channel_once() {
        let plan = plan(SHAPES);
        let all: Vec<TaskId> = plan
            .chains
            .iter()
            .enumerate()
            .flat_map(|(chain, c)| (0..c.parallelism).map(move |subtask| TaskId { chain, subtask }))
            .collect();
        let mut reference: Option<Vec<ChannelId>> = None;
        for seed in 0..40u64 {
            let processes = 1 + (seed % 4) as usize;
            let placements: Vec<Placement> = (0..processes)
                .map(|p| {
                    Placement::Only(
                        all.iter().copied().filter(|t| (xxhash(seed, t) % processes as u64) as usize == p).collect(),
                    )
                })
                .collect();
            let x = Recording::default();
            for placement in &placements {
                for &id in all.iter().filter(|&&t| placement.runs_here(t)) {
                    let outs = outputs(&plan, 64, id, &x).expect("outputs");
                    assert_eq!(outs.len(), plan.chains[id.chain].outputs.len());
                    if !plan.edges.iter().any(|e| e.from == id.chain) {
                        assert!(outs.is_empty());
                    }
                    let has_inputs = plan.edges.iter().any(|e| e.to == id.chain);
                    let ins = inputs(&plan, id, &x).expect("inputs");
                    assert_eq!(ins.is_empty(), !has_inputs, "{id}");
                }
            }
            assert!(x.inner.unpaired().is_empty(), "seed {seed}: {:?}", x.inner.unpaired());
            let mut senders = x.senders.lock().expect("lock").clone();
            let mut receivers = x.receivers.lock().expect("lock").clone();
            senders.sort();
            receivers.sort();
            assert_eq!(senders, receivers, "seed {seed}");
            let before = senders.len();
            senders.dedup();
            assert_eq!(senders.len(), before, "seed {seed}: an end asked for twice");
            match &reference {
                None => reference = Some(senders),
                Some(r) => assert_eq!(r, &senders, "seed {seed}: the split changed the channels"),
            }
        }
        // An independent count: forward edges have one channel per subtask, others up × down.
        let expected: usize = plan
            .edges
            .iter()
            .map(|e| {
                let (up, down) = (plan.chains[e.from].parallelism as usize, plan.chains[e.to].parallelism as usize);
                if e.partition == Partitioning::Forward { down } else { up * down }
            })
            .sum();
        assert_eq!(reference.map(|r| r.len()), Some(expected));
    }

    fn xxhash(seed: u64, t: &TaskId) -> u64 {
        xxhash_rust::xxh3::xxh3_64(
            &[seed.to_le_bytes(), (t.chain as u64).to_le_bytes(), u64::from(t.subtask).to_le_bytes()].concat(),
        )
    }
}
