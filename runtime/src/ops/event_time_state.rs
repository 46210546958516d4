//! The checkpoint shape the event-time operators share (window, join, top-N, deduplicate): their
//! keyed table, and their watermark as one operator-state element. On restore every subtask
//! takes the minimum of the old subtasks' watermarks (`checkpoint::restore` hands each the
//! minimum), so no record is judged late against a watermark its own input never passed.

use super::{OpSnapshot, SnapshotMode};
use crate::state::KeyedTable;

/// The operator-state field that carries the watermark through a checkpoint.
pub const WATERMARK_STATE_FIELD: &str = "watermark";

/// The snapshot of an event-time operator: its keyed table, captured, and its watermark.
pub fn snapshot(table: &mut KeyedTable, mode: SnapshotMode, watermark: i64) -> OpSnapshot {
    OpSnapshot {
        keyed: Some(Box::new(table.capture(mode))),
        operator_state: vec![serde_json::json!({ WATERMARK_STATE_FIELD: watermark })],
        ..OpSnapshot::default()
    }
}

/// The watermark to resume from: the smallest one the restored operator state carries, if any.
pub fn restored_watermark(operator_state: &[serde_json::Value]) -> Option<i64> {
    operator_state.iter().filter_map(|v| v.get(WATERMARK_STATE_FIELD).and_then(serde_json::Value::as_i64)).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_watermark_is_restored_and_none_without_one() {
        let state = vec![
            serde_json::json!({ WATERMARK_STATE_FIELD: 40 }),
            serde_json::json!({ "other": 1 }),
            serde_json::json!({ WATERMARK_STATE_FIELD: 25 }),
        ];
        assert_eq!(restored_watermark(&state), Some(25));
        assert_eq!(restored_watermark(&[serde_json::json!({ "other": 1 })]), None);
    }

    #[test]
    fn a_snapshot_carries_the_watermark_it_was_given() {
        let mut table = KeyedTable::new();
        let snap = snapshot(&mut table, SnapshotMode::Full, 77);
        assert_eq!(restored_watermark(&snap.operator_state), Some(77));
        assert!(snap.keyed.is_some() && snap.committables.is_empty());
    }
}
