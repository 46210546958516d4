//! The contract between the engine and what runs in a task: the [`Operator`] and [`Source`]
//! lifecycle traits, their error and the state they hand over at checkpoints and restores.
//! The engine drives these traits and knows no implementation; the built-in operators live in
//! `ops` (which re-exports everything here), the connectors in `connectors`.
//!
//! An [`Operator`] receives batches and emits batches; at a checkpoint barrier the task calls
//! [`Operator::snapshot`], which must only *capture* state (cheap); encoding and upload happen
//! off the task. A [`Source`] produces batches and reports replayable positions.

use sluice_crds::CheckpointId;

use crate::error::ErrorKind;
use crate::record::Batch;
pub use crate::state::SnapshotMode;
use crate::state::{KeyedSnapshot, StateEntry};

/// What an operator contributes to a checkpoint.
#[derive(Default)]
pub struct OpSnapshot {
    /// Keyed state, captured; encoded and uploaded asynchronously.
    pub keyed: Option<Box<dyn KeyedSnapshot>>,
    /// Operator list state (source positions …), redistributed round-robin on rescale.
    pub operator_state: Vec<serde_json::Value>,
    /// Pre-committed sink transactions to commit once the checkpoint completes.
    pub committables: Vec<serde_json::Value>,
}

/// State handed back to an operator on restore.
#[derive(Debug, Default)]
pub struct Restored {
    /// Keyed entries of this subtask's key groups.
    pub keyed: Vec<StateEntry>,
    /// This subtask's share of the operator list state.
    pub operator_state: Vec<serde_json::Value>,
}

/// Failure inside an operator or source. [`OpError::is_data_error`] tells input problems
/// (the job's error policy applies) from system ones.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A CEL expression does not compile or does not evaluate.
    #[error("node {node}: expression {expr:?}: {message}")]
    Expression {
        /// Node id.
        node: String,
        /// The expression.
        expr: String,
        /// What went wrong.
        message: String,
    },
    /// An input record cannot be decoded or lacks what the operator needs.
    #[error("node {node}: malformed record at {location}: {message}")]
    Malformed {
        /// Node id.
        node: String,
        /// Where (`<file>, byte <offset>`, `<topic>/<partition>@<offset>`, …).
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A file operation failed.
    #[error("node {node}: {op} {path}: {source}")]
    Io {
        /// Node id.
        node: String,
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Restored state does not fit the operator.
    #[error("node {node}: cannot restore state: {message}")]
    Restore {
        /// Node id.
        node: String,
        /// What is wrong.
        message: String,
    },
    /// An external system (a broker, a store) failed or refused a request.
    #[error("node {node}: {message}")]
    External {
        /// Node id.
        node: String,
        /// What was being done and what went wrong.
        message: String,
    },
    /// A pre-committed transaction could not be committed (data-loss risk).
    #[error("node {node}: commit of checkpoint {checkpoint} failed: {message}")]
    Commit {
        /// Node id.
        node: String,
        /// The checkpoint whose committable failed.
        checkpoint: u64,
        /// What went wrong.
        message: String,
    },
    /// The node's spec (or this runtime build) does not allow building it.
    #[error("node {node}: invalid configuration: {message}")]
    Config {
        /// Node id.
        node: String,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A value for the checkpoint (a committable, a source position) or a record did not
    /// serialise. Nothing is committed yet: the checkpoint or record is lost, not output.
    #[error("node {node}: cannot serialise {what}: {message}")]
    Serialize {
        /// Node id.
        node: String,
        /// What was being serialised.
        what: &'static str,
        /// The serialiser's message.
        message: String,
    },
}

impl OpError {
    /// The id of the node that failed.
    pub fn node(&self) -> &str {
        match self {
            OpError::Expression { node, .. }
            | OpError::Malformed { node, .. }
            | OpError::Io { node, .. }
            | OpError::Restore { node, .. }
            | OpError::External { node, .. }
            | OpError::Commit { node, .. }
            | OpError::Config { node, .. }
            | OpError::Serialize { node, .. } => node,
        }
    }

    /// True when the problem is in the input data rather than the system.
    pub fn is_data_error(&self) -> bool {
        matches!(self, OpError::Malformed { .. } | OpError::Expression { .. })
    }

    /// What the failure means for the run (see [`crate::error`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            OpError::Expression { .. }
            | OpError::Malformed { .. }
            | OpError::Restore { .. }
            | OpError::Config { .. } => ErrorKind::BadInput,
            OpError::Io { .. } | OpError::External { .. } | OpError::Serialize { .. } => ErrorKind::Retryable,
            OpError::Commit { .. } => ErrorKind::DataLossRisk,
        }
    }
}

/// A transformation or sink: batches in, batches out.
pub trait Operator: Send {
    /// Loads restored state; called before any batch.
    fn restore(&mut self, restored: Restored) -> Result<(), OpError> {
        let _ = restored;
        Ok(())
    }
    /// Processes one batch, appending any output to `out`.
    fn process(&mut self, batch: Batch, out: &mut Batch) -> Result<(), OpError>;
    /// Processes one batch that came in on input `input` of the node (a join's left side is 0,
    /// its right side 1; every other node has the one input 0). Defaults to
    /// [`Operator::process`], for operators to which every input is the same.
    fn process_input(&mut self, input: usize, batch: Batch, out: &mut Batch) -> Result<(), OpError> {
        let _ = input;
        self.process(batch, out)
    }
    /// The event-time watermark advanced to `watermark`; windows may fire. An operator may
    /// fire only part of what is due (see [`crate::ops::firing`]) and say so through
    /// [`Operator::more_due`]: the caller then sends `out` on and calls again with the same
    /// watermark.
    fn on_watermark(&mut self, watermark: i64, out: &mut Batch) -> Result<(), OpError> {
        let _ = (watermark, out);
        Ok(())
    }
    /// Whether the last [`Operator::on_watermark`] or [`Operator::finish`] left windows due
    /// that the same call, made again, fires.
    fn more_due(&self) -> bool {
        false
    }
    /// [`Operator::on_watermark`] until nothing is due, everything into `out` (for callers that
    /// do not bound what one call emits).
    fn on_watermark_all(&mut self, watermark: i64, out: &mut Batch) -> Result<(), OpError> {
        loop {
            self.on_watermark(watermark, out)?;
            if !self.more_due() {
                return Ok(());
            }
        }
    }
    /// Captures state at a barrier. Keep it cheap: heavy work belongs in the returned capture.
    /// With [`SnapshotMode::Incremental`], keyed state may hold only what changed since the
    /// previous snapshot (a delta); either way the operator starts a new change set.
    fn snapshot(&mut self, checkpoint: CheckpointId, mode: SnapshotMode) -> Result<OpSnapshot, OpError> {
        let _ = (checkpoint, mode);
        Ok(OpSnapshot::default())
    }
    /// Checkpoint `checkpoint` is complete (its manifest is published): sinks commit.
    fn checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OpError> {
        let _ = checkpoint;
        Ok(())
    }
    /// All input has ended; emit what remains (possibly in parts: [`Operator::more_due`]).
    fn finish(&mut self, out: &mut Batch) -> Result<(), OpError> {
        let _ = out;
        Ok(())
    }
    /// [`Operator::finish`] until nothing is due, everything into `out`.
    fn finish_all(&mut self, out: &mut Batch) -> Result<(), OpError> {
        loop {
            self.finish(out)?;
            if !self.more_due() {
                return Ok(());
            }
        }
    }
    /// How many records were found too late since the last call (the task counts them in
    /// `sluice_runtime_late_records_total`); records to send along the node's `output: late`
    /// edges are appended to `late`. Called once per processed batch.
    fn take_late(&mut self, late: &mut Batch) -> u64 {
        let _ = late;
        0
    }
    /// The job is cancelled: throw away open transactions, and pre-committed ones of checkpoints
    /// after `keep_up_to` (those up to it may be listed by a published manifest: the next run's
    /// recovery resolves them). Nothing more is emitted or committed.
    fn cancel(&mut self, keep_up_to: Option<CheckpointId>) -> Result<(), OpError> {
        let _ = keep_up_to;
        Ok(())
    }
}

/// What a [`Source::poll`] call produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// Records were appended (possibly zero after skipping bad input).
    Data,
    /// Nothing available now; poll again after about this long.
    Idle(std::time::Duration),
    /// The source is exhausted.
    Finished,
}

/// A replayable source of records.
pub trait Source: Send {
    /// Restores positions from checkpointed list state (this subtask's share), or starts fresh
    /// with `None`.
    fn open(&mut self, restored: Option<Vec<serde_json::Value>>) -> Result<(), OpError>;
    /// Appends up to `max` records to `out`.
    fn poll(&mut self, out: &mut Batch, max: usize) -> Result<SourcePoll, OpError>;
    /// The event time below which no further record will come (per this subtask).
    fn watermark(&self) -> i64;
    /// The current positions, as list state (one element per split).
    fn snapshot(&mut self, checkpoint: CheckpointId) -> Result<Vec<serde_json::Value>, OpError>;
    /// Records skipped as malformed so far.
    fn malformed_count(&self) -> u64 {
        0
    }
    /// Reports the consumer lag of each split that has one (a Kafka partition: high watermark
    /// minus position) as `(topic, partition, lag)`. Called about once a second; must not block
    /// (use what the client already knows).
    fn report_lag(&self, report: &mut dyn FnMut(&str, i32, i64)) {
        let _ = report;
    }
    /// Checkpoint `checkpoint` is complete (e.g. commit offsets back to a consumer group).
    fn checkpoint_complete(&mut self, checkpoint: CheckpointId) -> Result<(), OpError> {
        let _ = checkpoint;
        Ok(())
    }
}
