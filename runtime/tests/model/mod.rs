//! A model of Sluice's checkpoint + two-phase-commit + recovery protocol, checked with
//! [stateright](https://docs.rs/stateright) for every interleaving and every crash point.
//!
//! # What is modelled
//!
//! - **One job attempt over one or two worker processes** ([`ProtocolModel::workers`]): the
//!   coordinator, `N` sources, one operator with `N` inputs that aligns barriers, and `M`
//!   two-phase-commit sinks (the operator broadcasts every record to every sink, so every input
//!   must end up committed once in *every* sink). With one worker every task runs in one process,
//!   as before `runtime/src/job/workers/`; with two, see *Two workers* below.
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
//! # Two workers (`runtime/src/job/workers/`)
//!
//! - **Placement** as `placement.rs` does it (subtask `i` on worker `i % 2`): source `i` is
//!   subtask `i` of a parallel source, so source 1 runs on worker 1; the operator (one subtask)
//!   and the coordinator run on worker 0; sink `j` stands for subtask `j + 1` of a sink, so sink 0
//!   runs on worker 1 and sink 1 beside the operator. Source 1 → operator and operator → sink 0
//!   cross between the workers, one in each direction.
//! - **The connection** between the two workers carries the crossing channels (the exchange,
//!   FIFO per channel) and the control link (the coordinator's commands to worker 1's tasks,
//!   their acks and reports back). It may **drop** at any step ([`ProtocolModel::drops`]): every
//!   message in flight on it is lost. As the engine does: a send on a crossing channel then
//!   fails its task (`Closed`), a channel closed without its `End` is lost, never ended
//!   (`engine/task/inputs.rs`), and each worker notices on its own step (`Notice`: a read or
//!   write fails, heartbeats stop): worker 0's coordinator aborts the attempt, worker 1 stops its
//!   tasks (`LostCoordinator`). Until it notices, a worker runs on.
//! - **A worker crashes alone** ([`ProtocolModel::worker_crashes`]): its tasks stop and the
//!   connection goes with it; the other worker runs on until it notices. A task that fails (a
//!   fenced sink, a lost publish race) fails its worker the same way: the engine reports it to
//!   worker 0 (`Ended`), which aborts the attempt.
//! - **Relaunch**: as soon as one worker of the current attempt failed, the supervisor (or the
//!   operator) may relaunch every worker from the latest completed checkpoint, while the rest of
//!   the old attempt still runs: it may still publish a checkpoint every task had acked, or commit
//!   what a completion told its sink to (the claim and the sink fencing must hold it off).
//! - **Joining**: each attempt's worker 1 joins worker 0 (the handshake, `link.rs`) before worker
//!   0 restores; worker 0 sends `Start` once it recovered the sinks. An attempt that dies before
//!   its worker 1 joined leaves that process starting: it tries to join the next attempt and is
//!   refused (another attempt id; a late comer once the slot is taken).
//!   [`Variant::JoinAnyAttempt`] lets it join.
//! - Before an attempt runs (restore, recovery), a worker's fault is modelled as the crash of
//!   the whole attempt: a remnant there is the hazard of an attempt replaced before it restored
//!   (see the finding below), which only the operator can prevent.
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
//! - Two workers: a dropped connection loses the commands in flight to worker 1's tasks as well
//!   as those delivered but not yet handled (handling one has no effect outside the worker: the
//!   same as handling it just before the drop). After a drop, sources and the operator take no
//!   step: each would either fail its task (the operator forwards everything to sink 0, across)
//!   or change nothing outside its worker, and cannot complete a checkpoint (the operator acks
//!   after every source, and can no longer forward its barrier). A task's failure fails its
//!   whole worker (the other tasks' steps could as well have come first). A worker with no step
//!   left that reaches the store or a transaction is taken as failed at once (its notice is
//!   bound to come; the relaunch it allows may still wait).
//!
//! # What is abstracted
//!
//! - Records are `(source, seq)` pairs; operator state, keyed state and rescaling are left out
//!   (restore hands every source its offset; the operator is stateless apart from alignment).
//! - Time: the clock only moves by whole checkpoint intervals (`Tick`, bounded); checkpoint
//!   timeouts, declines and savepoints are not modelled (a crash kills all in-flight work anyway).
//! - Storage never fails apart from the crash of the writer; a crash "during the snapshot write"
//!   is a crash between capture and ack. Retention and manifest verification are left out.
//! - A crash ([`ProtocolModel::crashes`]) kills the whole attempt, every worker at once; with two
//!   workers, a single worker's crash and a dropped connection are faults of their own. The
//!   exchange's credit flow control, heartbeat timing and the handshake's other checks (version,
//!   worker count, job digest) are left out; a refused process simply exits. Acks lost with the
//!   connection are not modelled apart: an attempt that lost one cannot complete that checkpoint,
//!   which its failure before publishing covers.
//! - A worker process of another attempt that joined wires its tasks from this attempt's `Start`
//!   and runs them as this attempt's (its sinks fenced as this attempt's): the model keeps only
//!   whose process it is, for the property that such a worker never contributes an ack.
//! - External sink transactions keep their records; *committed* means visible to
//!   `read_committed` readers (Kafka) or renamed into place (file sink).
//!
//! # Properties
//!
//! See [`properties`]: exactly-once per sink at the end, never a duplicate at any time, nothing
//! committed unless a published manifest lists it, a published manifest's transactions never
//! aborted and all committed by the end, at most one publish per checkpoint id, a worker of
//! another attempt never contributes an ack to a checkpoint, every quiescent state is the
//! finished job; and `sometimes` properties showing the interesting states are reached (so the
//! checks are not vacuous): among them a drop losing a message in flight, a worker of a failed
//! attempt taking a step after the relaunch, a refused join, the job finishing after each fault.
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
//! With two workers the same gap opens without any zombie relaunch: worker 1 crashes after every
//! task acked checkpoint N+1, worker 0 runs on until it notices, and publishes N+1 after the
//! relaunch restored N (test
//! `without_the_claim_the_rest_of_an_attempt_with_a_crashed_worker_can_publish_what_recovery_aborted`);
//! the claim closes it too.
//!
//! # Variants
//!
//! [`Variant`] breaks the protocol on purpose (commit before publish, recovery without abort,
//! publish that overwrites, a dropped connection taken as end of input, a handshake that lets
//! another attempt's worker join) or fixes it ([`Variant::Engine`]); the tests assert the
//! checker finds a counterexample for each broken one.

pub mod properties;
pub mod run;
pub mod state;
pub mod step;
pub mod workers;

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
    /// Broken (the runtime before `inputs.rs` told a lost channel from an ended one): a channel
    /// closed by a dropped connection is taken as end of input, so a sink `finish`es and
    /// commits records no checkpoint covers.
    LostAsEnd,
    /// Broken: worker 0's handshake lets a worker process of another attempt join (no attempt
    /// id check in `link.rs`'s `handshake_in`).
    JoinAnyAttempt,
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
    /// Worker processes per attempt: 1 (every task in one process) or 2.
    pub workers: usize,
    /// Crashes of one worker process alone (two workers).
    pub worker_crashes: u8,
    /// Drops of the connection between the two workers (two workers).
    pub drops: u8,
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
        2 + self.crashes as usize + 2 * self.zombies as usize + self.worker_crashes as usize + self.drops as usize
    }
}
