//! The contract of Sluice: the `StreamJob` custom resource, the job document the runtime runs,
//! and the checkpoint manifest both sides read. Serde types and pure functions only — no I/O.

pub mod contract;

/// API group of every Sluice custom resource.
pub const GROUP: &str = "sluice.dev";
/// API version served by this crate.
pub const VERSION: &str = "v1alpha1";

pub use contract::job_config::{JobConfig, ValidationError};
pub use contract::manifest::{CheckpointId, Manifest};
