//! Helpers shared by Sluice's cross-crate integration tests.

pub mod kafka;
pub mod tls_broker;
