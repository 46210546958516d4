//! Records and the batches they travel in.

use serde::Serialize;

use crate::value::Value;

/// One element of a stream: a key (set by `keyBy` or the source), an event time and a value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// The key; decides the key group on hash edges and the state a keyed operator touches.
    pub key: Value,
    /// Event time in milliseconds since the epoch.
    pub ts: i64,
    /// The payload.
    pub value: Value,
}

/// Records move through channels and operators in batches, never one at a time.
pub type Batch = Vec<Record>;

/// Preferred number of records per batch.
pub const BATCH_SIZE: usize = 1024;
