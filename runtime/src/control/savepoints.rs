//! The savepoints asked of this run, in the order they were asked: each one's status for
//! `GET /v1/savepoints/{id}` and the recent ones for the history.

use std::collections::VecDeque;

use sluice_crds::contract::control::{CONTROL_VERSION, HISTORY_LEN, SavepointRecord, SavepointState, SavepointStatus};

/// How many savepoints stay known to `GET /v1/savepoints/{id}` (the history shows fewer).
pub const SAVEPOINTS_KEPT: usize = 100;

/// The savepoints of this run, oldest first.
#[derive(Debug, Default)]
pub struct SavepointBook {
    records: VecDeque<SavepointRecord>,
}

/// The wire status of a record.
pub fn status_of(r: &SavepointRecord) -> SavepointStatus {
    SavepointStatus {
        version: CONTROL_VERSION,
        id: r.id.clone(),
        state: r.state,
        location: r.location.clone(),
        error: r.error.clone(),
    }
}

impl SavepointBook {
    /// Records savepoint `id`, asked for at `now_ms`, as pending (replacing an older record of
    /// the same id: a stop with savepoint tried again); the oldest goes when full.
    pub fn add(&mut self, id: &str, now_ms: u64) -> SavepointStatus {
        self.records.retain(|r| r.id != id);
        if self.records.len() >= SAVEPOINTS_KEPT {
            self.records.pop_front();
        }
        let record = SavepointRecord {
            id: id.to_string(),
            state: SavepointState::Pending,
            location: None,
            error: None,
            requested_at_ms: now_ms,
            duration_ms: None,
        };
        let status = status_of(&record);
        self.records.push_back(record);
        status
    }

    /// Records how a pending savepoint ended at `now_ms`: its location, or why it failed. A
    /// savepoint that already ended keeps its outcome.
    pub fn finish(&mut self, id: &str, outcome: Result<String, String>, now_ms: u64) {
        let Some(r) = self.records.iter_mut().find(|r| r.id == id && r.state == SavepointState::Pending) else {
            return;
        };
        match outcome {
            Ok(location) => {
                r.state = SavepointState::Completed;
                r.location = Some(location);
            }
            Err(e) => {
                r.state = SavepointState::Failed;
                r.error = Some(e);
            }
        }
        r.duration_ms = Some(now_ms.saturating_sub(r.requested_at_ms));
    }

    /// Fails every savepoint still pending with `reason`.
    pub fn fail_pending(&mut self, reason: &str, now_ms: u64) {
        let pending: Vec<String> =
            self.records.iter().filter(|r| r.state == SavepointState::Pending).map(|r| r.id.clone()).collect();
        for id in pending {
            self.finish(&id, Err(reason.to_string()), now_ms);
        }
    }

    /// Savepoint `id`'s status.
    pub fn get(&self, id: &str) -> Option<SavepointStatus> {
        self.records.iter().find(|r| r.id == id).map(status_of)
    }

    /// The last [`HISTORY_LEN`] savepoints, newest first.
    pub fn recent(&self) -> Vec<SavepointRecord> {
        self.records.iter().rev().take(HISTORY_LEN).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_is_final_and_the_book_is_bounded() {
        let mut b = SavepointBook::default();
        b.add("a", 10);
        b.finish("a", Ok("file:///sp/a".into()), 25);
        b.finish("a", Err("late failure".into()), 30);
        let a = b.get("a").expect("known");
        assert_eq!((a.state, a.location.as_deref(), a.error), (SavepointState::Completed, Some("file:///sp/a"), None));
        assert_eq!(b.recent()[0].duration_ms, Some(15));
        for i in 0..SAVEPOINTS_KEPT {
            b.add(&format!("s{i}"), 100);
        }
        assert!(b.get("a").is_none(), "the oldest went");
        assert_eq!(b.recent().len(), HISTORY_LEN);
        assert_eq!(b.recent()[0].id, format!("s{}", SAVEPOINTS_KEPT - 1));
        b.fail_pending("ended", 200);
        assert!(b.recent().iter().all(|r| r.state == SavepointState::Failed && r.duration_ms == Some(100)));
    }
}
