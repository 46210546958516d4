//! The run's recent checkpoints, as the control endpoint's history shows them
//! (`sluice_crds::contract::control::History`): recorded when a checkpoint is triggered and
//! updated when it completes, fails or is aborted.

use std::collections::VecDeque;

use sluice_crds::CheckpointId;
use sluice_crds::contract::control::{CheckpointKind, CheckpointOutcome, CheckpointRecord, HISTORY_LEN};

use super::CompletedCheckpoint;
use crate::engine::message::BarrierKind;

/// Reason the coordinator gives checkpoints it aborts because the job is cancelled.
const CANCELLED: &str = "the job is cancelled";
/// Prefix of the reason it gives checkpoints a newer one subsumed.
const SUBSUMED: &str = "subsumed by";

/// The last [`HISTORY_LEN`] checkpoints, oldest first.
#[derive(Clone, Debug, Default)]
pub struct CheckpointHistory {
    records: VecDeque<CheckpointRecord>,
}

fn kind_of(kind: BarrierKind) -> CheckpointKind {
    match kind {
        BarrierKind::Checkpoint => CheckpointKind::Checkpoint,
        BarrierKind::Final => CheckpointKind::Final,
        BarrierKind::Savepoint => CheckpointKind::Savepoint,
        BarrierKind::StopSavepoint => CheckpointKind::StopSavepoint,
    }
}

impl CheckpointHistory {
    /// Checkpoint `id` was triggered at `at_ms` (epoch ms); the oldest record goes when full.
    pub fn triggered(&mut self, id: CheckpointId, kind: BarrierKind, at_ms: u64) {
        if self.records.len() >= HISTORY_LEN {
            self.records.pop_front();
        }
        self.records.push_back(CheckpointRecord {
            id,
            kind: kind_of(kind),
            status: CheckpointOutcome::InProgress,
            triggered_at_ms: at_ms,
            duration_ms: None,
            size_bytes: None,
            location: None,
            error: None,
        });
    }

    fn record(&mut self, id: CheckpointId) -> Option<&mut CheckpointRecord> {
        self.records.iter_mut().rev().find(|r| r.id == id)
    }

    /// Checkpoint `c` completed.
    pub fn completed(&mut self, c: &CompletedCheckpoint) {
        if let Some(r) = self.record(CheckpointId(c.id)) {
            r.status = CheckpointOutcome::Completed;
            r.duration_ms = Some(c.duration_ms);
            r.size_bytes = Some(c.size_bytes);
            r.location = Some(c.location.clone());
        }
    }

    /// Checkpoint `id` ended without completing at `now_ms`: aborted when the job was cancelled
    /// or a newer checkpoint subsumed it, failed otherwise.
    pub fn ended(&mut self, id: CheckpointId, reason: &str, now_ms: u64) {
        if let Some(r) = self.record(id) {
            let aborted = reason == CANCELLED || reason.starts_with(SUBSUMED);
            r.status = if aborted { CheckpointOutcome::Aborted } else { CheckpointOutcome::Failed };
            r.duration_ms = Some(now_ms.saturating_sub(r.triggered_at_ms));
            r.error = Some(reason.to_string());
        }
    }

    /// The records, newest first.
    pub fn newest_first(&self) -> Vec<CheckpointRecord> {
        self.records.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_ones_and_tells_failed_from_aborted() {
        let mut h = CheckpointHistory::default();
        for i in 1..=(HISTORY_LEN as u64 + 3) {
            h.triggered(CheckpointId(i), BarrierKind::Checkpoint, 1000 + i);
        }
        let last = HISTORY_LEN as u64 + 3;
        h.completed(&CompletedCheckpoint {
            id: last,
            completed_at_ms: 0,
            duration_ms: 7,
            size_bytes: 9,
            location: "file:///m".into(),
        });
        h.ended(CheckpointId(last - 1), "subsumed by checkpoint 23", 2000);
        h.ended(CheckpointId(last - 2), "task 1: disk full", 2000);
        h.ended(CheckpointId(last - 3), CANCELLED, 2000);
        h.ended(CheckpointId(1), "unknown, evicted", 2000);
        let v = h.newest_first();
        assert_eq!(v.len(), HISTORY_LEN);
        assert_eq!(v[0].id, CheckpointId(last));
        assert_eq!(v[HISTORY_LEN - 1].id, CheckpointId(4), "the three oldest went");
        assert_eq!(
            (v[0].status, v[0].size_bytes, v[0].location.as_deref()),
            (CheckpointOutcome::Completed, Some(9), Some("file:///m"))
        );
        let statuses: Vec<_> = v[1..4].iter().map(|r| r.status).collect();
        assert_eq!(statuses, [CheckpointOutcome::Aborted, CheckpointOutcome::Failed, CheckpointOutcome::Aborted]);
        assert_eq!(v[2].error.as_deref(), Some("task 1: disk full"));
        assert_eq!(v[2].duration_ms, Some(2000 - (1000 + last - 2)));
        assert_eq!(v[4].status, CheckpointOutcome::InProgress);
    }
}
