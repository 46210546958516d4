//! Sluice's streaming engine: a dataflow of sources, operators and sinks with barrier
//! checkpoints, keyed state in key groups, and two-phase-commit sinks.

#[cfg(feature = "kafka")]
pub mod connectors;
pub mod storage;
