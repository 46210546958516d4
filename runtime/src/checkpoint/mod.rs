//! Checkpoints: the coordinator's decisions (pure), the asynchronous snapshot upload, manifest
//! publication, restore, and retention.

pub mod claim;
pub mod completed;
pub mod coordinator;
pub mod driver;
pub mod fallback;
pub mod publish;
pub mod restore;
pub mod retention;
pub mod savepoint;
pub mod snapshot;

pub use coordinator::{Action, Coordinator, CoordinatorConfig, Input};
