//! Connectors: sources and sinks that talk to external systems.

pub mod kafka;
