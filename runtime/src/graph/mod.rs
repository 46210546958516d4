//! The job's graph: key groups, the physical plan (chains of nodes run by one task) and the
//! shape observers show.
//! Pure code: no tokio, no I/O.

pub mod key_groups;
pub mod plan;
pub mod shape;

pub use key_groups::KeyGroupRange;
pub use plan::{Chain, ChainEdge, PhysicalPlan};
pub use shape::{JobShape, ShapeNode};
