//! Connectors to the outside world and the transaction protocol sinks share.

pub mod file;
pub mod two_phase;
