//! Sluice's streaming engine: a dataflow of sources, operators and sinks with barrier
//! checkpoints, keyed state in key groups, and two-phase-commit sinks.

pub mod checkpoint;
pub mod connectors;
pub mod control;
pub mod engine;
pub mod error;
pub mod fault;
pub mod graph;
pub mod job;
pub mod nodes;
pub mod ops;
pub mod record;
pub mod state;
#[cfg(test)]
mod test_seq;
pub use sluice_storage as storage;
pub mod value;
pub mod verify;
