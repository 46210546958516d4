//! Connectors to the outside world and the transaction protocol sinks share.

pub mod file;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod two_phase;
