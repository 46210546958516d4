//! The model's state: the external world (checkpoint store, sink transactions) plus every
//! attempt's in-memory state.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};

use sluice_crds::CheckpointId;
use sluice_runtime::checkpoint::Coordinator;
use sluice_runtime::engine::Barrier;
use sluice_runtime::engine::barrier::BarrierAligner;

/// One input record: `(source, sequence number)`.
pub type Rec = (u8, u8);

/// Index of a transaction in [`State::txns`].
pub type TxnId = usize;

/// A pending transaction as a sink keeps it: the checkpoint that pre-committed it, and it.
pub type Committable = (CheckpointId, TxnId);

/// What travels on a channel between tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// A record.
    Rec(Rec),
    /// A barrier.
    Barrier(Barrier),
    /// End of stream.
    End,
}

/// A coordinator → task command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ctl {
    /// Sources: inject this barrier.
    Trigger(Barrier),
    /// Sinks: the checkpoint is complete, commit up to it.
    Complete(CheckpointId),
    /// Sources: end the stream.
    EndInput,
}

/// A task → coordinator report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// Task `.1` acked checkpoint `.0`.
    Ack(CheckpointId, usize),
    /// Source `.0` has no more data.
    SourceFinished(usize),
}

/// A transaction's fate in the external system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnStatus {
    /// Being written.
    Open,
    /// Durable, invisible.
    PreCommitted,
    /// Visible to readers.
    Committed,
    /// Thrown away.
    Aborted,
}

/// A sink transaction in the external system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Txn {
    /// The sink.
    pub sink: usize,
    /// The attempt that opened it.
    pub attempt: usize,
    /// Its records.
    pub records: Vec<Rec>,
    /// Its fate.
    pub status: TxnStatus,
}

/// A published manifest: source offsets and every sink's pending committables.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Manifest {
    /// Next record of each source.
    pub offsets: Vec<u8>,
    /// Per sink, the transactions to commit on restore.
    pub committables: Vec<Vec<Committable>>,
    /// The attempt that wrote it.
    pub by: usize,
}

/// What a task captured at a barrier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Snap {
    /// A source's offset.
    Source(u8),
    /// The operator (stateless apart from alignment).
    Op,
    /// A sink's pending committables.
    Sink(Vec<Committable>),
}

/// The engine's coordinator, hashed through its (deterministic) `Debug` form.
#[derive(Clone, Debug, PartialEq)]
pub struct Coord(pub Coordinator);

impl Eq for Coord {}

impl Hash for Coord {
    fn hash<H: Hasher>(&self, h: &mut H) {
        format!("{:?}", self.0).hash(h);
    }
}

/// A source task.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    /// Next record to read.
    pub offset: u8,
    /// `SourceFinished` sent.
    pub reported: bool,
    /// `End` sent.
    pub ended: bool,
    /// Commands from the coordinator.
    pub control: VecDeque<Ctl>,
}

/// A sink task (the engine's `TwoPhaseCommitSink`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sink {
    /// The open transaction.
    pub open: Option<TxnId>,
    /// Pre-committed, not yet committed.
    pub pending: Vec<Committable>,
    /// How many of `pending` the current completion still has to commit.
    pub committing: usize,
    /// `End` received.
    pub ended: bool,
    /// Commands from the coordinator.
    pub control: VecDeque<Ctl>,
}

/// Where an attempt is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Launched; will read the store.
    Restoring,
    /// Restored `manifest` (if any); recovering sink `next`.
    Recovering {
        /// The restored checkpoint.
        restored: Option<(CheckpointId, Manifest)>,
        /// The first id this attempt will use.
        first_id: CheckpointId,
        /// Next sink to recover.
        next: usize,
    },
    /// Tasks and coordinator run.
    Running(Box<Run>),
}

/// A running attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Run {
    /// The engine's coordinator.
    pub coord: Coord,
    /// Its clock (ms).
    pub now: u64,
    /// Manifests being written (spawned publish jobs).
    pub publishing: Vec<(CheckpointId, Manifest)>,
    /// Publish results not yet fed to the coordinator: `(id, won)`.
    pub results: Vec<(CheckpointId, bool)>,
    /// Snapshots uploaded, by checkpoint and task.
    pub snaps: BTreeMap<(CheckpointId, usize), Snap>,
    /// Sources.
    pub sources: Vec<Source>,
    /// Source `i` → operator input `i`.
    pub inputs: Vec<VecDeque<Item>>,
    /// The engine's aligner.
    pub aligner: BarrierAligner,
    /// Operator inputs that ended.
    pub inputs_ended: Vec<bool>,
    /// The operator forwarded `End` to its outputs.
    pub op_ended: bool,
    /// Operator → sink `j`.
    pub outputs: Vec<VecDeque<Item>>,
    /// Sinks.
    pub sinks: Vec<Sink>,
    /// Per worker: its process runs and has not failed. A failed worker's tasks take no step.
    pub up: Vec<bool>,
    /// The connection between worker 0 and worker 1 (the data exchange and the control link)
    /// is up; always up with one worker.
    pub conn: bool,
    /// The attempt whose process fills worker 1's slot: the attempt itself, unless a worker of
    /// another attempt was let join ([`Variant::JoinAnyAttempt`](super::Variant::JoinAnyAttempt)).
    /// Such a process wires its tasks from this attempt's `Start` and runs them as this
    /// attempt's; the model keeps only whose process it is, for [`Seen::foreign_ack`].
    pub member: usize,
}

/// One attempt (a runtime process launched by the operator).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// Still running.
    pub alive: bool,
    /// The operator has replaced it although it still runs.
    pub zombie: bool,
    /// With two workers: the attempt whose worker-1 process joined worker 0's control
    /// listener (`None` until one did; `accept_all` comes before the restore).
    pub member: Option<usize>,
    /// Its phase.
    pub phase: Phase,
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Every attempt launched; the last one is the operator's current attempt.
    pub attempts: Vec<Attempt>,
    /// The checkpoint store: published manifests by id.
    pub manifests: BTreeMap<CheckpointId, Manifest>,
    /// Successful publishes per id (ghost).
    pub publishes: BTreeMap<CheckpointId, u8>,
    /// Every sink transaction ever opened.
    pub txns: Vec<Txn>,
    /// Per sink, the attempt that last fenced it.
    pub fence: Vec<usize>,
    /// Crashes and zombie relaunches used.
    pub crashes: u8,
    /// Zombie relaunches used.
    pub zombies: u8,
    /// Clock ticks used.
    pub ticks: u8,
    /// Single-worker crashes used.
    pub worker_crashes: u8,
    /// Connection drops used.
    pub drops: u8,
    /// A worker-1 process of an attempt that died before that process joined it: it is still
    /// starting and will try to join whichever worker 0 listens at the coordinator address.
    pub late: Option<usize>,
    /// Ghosts for `sometimes` properties.
    pub seen: Seen,
}

/// Things that happened, for the `sometimes` properties (reachability witnesses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen {
    /// A commit of a transaction that was already aborted was attempted.
    pub commit_of_aborted: bool,
    /// Recovery committed a transaction that was still pending.
    pub recovery_commit: bool,
    /// Recovery aborted a pre-committed transaction.
    pub recovery_abort_precommitted: bool,
    /// An attempt crashed with a manifest published whose transactions were not all committed.
    pub crash_after_publish_before_commit: bool,
    /// An attempt crashed between committing sink 0's and sink 1's transactions of one checkpoint.
    pub crash_between_sinks: bool,
    /// An attempt crashed while recovering sinks.
    pub crash_during_recovery: bool,
    /// An attempt lost a publish race.
    pub publish_race_lost: bool,
    /// A task was fenced.
    pub fenced: bool,
    /// The operator blocked an input during alignment while the other still had records.
    pub aligned_with_block: bool,
    /// A coordinator counted an ack from a worker process of another attempt.
    pub foreign_ack: bool,
    /// A dropped connection lost a message in flight.
    pub lost_in_flight: bool,
    /// A worker of a failed attempt took a step after its replacement was launched.
    pub remnant_step: bool,
    /// A worker of an older attempt was refused by a newer attempt's worker 0.
    pub join_refused: bool,
}
