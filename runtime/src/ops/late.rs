//! The records an event-time operator (window, join, top-N, deduplicate) finds too late:
//! counted, and kept for the node's `output: late` edges when it dead-letters.

use sluice_crds::contract::pipeline::LateRecords;

use crate::record::{Batch, Record};

/// The late records of one operator subtask.
#[derive(Debug, Default)]
pub struct LateOutput {
    dead_letter: bool,
    total: u64,
    /// Late records since the last [`LateOutput::take`].
    pending: u64,
    out: Batch,
}

impl LateOutput {
    /// Late records are dropped, or kept for the late edges with `lateRecords: deadLetter`.
    pub fn new(policy: LateRecords) -> LateOutput {
        LateOutput { dead_letter: policy == LateRecords::DeadLetter, ..LateOutput::default() }
    }

    /// `r` came too late: counted, and kept when the node dead-letters.
    pub fn push(&mut self, r: Record) {
        self.total += 1;
        self.pending += 1;
        if self.dead_letter {
            self.out.push(r);
        }
    }

    /// Late records over the operator's lifetime.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// What [`crate::ops::Operator::take_late`] returns: the count since the last call; the kept
    /// records are appended to `late`.
    pub fn take(&mut self, late: &mut Batch) -> u64 {
        late.append(&mut self.out);
        std::mem::take(&mut self.pending)
    }
}
