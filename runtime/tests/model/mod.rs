//! A model of Sluice's checkpoint + two-phase-commit + recovery protocol, checked with
//! [stateright](https://docs.rs/stateright) for every interleaving and every crash point.
//!
//! # What is modelled
//!
//! - **One job attempt = one runtime process**: the coordinator, `N` sources, one operator with
//!   `N` inputs that aligns barriers, and `M` two-phase-commit sinks (the operator broadcasts
//!   every record to every sink, so every input must end up committed once in *every* sink).
//! - **The coordinator is the engine's own** [`Coordinator`](sluice_runtime::checkpoint::coordinator::Coordinator):
//!   the model feeds it the same inputs the driver does (ticks, acks, finished sources, publish
//!   results) and carries out its actions (trigger, publish, notify, end input, fail).
//! - **The operator's alignment is the engine's own**
//!   [`BarrierAligner`](sluice_runtime::engine::barrier::BarrierAligner): a blocked channel is not
//!   read until alignment completes.
//! - **The sink commits with the engine's own** [`ready_to_commit`](sluice_runtime::connectors::two_phase::ready_to_commit)
//!   (commit every pending transaction up to the completed checkpoint), one transaction per
//!   step, so a crash can fall between any two commits, of one sink or between sink 1 and sink 2.
//! - **Restore** picks the newest manifest with [`latest_restorable`](sluice_runtime::storage::manifests::latest_restorable)
//!   and numbers the next checkpoint with [`first_checkpoint_id`](sluice_runtime::checkpoint::restore::first_checkpoint_id),
//!   as `job.rs` does; then **sink recovery** runs sink by sink: commit the transactions the
//!   restored manifest lists, abort every other transaction of that sink, and fence the sink
//!   (Kafka: InitProducerId bumps the epoch) so older attempts can no longer write or pre-commit.
//! - **The checkpoint store**: a manifest is published with create-if-absent
//!   (`publish.rs`, `put_if_absent`); a lost race is fatal for the loser (`PublishFailed(.., true)`).
//! - **Channels**: source → operator and operator → sink channels, and every coordinator → task
//!   control queue, are FIFO. Task → coordinator reports and publish results are delivered in
//!   any order (different tasks and spawned publish jobs interleave freely).
//! - **Faults**: an attempt may crash in any state (before/after a barrier, between pre-commit and
//!   ack = during the snapshot upload, after an ack, after the manifest is written but before the
//!   coordinator hears of it, between two commits, between two sinks' recoveries). The operator then
//!   relaunches. It may also relaunch while the old attempt is still alive (a **zombie**: a lost
//!   node, a slow termination); the zombie keeps running every step of the protocol.
//!
//! # Reductions (why the state space stays small without losing a crash point)
//!
//! - A task's snapshot upload and its ack are one step with the barrier's handling: a crash
//!   between capture and ack loses only memory, which every crash loses anyway, so the external
//!   world (store and sink transactions) cannot tell it from a crash just before the step. The
//!   sink's pre-commit is part of that step and is an external effect: crash after pre-commit,
//!   before the manifest, is reached (recovery then aborts it).
//! - Task reports reach the coordinator at once: it only counts acks, so their order is moot.
//! - A record at the head of an unblocked channel is moved on at once (a partial-order
//!   reduction): reading a record commutes with every other task's step, and it is invisible
//!   until the barrier behind it is handled. Barriers, ends, control messages, publishes, commits
//!   and crashes keep every interleaving.
//!
//! # What is abstracted
//!
//! - Records are `(source, seq)` pairs; operator state, keyed state and rescaling are left out
//!   (restore hands every source its offset; the operator is stateless apart from alignment).
//! - Time: the clock only moves by whole checkpoint intervals (`Tick`, bounded); checkpoint
//!   timeouts, declines and savepoints are not modelled (a crash kills all in-flight work anyway).
//! - Storage never fails apart from the crash of the writer; a crash "during the snapshot write"
//!   is a crash between capture and ack. Retention and manifest verification are left out.
//! - A crash kills the whole attempt (one process runs every task, as the runtime does).
//! - External sink transactions keep their records; *committed* means visible to
//!   `read_committed` readers (Kafka) or renamed into place (file sink).
//!
//! # Properties
//!
//! See [`properties`]: exactly-once per sink at the end, never a duplicate at any time, nothing
//! committed unless a published manifest lists it, a published manifest's transactions never
//! aborted and all committed by the end, at most one publish per checkpoint id, every quiescent
//! state is the finished job; and `sometimes` properties showing the interesting states are
//! reached (so the checks are not vacuous).
//!
//! # Finding: an old attempt still running when the relaunch recovers
//!
//! With [`Variant::NoClaim`] and a zombie, the checker finds (test
//! `without_the_claim_an_old_attempt_can_publish_transactions_recovery_aborted`): the old attempt
//! pre-commits checkpoint N+1's transactions; the relaunch restores N and its sink recovery aborts
//! them (Kafka: InitProducerId fences and aborts); the old attempt then publishes N+1 first
//! (create-if-absent does not help: nobody else has written N+1 yet). N+1 is complete, its source
//! offsets are past records whose only transactions were aborted: those records are lost, and
//! every later restore of N+1 fails to commit them. [`Variant::Engine`] fixes it and
//! passes every property: before recovering sinks, the relaunch re-publishes its restored
//! checkpoint under the next id (create-if-absent); the old attempt's publish of that id then
//! fails and it stops. A related hazard is left out of the model on purpose: an attempt replaced
//! *before it even restored* may restore and recover later than its replacement and abort the
//! replacement's published transactions; only the operator can prevent that (never launch a new
//! attempt while an older pod may still start).
//!
//! # Variants
//!
//! [`Variant`] breaks the protocol on purpose (commit before publish, recovery without abort,
//! publish that overwrites) or fixes it ([`Variant::Engine`]); the tests assert the
//! checker finds a counterexample for each broken one.

pub mod properties;
pub mod run;
pub mod state;
pub mod step;

/// Which protocol the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The protocol as the runtime implements it: before touching the sinks, a new attempt
    /// re-publishes its restored checkpoint under the next id (create-if-absent,
    /// `runtime/src/checkpoint/claim.rs`), so an old attempt still running can no longer publish
    /// a checkpoint whose transactions recovery is about to abort.
    Engine,
    /// Broken (the runtime before this model found the gap): no claim before recovery.
    NoClaim,
    /// Broken: sinks commit as soon as every task acked, before the manifest is written.
    CommitBeforePublish,
    /// Broken: sink recovery commits the listed transactions but aborts nothing else.
    RecoveryWithoutAbort,
    /// Broken: the manifest write overwrites instead of create-if-absent.
    PublishOverwrites,
}

/// Bounds and protocol of one model.
#[derive(Clone, Debug)]
pub struct ProtocolModel {
    /// Number of sources (each feeds one input of the operator).
    pub sources: usize,
    /// Number of two-phase-commit sinks.
    pub sinks: usize,
    /// Records per source.
    pub records: u8,
    /// Clock ticks (each one may trigger a periodic checkpoint).
    pub ticks: u8,
    /// Crashes allowed.
    pub crashes: u8,
    /// Relaunches while the old attempt lives on.
    pub zombies: u8,
    /// The protocol.
    pub variant: Variant,
}

impl ProtocolModel {
    /// Task index of the operator (sources are `0..sources`).
    pub fn op_task(&self) -> usize {
        self.sources
    }

    /// Task index of sink `j`.
    pub fn sink_task(&self, j: usize) -> usize {
        self.sources + 1 + j
    }

    /// Number of tasks of one attempt.
    pub fn tasks(&self) -> usize {
        self.sources + 1 + self.sinks
    }

    /// Attempts the operator may launch: enough for every fault to cost a relaunch or two.
    pub fn max_attempts(&self) -> usize {
        2 + self.crashes as usize + 2 * self.zombies as usize
    }
}
