//! One job over several worker processes. Every worker runs its share of every node's subtasks
//! ([`placement`]: subtask `i` on worker `i % N`), its channels to other workers through a
//! [`NetExchange`]. Worker 0 also runs the attempt's one checkpoint coordinator: it chooses the
//! restore point, fences older attempts and recovers the sinks, then tells the others to start
//! ([`leader`]); each other worker keeps one control connection to it ([`link`], messages in
//! [`protocol`]) that carries the coordinator's commands to its tasks and their events, ends and
//! failures back ([`member`]). Any worker lost — its process gone, a connection cut, heartbeats
//! missed — fails the attempt; whoever supervises the workers (the operator, or
//! `sluice-runtime run --workers N`) relaunches them all from the latest completed checkpoint.

mod leader;
pub use leader::Leader;
pub mod link;
mod member;
pub mod placement;
pub mod protocol;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use self::link::{LinkConfig, LinkError};
use self::placement::ChannelLocator;
use super::{JobError, JobOutcome, RuntimeConfig};
use crate::engine::net::{NetConfig, NetError, NetExchange, NetMetrics};
use crate::graph::PhysicalPlan;
use crate::nodes::preflight;

/// Where one worker of an attempt stands among the others.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// This worker's index; worker 0 runs the coordinator.
    pub index: usize,
    /// Every worker's exchange address, by index (the worker count is its length).
    pub peers: Vec<SocketAddr>,
    /// Where this worker's exchange listens (default: its own entry of `peers`).
    pub listen: Option<SocketAddr>,
    /// Worker 0's control address, which the others connect to.
    pub coordinator: SocketAddr,
    /// Where worker 0 listens for control connections (default: `coordinator`).
    pub coordinator_listen: Option<SocketAddr>,
    /// The attempt: workers of different attempts refuse each other.
    pub attempt: String,
    /// How long peers may take to start and connect.
    pub connect_timeout: Duration,
    /// How often an idle control connection says it is alive.
    pub heartbeat: Duration,
    /// Silence on a control connection after which the other side is taken as lost.
    pub heartbeat_timeout: Duration,
}

impl WorkerSpec {
    /// Worker `index` of `peers` in `attempt`, coordinator at `coordinator`, with the default
    /// timeouts (30 s to connect, a heartbeat a second, lost after 10 s of silence).
    pub fn new(index: usize, peers: Vec<SocketAddr>, coordinator: SocketAddr, attempt: impl Into<String>) -> Self {
        WorkerSpec {
            index,
            peers,
            listen: None,
            coordinator,
            coordinator_listen: None,
            attempt: attempt.into(),
            connect_timeout: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(10),
        }
    }

    fn link_config(&self, job: u64) -> LinkConfig {
        LinkConfig {
            attempt: self.attempt.clone(),
            count: self.peers.len(),
            job,
            connect_timeout: self.connect_timeout,
            handshake_timeout: Duration::from_secs(5),
            heartbeat: self.heartbeat,
            heartbeat_timeout: self.heartbeat_timeout,
        }
    }
}

/// What went wrong between the workers of an attempt.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker's place in the attempt is not a valid one.
    #[error("worker configuration: {0}")]
    Config(String),
    /// A control connection could not be set up.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The exchange could not start or reach its peers.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Worker 0, which runs the coordinator, was lost.
    #[error("lost worker 0 (the coordinator): {0}")]
    LostCoordinator(String),
    /// Another worker was lost before it got ready.
    #[error("worker {worker} was lost: {reason}")]
    Lost {
        /// Its index.
        worker: usize,
        /// Why.
        reason: String,
    },
    /// A worker did not get ready in time.
    #[error("worker {worker} did not get ready within {within:?}")]
    NotReady {
        /// Its index.
        worker: usize,
        /// The connect timeout.
        within: Duration,
    },
    /// A worker sent what the protocol does not expect at that point.
    #[error("worker {worker} sent an unexpected control message: {what}")]
    Protocol {
        /// Its index.
        worker: usize,
        /// The message.
        what: String,
    },
}

/// A digest of a job document as workers plan it (64-bit FNV-1a over its JSON form): the
/// workers of one attempt must agree on it, or they would place and wire different graphs —
/// a relaunch that reads an edited document while it is being rewritten, a pod that sees a
/// ConfigMap update before another.
pub fn job_digest(job: &sluice_crds::JobConfig) -> u64 {
    let bytes = serde_json::to_vec(job).unwrap_or_default();
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Runs worker `spec.index` of a job over `spec.peers.len()` workers. Worker 0 returns the
/// run's outcome (it ran the coordinator); the others return `None` once their tasks ended
/// and worker 0 said goodbye.
pub async fn run_worker(config: RuntimeConfig, spec: WorkerSpec) -> Result<Option<JobOutcome>, JobError> {
    let count = spec.peers.len();
    if spec.index >= count {
        return Err(WorkerError::Config(format!("worker {} of {count}", spec.index)).into());
    }
    preflight::check(&config.job)?;
    let plan = PhysicalPlan::build(&config.job.pipeline);
    let listen = spec.listen.unwrap_or(spec.peers[spec.index]);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| WorkerError::from(NetError::Listen { addr: listen, source }))?;
    let mut net = NetConfig::new(spec.index, spec.peers.clone(), spec.attempt.clone());
    net.connect_timeout = spec.connect_timeout;
    let locate = Box::new(ChannelLocator::new(&plan, count));
    let exchange =
        NetExchange::with_listener(net, listener, locate, &NetMetrics::default()).map_err(WorkerError::from)?;
    let links = spec.link_config(job_digest(&config.job));
    if spec.index > 0 {
        let link = link::connect(spec.coordinator, spec.index, &links).await.map_err(WorkerError::from)?;
        tracing::info!(worker = spec.index, attempt = %spec.attempt, "joined worker 0");
        return member::run(&config, &spec, &plan, exchange, link).await.map(|()| None);
    }
    let at = spec.coordinator_listen.unwrap_or(spec.coordinator);
    let control = TcpListener::bind(at).await.map_err(|e| WorkerError::from(LinkError::Io(e)))?;
    let joined = link::accept_all(control, &links).await.map_err(WorkerError::from)?;
    tracing::info!(workers = count, attempt = %spec.attempt, "every worker joined");
    let mut leader = Leader::new(joined, count, spec.connect_timeout);
    let here = placement::placement(&plan, 0, count);
    let result = super::run_parts(config, |_| {}, &[(here, &exchange)], None, Some(&mut leader)).await;
    leader.finish().await;
    exchange.shutdown().await;
    result.map(Some)
}
