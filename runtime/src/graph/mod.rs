//! The job's graph: key groups and the physical plan (chains of nodes run by one task).
//! Pure code: no tokio, no I/O.

pub mod key_groups;
pub mod plan;

pub use key_groups::KeyGroupRange;
pub use plan::{Chain, ChainEdge, PhysicalPlan};
