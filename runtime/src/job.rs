//! Runs a job: restore, recover sinks, wire tasks and channels, run the coordinator, wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_crds::contract::pipeline::Partitioning;
use sluice_crds::{CheckpointId, JobConfig};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::checkpoint::coordinator::{Coordinator, CoordinatorConfig};
use crate::checkpoint::driver::{CheckpointStats, Driver, DriverExit, SharedStats, TaskHandle, stats};
use crate::checkpoint::restore::{self, LoadedCheckpoint, RestoreError, RestorePlan};
use crate::checkpoint::retention::sweep;
use crate::checkpoint::{claim, completed, fallback};
use crate::connectors::two_phase::RecoveryContext;
use crate::control::ControlState;
use crate::engine::cancel::Cancellation;
use crate::engine::channel::{Exchange, LocalExchange, MessageReceiver, MessageSender};
use crate::engine::message::TaskId;
use crate::engine::metrics::JobMetrics;
use crate::engine::router::{OutputEdge, Router};
use crate::engine::task::{ChainNode, Head, Task, TaskEnv, TaskError};
use crate::fault::Faults;
use crate::graph::{KeyGroupRange, PhysicalPlan};
use crate::ops::build::{Instance, check_expressions, instantiate, sink_recovery};
use crate::ops::{OpContext, OpError};
use crate::storage::{self, SharedStore};
use sluice_crds::contract::control::JobState;

/// Where a run gets its initial state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreMode {
    /// The newest completed checkpoint in the job's storage, if any (the default). Refuses to
    /// fall back past a newer checkpoint whose sinks may have committed, and to start fresh
    /// over state or committed output without a manifest (see `checkpoint::fallback`).
    Latest,
    /// As `Latest`, but falling back past such a checkpoint is allowed, and logged
    /// (`--allow-fallback`).
    LatestAllowingFallback,
    /// A specific checkpoint manifest or savepoint directory URI.
    From(String),
    /// Start fresh, ignoring existing checkpoints (checkpoint ids still continue after them).
    None,
}

/// Everything a run needs, validated once.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// The job document.
    pub job: JobConfig,
    /// Initial state.
    pub restore: RestoreMode,
    /// Unique id of this run (temp-file and transaction names).
    pub run_id: String,
    /// Fault plan (tests and chaos mode).
    pub faults: Faults,
    /// Print a progress line every second.
    pub progress: bool,
    /// The control endpoint's state, when one serves this run.
    pub control: Option<Arc<ControlState>>,
    /// Restore a checkpoint of another job, or with state for nodes this job no longer has
    /// (dropped), instead of refusing it (`--allow-non-restored-state`).
    pub allow_non_restored_state: bool,
}

/// Why a job stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job document is unusable (bad expression, …).
    #[error("invalid job: {0}")]
    Config(#[from] OpError),
    /// Checkpoint storage could not be opened.
    #[error("checkpoint storage: {0}")]
    Storage(#[from] storage::Error),
    /// Restore failed.
    #[error("restore: {0}")]
    Restore(#[from] RestoreError),
    /// Resolving a sink's pending transactions failed (data-loss risk: not ignored).
    #[error("sink recovery of node {node}: {source}")]
    SinkRecovery {
        /// The sink node.
        node: String,
        /// What failed.
        source: OpError,
    },
    /// A task failed.
    #[error("{0}")]
    Task(#[from] TaskError),
    /// The coordinator stopped the job.
    #[error("checkpointing: {0}")]
    Checkpointing(String),
}

impl JobError {
    /// Why the run must stop for a person to decide (exit status 3), if it must: pre-committed
    /// output of a completed checkpoint could not be committed, or restore refused because
    /// going on could duplicate committed output.
    pub fn data_loss_kind(&self) -> Option<sluice_crds::contract::control::DataLossKind> {
        use sluice_crds::contract::control::DataLossKind;
        match self {
            JobError::Restore(e) if e.is_data_loss_risk() => Some(DataLossKind::RestoreRefused),
            e if e.is_data_loss() => Some(DataLossKind::UncommittableTransaction),
            _ => None,
        }
    }

    /// Whether the run must not be retried as is (exit status 3): see [`Self::data_loss_kind`].
    pub fn is_data_loss(&self) -> bool {
        matches!(
            self,
            JobError::SinkRecovery { source: OpError::Commit { .. }, .. }
                | JobError::Task(TaskError::Op { source: OpError::Commit { .. }, .. })
        ) || matches!(self, JobError::Restore(e) if e.is_data_loss_risk())
    }
}

/// What a finished run reports.
#[derive(Debug)]
pub struct JobOutcome {
    /// The checkpoint the run restored from.
    pub restored_from: Option<CheckpointId>,
    /// Checkpoint statistics.
    pub checkpoints: CheckpointStats,
    /// Records emitted by the sources.
    pub source_records: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The run was cancelled on request (its output resumes from the latest checkpoint).
    pub cancelled: bool,
}

/// Handles to a running job for observers (progress, control endpoint, benchmarks).
#[derive(Clone)]
pub struct JobHandles {
    /// Counters.
    pub metrics: Arc<JobMetrics>,
    /// Checkpoint statistics.
    pub stats: SharedStats,
    /// Node indices of the sources.
    pub sources: Vec<usize>,
}

/// The restore point, and whether it is the job's own checkpoint (or none) — a state a new
/// attempt may claim (see `checkpoint::claim`).
async fn load_restore_point(
    config: &RuntimeConfig,
    store: Option<&SharedStore>,
) -> Result<(Option<LoadedCheckpoint>, bool), JobError> {
    match &config.restore {
        RestoreMode::None => Ok((None, true)),
        RestoreMode::Latest | RestoreMode::LatestAllowingFallback => match store {
            Some(s) => {
                let policy = match config.restore {
                    RestoreMode::LatestAllowingFallback => fallback::Fallback::Allow,
                    _ => fallback::Fallback::Refuse,
                };
                let loaded = restore::load_latest_with(s.as_ref(), policy).await?;
                let output = if loaded.is_none() { fallback::sink_output(&config.job) } else { Vec::new() };
                if !output.is_empty() {
                    let evidence = format!("committed sink output ({})", output.join("; "));
                    return Err(RestoreError::ManifestsMissing { store: s.describe(), evidence }.into());
                }
                Ok((loaded, true))
            }
            None => Ok((None, false)),
        },
        RestoreMode::From(uri) => {
            let target = storage::layout::RestoreTarget::parse(uri);
            let own = config.job.checkpointing.as_ref().is_some_and(|c| target.is_checkpoint_of(&c.storage.uri));
            let storage::layout::RestoreTarget { root, key } = target;
            let default = sluice_crds::contract::job_config::StorageSpec {
                uri: root.clone(),
                endpoint: None,
                region: None,
                path_style: None,
                credentials_dir: None,
            };
            let options = config.job.checkpointing.as_ref().map(|c| &c.storage).unwrap_or(&default);
            let s = storage::open_uri(&root, options).await?;
            Ok((Some(restore::load(s.as_ref(), &key).await?), own))
        }
    }
}

/// Runs `config`'s job to completion.
pub async fn run(config: RuntimeConfig) -> Result<JobOutcome, JobError> {
    run_observed(config, |_| {}).await
}

/// Runs a job, handing observers the live counters once the job is wired.
pub async fn run_observed(config: RuntimeConfig, observe: impl FnOnce(JobHandles)) -> Result<JobOutcome, JobError> {
    let started = Instant::now();
    let job = &config.job;
    let pipeline = &job.pipeline;
    check_expressions(&pipeline.nodes)?;
    let plan = PhysicalPlan::build(pipeline);
    let store = match &job.checkpointing {
        Some(c) => Some(storage::open(&c.storage).await?),
        None => None,
    };

    // Restore, and continue checkpoint ids after every id ever published.
    let (loaded, claimable) = load_restore_point(&config, store.as_ref()).await?;
    let mut restore_plan = match &loaded {
        Some(l) => {
            tracing::info!(checkpoint = %l.manifest.checkpoint_id, location = %l.location, "restoring");
            restore::check_fit(l, &job.name, pipeline, config.allow_non_restored_state)?;
            restore::assign(l, pipeline)?
        }
        None => RestorePlan::default(),
    };
    let restored_from = restore_plan.checkpoint;
    let existing = match &store {
        // The completion note may name a checkpoint whose manifest is gone: never reuse its id.
        Some(s) => {
            let note = completed::read(s.as_ref()).await.ok().flatten();
            storage::manifests::list_ids(s.as_ref()).await?.last().copied().max(note)
        }
        None => None,
    };
    let mut first_id = restore::first_checkpoint_id(existing, restored_from);
    // Fence an older attempt that may still run (see `checkpoint::claim`): only where this
    // attempt restores the job's own latest state (or starts without state); a savepoint
    // restore follows a stop, and its files live elsewhere.
    if let Some(s) = &store
        && claimable
    {
        let restored = loaded.as_ref().map(|l| &l.manifest);
        claim::claim(s.as_ref(), &job.name, &config.run_id, pipeline.max_parallelism, restored, first_id)
            .await
            .map_err(|e| JobError::Checkpointing(format!("claiming checkpoint {first_id} before recovery: {e}")))?;
        first_id = first_id.next();
    }

    // Resolve every transactional sink before anything runs: commit what the checkpoint lists,
    // abort the rest.
    for (idx, node) in pipeline.nodes.iter().enumerate() {
        if let Some(recovery) = sink_recovery(node, job) {
            let committables = restore_plan.committables.remove(&idx).unwrap_or_default();
            let ctx = RecoveryContext {
                store: store.as_deref(),
                checkpoint: restored_from,
                parallelism: pipeline.parallelism_of(node),
                faults: &config.faults,
            };
            let (committed, aborted) = recovery
                .recover(&ctx, &committables)
                .await
                .map_err(|source| JobError::SinkRecovery { node: node.id.clone(), source })?;
            if committed + aborted > 0 {
                tracing::info!(node = %node.id, committed, aborted, "recovered sink transactions");
            }
        }
    }
    config.faults.hit("restore.after_sink_recovery");
    if let (Some(s), Some(c)) = (&store, &job.checkpointing) {
        let (s, retained, faults) = (s.clone(), c.retained as usize, config.faults.clone());
        tokio::spawn(async move {
            if let Err(e) = sweep(s.as_ref(), retained, &faults).await {
                tracing::warn!(error = %e, "start-up orphan sweep failed");
            }
        });
    }

    let metrics = JobMetrics::new(pipeline.nodes.iter().map(|n| n.id.clone()).collect());
    let stats_handle: SharedStats = Default::default();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let cancellation = Arc::new(Cancellation::default());
    let env = Arc::new(TaskEnv {
        store: store.clone(),
        max_parallelism: pipeline.max_parallelism,
        run_id: config.run_id.clone(),
        faults: config.faults.clone(),
        metrics: metrics.clone(),
        events: events_tx,
        io: tokio::runtime::Handle::current(),
        cancel: cancellation.clone(),
    });

    // Channels: senders[edge][upstream subtask], receivers[chain][downstream subtask].
    let exchange = LocalExchange::default();
    let mut senders: Vec<Vec<Vec<Box<dyn MessageSender>>>> = Vec::new();
    let mut receivers: Vec<Vec<Vec<Box<dyn MessageReceiver>>>> =
        plan.chains.iter().map(|c| (0..c.parallelism).map(|_| Vec::new()).collect()).collect();
    for e in &plan.edges {
        let (pu, pd) = (plan.chains[e.from].parallelism, plan.chains[e.to].parallelism);
        let mut per_up: Vec<Vec<Box<dyn MessageSender>>> = (0..pu).map(|_| Vec::new()).collect();
        for d in 0..pd {
            let ups: Vec<u32> = if e.partition == Partitioning::Forward { vec![d] } else { (0..pu).collect() };
            for u in ups {
                let (tx, rx) = exchange.channel();
                per_up[u as usize].push(tx);
                receivers[e.to][d as usize].push(rx);
            }
        }
        senders.push(per_up);
    }

    let mut tasks = JoinSet::new();
    let mut handles = Vec::new();
    let mut source_tasks = 0;
    for (ci, chain) in plan.chains.iter().enumerate() {
        for subtask in 0..chain.parallelism {
            let id = TaskId { chain: ci, subtask };
            let nodes: Vec<ChainNode> = chain
                .nodes
                .iter()
                .map(|&n| ChainNode { index: n, id: pipeline.nodes[n].id.clone(), parallelism: chain.parallelism })
                .collect();
            let mut head = None;
            let mut ops = Vec::new();
            let mut restored = Vec::new();
            for &n in &chain.nodes {
                let node = &pipeline.nodes[n];
                let ctx = OpContext {
                    node: node.id.clone(),
                    subtask,
                    parallelism: chain.parallelism,
                    max_parallelism: pipeline.max_parallelism,
                    key_groups: KeyGroupRange::for_subtask(subtask, chain.parallelism, pipeline.max_parallelism),
                    run_id: config.run_id.clone(),
                    job: job.name.clone(),
                    checkpointing: job.checkpointing.is_some(),
                    max_concurrent_checkpoints: job.checkpointing.as_ref().map_or(1, |c| c.max_concurrent),
                };
                let was_restored = restore_plan.operators.contains_key(&(n, subtask));
                let r = restore_plan.take(n, subtask);
                match instantiate(node, ctx, pipeline.error_policy, &config.faults)? {
                    Instance::Source(s) => {
                        head = Some(Head::Source(s, was_restored.then_some(r.operator_state)));
                    }
                    Instance::Operator(op) => {
                        ops.push(op);
                        restored.push(r);
                    }
                }
            }
            let head = match head {
                Some(h) => {
                    source_tasks += 1;
                    h
                }
                None => Head::Inputs(std::mem::take(&mut receivers[ci][subtask as usize])),
            };
            let is_source = matches!(head, Head::Source(..));
            let outputs = chain
                .outputs
                .iter()
                .map(|&e| {
                    let s = std::mem::take(&mut senders[e][subtask as usize]);
                    let edge = &plan.edges[e];
                    OutputEdge::of_output(edge.partition, edge.output, s, pipeline.max_parallelism)
                })
                .collect();
            let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
            let task = Task::new(id, nodes, ops, restored, Router::new(outputs), ctl_rx, env.clone())?;
            handles.push(TaskHandle { id, control: ctl_tx, is_source });
            spawn_task_thread(&mut tasks, id, task.run(head));
        }
    }
    drop(env);

    let cfg = match &job.checkpointing {
        Some(c) => CoordinatorConfig {
            interval_ms: Some(c.interval.as_millis() as u64),
            timeout_ms: c.timeout.as_millis() as u64,
            min_pause_ms: c.min_pause.as_millis() as u64,
            max_concurrent: c.max_concurrent as usize,
            tolerable_failures: c.tolerable_failures,
        },
        None => CoordinatorConfig {
            interval_ms: None,
            timeout_ms: u64::MAX / 4,
            min_pause_ms: 0,
            max_concurrent: 1,
            tolerable_failures: 0,
        },
    };
    let store_for_sweep = store.clone();
    let driver = Driver::new(
        Coordinator::new(cfg, plan.task_count(), source_tasks, first_id),
        events_rx,
        handles,
        store,
        job.name.clone(),
        pipeline.max_parallelism,
        job.checkpointing.as_ref().map_or(1, |c| c.retained as usize),
        config.faults.clone(),
        stats_handle.clone(),
    )
    .with_control(job.checkpointing.as_ref().map(|c| c.storage.clone()), config.control.clone())
    .with_cancellation(cancellation)
    .with_run_id(&config.run_id);
    let sources: Vec<usize> = pipeline
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind().is_some_and(|k| k.is_source()))
        .map(|(i, _)| i)
        .collect();
    let handles = JobHandles { metrics: metrics.clone(), stats: stats_handle.clone(), sources: sources.clone() };
    observe(handles.clone());
    if let Some(c) = &config.control {
        let _ = c.handles.set(handles.clone());
        *c.restored_from.lock().unwrap_or_else(|p| p.into_inner()) = loaded.as_ref().map(|l| l.location.clone());
        c.set_ready(true);
    }
    let progress = config.progress.then(|| tokio::spawn(report_progress(handles)));

    let mut driver = tokio::spawn(driver.run());
    let mut driver_done = false;
    let mut cancel = None;
    let result = loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break Ok(()),
                Some(Ok(Ok(()))) => {}
                // A task that lost its coordinator reports the coordinator's reason instead.
                Some(Ok(Err(e @ TaskError::Coordinator { .. }))) if !driver_done => {
                    driver_done = true;
                    break Err(match tokio::time::timeout(Duration::from_secs(5), &mut driver).await {
                        Ok(Ok(Err(reason))) => JobError::Checkpointing(reason),
                        _ => first_cause(e, &mut tasks).await,
                    });
                }
                Some(Ok(Err(e))) => break Err(first_cause(e, &mut tasks).await),
                Some(Err(e)) => break Err(JobError::Checkpointing(format!("task panicked: {e}"))),
            },
            r = &mut driver, if !driver_done => {
                driver_done = true;
                match r {
                    Ok(Ok(DriverExit::Done)) => {}
                    // Every task has ended on the cancel: their results still count.
                    Ok(Ok(DriverExit::Cancel(reply))) => cancel = Some(reply),
                    Ok(Err(reason)) => break Err(JobError::Checkpointing(reason)),
                    Err(e) => break Err(JobError::Checkpointing(format!("coordinator panicked: {e}"))),
                }
            }
        }
    };
    tasks.abort_all();
    if result.is_ok() && !driver_done {
        // Every task finished: let the coordinator finish savepoint copies (bounded wait).
        match tokio::time::timeout(Duration::from_secs(60), &mut driver).await {
            Ok(Ok(Ok(DriverExit::Cancel(reply)))) => cancel = Some(reply),
            Ok(_) => {}
            Err(_) => tracing::warn!("coordinator did not finish within 60 s after the tasks"),
        }
    }
    driver.abort();
    let cancelled = cancel.is_some();
    if let Some(c) = &config.control {
        c.set_ready(false);
        c.set_job_state(match (&result, cancelled) {
            (Err(_), _) => JobState::Failed,
            (Ok(()), true) => JobState::Cancelled,
            (Ok(()), false) => JobState::Finished,
        });
    }
    if let Some(p) = progress {
        p.abort();
    }
    if result.is_ok()
        && let (Some(s), Some(c)) = (&store_for_sweep, &job.checkpointing)
        && let Err(e) = sweep(s.as_ref(), c.retained as usize, &config.faults).await
    {
        tracing::warn!(error = %e, "final retention sweep failed; the next run sweeps again");
    }
    if let Some(reply) = cancel {
        let _ = reply.send(match &result {
            Ok(()) => {
                tracing::info!("job cancelled on request");
                Ok(None)
            }
            Err(e) => Err(format!("the cancel failed: {e}")),
        });
    }
    result?;
    let checkpoints = stats(&stats_handle).clone();
    Ok(JobOutcome {
        restored_from,
        checkpoints,
        source_records: metrics.source_records(&sources),
        elapsed: started.elapsed(),
        cancelled,
    })
}

/// Runs a task on a thread of its own (with a single-threaded async runtime for its channels),
/// so that every task gets a core of its own as the OS schedules it; storage I/O and the
/// coordinator stay on the main runtime. The join set sees the task's result.
fn spawn_task_thread(
    tasks: &mut JoinSet<Result<(), TaskError>>,
    id: TaskId,
    fut: impl std::future::Future<Output = Result<(), TaskError>> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name(format!("sluice-{id}")).spawn(move || {
        let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(fut),
            Err(e) => Err(TaskError::Thread { task: id, message: format!("cannot start its runtime: {e}") }),
        };
        let _ = tx.send(result);
    });
    let spawn_error = spawned.err().map(|e| e.to_string());
    tasks.spawn(async move {
        if let Some(message) = spawn_error {
            return Err(TaskError::Thread { task: id, message });
        }
        rx.await.unwrap_or_else(|_| Err(TaskError::Thread { task: id, message: "panicked".into() }))
    });
}

/// A task that failed because its downstream closed is a symptom: report the real cause.
async fn first_cause(first: TaskError, tasks: &mut JoinSet<Result<(), TaskError>>) -> JobError {
    if !matches!(first, TaskError::Downstream { .. }) {
        return first.into();
    }
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            j = tasks.join_next() => match j {
                Some(Ok(Err(e))) if !matches!(e, TaskError::Downstream { .. }) => return e.into(),
                Some(_) => {}
                None => return first.into(),
            },
            _ = &mut deadline => return first.into(),
        }
    }
}

async fn report_progress(h: JobHandles) {
    let start = Instant::now();
    let mut last = (0u64, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let records = h.metrics.source_records(&h.sources);
        let rate = (records - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
        last = (records, Instant::now());
        let s = stats(&h.stats).clone();
        let ckpt = match &s.latest {
            Some(c) => format!("last checkpoint {} ({}, {} ms)", c.id, human_bytes(c.size_bytes), c.duration_ms),
            None => "no checkpoint yet".to_string(),
        };
        println!(
            "[{:>5.1}s] {records:>12} records  {:>10.0} rec/s  {ckpt}  completed {} failed {}",
            start.elapsed().as_secs_f64(),
            rate,
            s.completed,
            s.failed
        );
    }
}

/// Formats a byte count for people.
pub fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
