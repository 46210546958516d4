//! Runs a job: recover (restore point, fencing, sink transactions), wire tasks and channels,
//! supervise them beside the checkpoint driver, wrap up. One module per step:
//! [`recover`], [`wiring`], [`supervise`]; a job over several worker processes in [`workers`].

mod progress;
mod recover;
mod supervise;
pub mod wiring;
pub mod workers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_crds::contract::control::JobState;
use sluice_crds::contract::job_config::ValidationError;
use sluice_crds::{CheckpointId, JobConfig};
use tokio::sync::mpsc;

use crate::checkpoint::CheckpointError;
use crate::checkpoint::coordinator::Coordinator;
use crate::checkpoint::driver::{CheckpointStats, Driver, SharedStats, stats};
use crate::checkpoint::driver::{DriverCommand, SavepointListener};
use crate::checkpoint::restore::RestoreError;
use crate::checkpoint::retention::sweep;
use crate::checkpoint::snapshot::StoreCaptureWriter;
use crate::engine::cancel::Cancellation;
use crate::engine::capture::CaptureWriter;
use crate::engine::channel::{Exchange, ExchangeError, LocalExchange};
use crate::engine::metrics::JobMetrics;
use crate::engine::task::{TaskEnv, TaskError};
use crate::error::{ErrorKind, storage_kind};
use crate::fault::Faults;
use crate::graph::{JobShape, PhysicalPlan};
use crate::nodes::preflight;
use crate::ops::OpError;
use crate::storage::{self, SharedStore};

pub use progress::human_bytes;
pub use wiring::Placement;

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
    /// Who watches and steers the run from outside (the control endpoint), if anyone.
    pub control: Option<Arc<dyn RunObserver>>,
    /// Restore a checkpoint of another job, or with state for nodes this job no longer has
    /// (dropped), instead of refusing it (`--allow-non-restored-state`).
    pub allow_non_restored_state: bool,
}

/// Why a job stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job document is invalid (checked before anything runs; see
    /// [`crate::nodes::preflight`]): every problem, each naming its field and node.
    #[error("invalid job document: {0}")]
    Invalid(#[from] ValidationError),
    /// A node cannot be built as the document says.
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
    /// A task failed. Said in the user's terms (the node and its subtask), and said once: the
    /// task error is not linked as a source, whose text would repeat it.
    #[error("{}", describe_task(.0))]
    Task(TaskError),
    /// A channel between tasks could not be set up.
    #[error("wiring: {0}")]
    Exchange(#[from] ExchangeError),
    /// Checkpointing stopped the job.
    #[error("checkpointing: {0}")]
    Checkpointing(#[from] CheckpointError),
    /// The workers of a multi-worker attempt lost one another.
    #[error("workers: {0}")]
    Workers(#[from] workers::WorkerError),
}

impl From<TaskError> for JobError {
    fn from(e: TaskError) -> JobError {
        JobError::Task(e)
    }
}

/// A task's failure in the job document's terms: the node and subtask for an operator's
/// error; the subtask for the rest (a chain of nodes is the engine's business).
pub(crate) fn describe_task(e: &TaskError) -> String {
    match e {
        TaskError::Op { task, source } => {
            let text = source.to_string();
            let node = format!("node {}", source.node());
            match text.strip_prefix(&node) {
                Some(rest) => format!("{node} (subtask {}){rest}", task.subtask),
                None => format!("subtask {}: {text}", task.subtask),
            }
        }
        TaskError::Downstream { task } => format!("subtask {}: its downstream channel closed", task.subtask),
        TaskError::Upstream { task, failure } => format!("subtask {}: an input was lost: {failure}", task.subtask),
        TaskError::Coordinator { task } => {
            format!("subtask {}: the checkpoint coordinator went away", task.subtask)
        }
        TaskError::Thread { task, message } => format!("subtask {}: its thread failed: {message}", task.subtask),
        TaskError::Remote { message, .. } => message.clone(),
    }
}

impl JobError {
    /// What the failure means for the run, which decides the exit status (see
    /// [`crate::error`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            JobError::Invalid(_) => ErrorKind::BadInput,
            JobError::Config(e) | JobError::SinkRecovery { source: e, .. } => e.kind(),
            JobError::Storage(e) => storage_kind(e),
            JobError::Restore(e) => e.kind(),
            JobError::Task(e) => e.kind(),
            JobError::Exchange(_) | JobError::Workers(_) => ErrorKind::Retryable,
            JobError::Checkpointing(e) => e.kind(),
        }
    }

    /// Why the run must stop for a person to decide (exit status 3), if it must: pre-committed
    /// output of a completed checkpoint could not be committed, or restore refused because
    /// going on could duplicate committed output.
    pub fn data_loss_kind(&self) -> Option<sluice_crds::contract::control::DataLossKind> {
        use sluice_crds::contract::control::DataLossKind;
        match self {
            _ if self.kind() != ErrorKind::DataLossRisk => None,
            JobError::Restore(_) => Some(DataLossKind::RestoreRefused),
            _ => Some(DataLossKind::UncommittableTransaction),
        }
    }

    /// Whether the job document is at fault, found before any record was processed:
    /// `sluice-runtime` exits with
    /// [`EXIT_INVALID_JOB`](sluice_crds::contract::control::EXIT_INVALID_JOB).
    pub fn is_invalid_job(&self) -> bool {
        match self {
            JobError::Invalid(_) => true,
            JobError::Config(e) | JobError::SinkRecovery { source: e @ OpError::Config { .. }, .. } => {
                matches!(e, OpError::Config { .. } | OpError::Expression { .. })
            }
            _ => false,
        }
    }

    /// Whether the run must not be retried as is (exit status 3): see [`Self::data_loss_kind`].
    pub fn is_data_loss(&self) -> bool {
        self.kind() == ErrorKind::DataLossRisk
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
    /// Records counted before this run: the restored checkpoint's total (0 for a fresh start;
    /// `None` when the restored manifest has no count).
    pub records_before: Option<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The run was cancelled on request (its output resumes from the latest checkpoint).
    pub cancelled: bool,
}

/// Who watches and steers a run from outside (the control endpoint, which sits above the job):
/// the run takes its requests for the driver, tells it how savepoints end, hands it the live
/// counters once wired, and tells it how the run ended.
pub trait RunObserver: SavepointListener {
    /// The requests (savepoints, stops) the driver answers; taken once.
    fn take_commands(&self) -> Option<mpsc::UnboundedReceiver<DriverCommand>>;
    /// The run is wired and running: its counters, and the location it restored from.
    fn started(&self, handles: JobHandles, restored_from: Option<String>);
    /// The run ended in `state`.
    fn ended(&self, state: JobState);
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
    /// The graph as observers show it.
    pub shape: Arc<JobShape>,
}

/// Runs `config`'s job to completion.
pub async fn run(config: RuntimeConfig) -> Result<JobOutcome, JobError> {
    run_observed(config, |_| {}).await
}

/// Runs a job, handing observers the live counters once the job is wired.
pub async fn run_observed(config: RuntimeConfig, observe: impl FnOnce(JobHandles)) -> Result<JobOutcome, JobError> {
    let exchange = LocalExchange::default();
    // Boxed: the run's future is deep enough that callers nesting it in theirs would hit the
    // compiler's query depth limit.
    Box::pin(run_parts(config, observe, &[(Placement::All, &exchange)], Some(&exchange), None)).await
}

/// Runs a job whose subtasks are split over `parts`, each part wired through its own exchange,
/// all in this process under one checkpoint coordinator: what a run over several workers does
/// per worker, without the coordination across processes. Lets a network exchange carry a
/// real job end to end in a test.
pub async fn run_split(config: RuntimeConfig, parts: &[(Placement, &dyn Exchange)]) -> Result<JobOutcome, JobError> {
    Box::pin(run_parts(config, |_| {}, parts, None, None)).await
}

/// Runs a job wired in `parts`; `local` is the exchange that must have paired every channel
/// when every subtask runs through it; `leader`, on worker 0 of a multi-worker run, reaches the
/// tasks the other workers run.
async fn run_parts(
    config: RuntimeConfig,
    observe: impl FnOnce(JobHandles),
    parts: &[(Placement, &dyn Exchange)],
    local: Option<&LocalExchange>,
    leader: Option<&mut workers::Leader>,
) -> Result<JobOutcome, JobError> {
    let started = Instant::now();
    let (job, pipeline) = (&config.job, &config.job.pipeline);
    preflight::check(job)?;
    let plan = PhysicalPlan::build(pipeline);
    let recover::Prepared { store, loaded, mut restore_plan, first_id } = recover::prepare(&config).await?;
    if let Some(l) = leader.as_deref() {
        l.start(loaded.as_ref().map(|l| l.location.as_str()));
    }
    let restored_from = restore_plan.checkpoint;
    let records_before = match &loaded {
        Some(l) => l.manifest.records,
        None => Some(0),
    };

    let shape = Arc::new(JobShape::new(&job.name, pipeline, &plan));
    let metrics = JobMetrics::new(shape.nodes.iter().map(|n| (n.id.clone(), n.parallelism)).collect());
    let stats_handle: SharedStats = Default::default();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let cancellation = Arc::new(Cancellation::default());
    let env = task_env(&config, store.clone(), metrics.clone(), events_tx, cancellation.clone());
    let mut wired = wiring::Wired::default();
    for (placement, exchange) in parts {
        let wiring = wiring::Wiring { config: &config, plan: &plan, placement, exchange: *exchange, env: env.clone() };
        wiring::wire(&wiring, &mut restore_plan, &mut wired)?;
    }
    if let Some(l) = leader {
        l.attach(&plan, pipeline, &mut wired, &env.events, &cancellation).await?;
    }
    // The tasks (and the other workers' proxies) hold the only senders of `events` now: the
    // driver sees them all end.
    drop(env);
    // Every subtask runs here, so every channel must have both ends wired.
    if let Some(&channel) = local.and_then(|l| l.unpaired().first().copied()).as_ref() {
        return Err(ExchangeError { channel, reason: "only one end was wired".into() }.into());
    }

    let coordinator = Coordinator::new(
        supervise::coordinator_config(job),
        plan.task_count(),
        wiring::source_task_count(&plan, pipeline),
        first_id,
    );
    let driver = Driver::new(
        coordinator,
        events_rx,
        wired.handles,
        store.clone(),
        job.name.clone(),
        pipeline.max_parallelism,
        job.checkpointing.as_ref().map_or(1, |c| c.retained as usize),
        config.faults.clone(),
        stats_handle.clone(),
    )
    .with_commands(
        job.checkpointing.as_ref().map(|c| c.storage.clone()),
        config.control.as_ref().and_then(|c| c.take_commands()),
        config.control.clone().map(|c| c as Arc<dyn SavepointListener>),
    )
    .with_cancellation(cancellation)
    .with_run_id(&config.run_id)
    .with_records_before(records_before);
    let sources: Vec<usize> = pipeline
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind().is_some_and(|k| k.is_source()))
        .map(|(i, _)| i)
        .collect();
    let handles = JobHandles { metrics: metrics.clone(), stats: stats_handle.clone(), sources: sources.clone(), shape };
    observe(handles.clone());
    if let Some(c) = &config.control {
        c.started(handles.clone(), loaded.as_ref().map(|l| l.location.clone()));
    }
    let progress =
        config.progress.then(|| tokio::spawn(progress::report_progress(handles, restored_from, records_before)));

    let ending = supervise::supervise(wired.tasks, driver).await;
    if let Some(p) = progress {
        p.abort();
    }
    let cancelled = wrap_up(&config, store.as_ref(), ending).await?;
    Ok(JobOutcome {
        restored_from,
        checkpoints: stats(&stats_handle).clone(),
        source_records: metrics.source_records(&sources),
        records_before,
        elapsed: started.elapsed(),
        cancelled,
    })
}

/// What every task of the run shares.
fn task_env(
    config: &RuntimeConfig,
    store: Option<SharedStore>,
    metrics: Arc<JobMetrics>,
    events: mpsc::UnboundedSender<crate::engine::message::TaskEvent>,
    cancel: Arc<Cancellation>,
) -> Arc<TaskEnv> {
    let snapshots = store.map(|store| {
        Arc::new(StoreCaptureWriter {
            store,
            run_id: config.run_id.clone(),
            max_parallelism: config.job.pipeline.max_parallelism,
            faults: config.faults.clone(),
        }) as Arc<dyn CaptureWriter>
    });
    Arc::new(TaskEnv {
        snapshots,
        faults: config.faults.clone(),
        metrics,
        events,
        io: tokio::runtime::Handle::current(),
        cancel,
    })
}

/// After the run: the job state the control endpoint reports, a final retention sweep after a
/// clean end, and the answer to a cancel. Returns whether the run was cancelled.
async fn wrap_up(
    config: &RuntimeConfig,
    store: Option<&SharedStore>,
    ending: supervise::Ending,
) -> Result<bool, JobError> {
    let supervise::Ending { result, cancel } = ending;
    let cancelled = cancel.is_some();
    if let Some(c) = &config.control {
        c.ended(match (&result, cancelled) {
            (Err(_), _) => JobState::Failed,
            (Ok(()), true) => JobState::Cancelled,
            (Ok(()), false) => JobState::Finished,
        });
    }
    if result.is_ok()
        && let (Some(s), Some(c)) = (store, &config.job.checkpointing)
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
    result.map(|()| cancelled)
}
