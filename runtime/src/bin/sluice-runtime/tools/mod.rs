//! Tools around the engine, not part of it: the benchmark workload.

pub mod bench;
