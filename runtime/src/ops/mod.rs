//! The built-in operators, and (re-exported from [`crate::engine::operator`], where the engine
//! defines them) the lifecycle traits every source and operator implements. They are called
//! "ops" because "operator" already names the Kubernetes operator.
//!
//! An [`Operator`] receives batches and emits batches; at a checkpoint barrier the task calls
//! [`Operator::snapshot`], which must only *capture* state (cheap); encoding and upload happen
//! off the task. A [`Source`] produces batches and reports replayable positions.
//!
//! A user operator is a plain struct:
//!
//! ```
//! use sluice_runtime::ops::{Operator, OpError};
//! use sluice_runtime::record::Batch;
//! use sluice_runtime::value::Value;
//!
//! /// Doubles integer values.
//! struct Double;
//!
//! impl Operator for Double {
//!     fn process(&mut self, mut batch: Batch, out: &mut Batch) -> Result<(), OpError> {
//!         for r in &mut batch {
//!             if let Value::Int(i) = r.value {
//!                 r.value = Value::Int(i * 2);
//!             }
//!         }
//!         sluice_runtime::ops::emit_all(out, batch);
//!         Ok(())
//!     }
//! }
//! ```

pub mod aggregate;
pub mod dedup;
pub mod event_time_state;
pub mod expr;
mod expr_fast;
#[cfg(test)]
mod expr_fast_tests;
mod expr_input;
pub mod firing;
pub mod generator;
pub mod join;
pub mod json_file;
pub mod late;
pub mod nexmark;
#[cfg(test)]
mod ranking_tests;
pub mod rate;
pub mod reads;
pub mod simple;
pub mod topn;
pub mod window;

pub use crate::engine::operator::{OpError, OpSnapshot, Operator, Restored, SnapshotMode, Source, SourcePoll};
use crate::graph::KeyGroupRange;
use crate::record::Batch;

/// Appends `batch` to `out` without copying when `out` is empty (the common case on a chain).
#[inline]
pub fn emit_all(out: &mut Batch, mut batch: Batch) {
    if out.is_empty() {
        std::mem::swap(out, &mut batch);
    } else {
        out.append(&mut batch);
    }
}

/// Where an operator instance runs.
#[derive(Clone, Debug)]
pub struct OpContext {
    /// Node id.
    pub node: String,
    /// This subtask's index.
    pub subtask: u32,
    /// The node's parallelism.
    pub parallelism: u32,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Key groups this subtask owns.
    pub key_groups: KeyGroupRange,
    /// Unique id of this run of the job (names temp files and transactions).
    pub run_id: String,
    /// The job's name (stable across runs: names transactional ids).
    pub job: String,
    /// Whether the job takes checkpoints (sinks commit on completion) or not (sinks commit at end).
    pub checkpointing: bool,
    /// How many checkpoints may be in flight at once (bounds pending sink transactions).
    pub max_concurrent_checkpoints: u32,
    /// The job's I/O runtime (as `TaskEnv::io`): where a node's network calls run, apart from
    /// the task thread. `None` outside a job.
    pub io: Option<tokio::runtime::Handle>,
}

/// A node instance: a source or an operator.
pub enum Instance {
    /// Produces records.
    Source(Box<dyn Source>),
    /// Transforms or consumes records.
    Operator(Box<dyn Operator>),
}
