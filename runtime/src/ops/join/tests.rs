use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{JoinKind, LateRecords};

use super::{Join, LEFT, RIGHT};
use crate::ops::{Operator, Restored, SnapshotMode};
use crate::record::{Batch, Record};
use crate::state::{StateEntry, StateWriter};
use crate::value::Value;

fn rec(key: i64, ts: i64, id: i64) -> Record {
    Record { key: Value::Int(key), ts, value: Value::Int(id) }
}

/// `(left, right, ts)` of each output.
fn pairs(out: &Batch) -> Vec<(i64, i64, i64)> {
    let id = |r: &Record, f: &str| r.value.get_path(f).and_then(Value::as_i64).unwrap_or(-1);
    out.iter().map(|r| (id(r, "left"), id(r, "right"), r.ts)).collect()
}

#[test]
fn a_window_join_pairs_one_window_when_the_watermark_passes_it_then_forgets_it() {
    let mut j = Join::new("j", JoinKind::Window { size: 10 }, LateRecords::Drop);
    let mut out = Batch::new();
    j.process_input(LEFT, vec![rec(1, 3, 100), rec(1, 12, 101), rec(2, 4, 102)], &mut out).expect("left");
    j.process_input(RIGHT, vec![rec(1, 9, 200), rec(1, 0, 201), rec(2, 10, 202)], &mut out).expect("right");
    assert!(out.is_empty());
    j.on_watermark_all(8, &mut out).expect("wm");
    assert!(out.is_empty(), "the window [0, 10) fires at 9");
    j.on_watermark_all(9, &mut out).expect("wm");
    let mut got = pairs(&out);
    got.sort();
    assert_eq!(got, vec![(100, 200, 9), (100, 201, 9)]);
    assert_eq!(out[0].value.get_path("end").and_then(Value::as_i64), Some(10));
    j.process_input(RIGHT, vec![rec(1, 5, 203)], &mut out).expect("late");
    assert_eq!(j.late_records(), 1);
    assert_eq!(j.state_entries(), 2, "key 1's and key 2's windows [10, 20) are left");
}

#[test]
fn an_interval_join_pairs_within_its_bounds_whichever_side_comes_first() {
    let mut j = Join::new("j", JoinKind::Interval { lower: 5, upper: 10 }, LateRecords::Drop);
    let mut out = Batch::new();
    j.process_input(RIGHT, vec![rec(1, 94, 200), rec(1, 95, 201), rec(1, 110, 202), rec(1, 111, 203)], &mut out)
        .expect("right");
    j.process_input(LEFT, vec![rec(1, 100, 100), rec(2, 100, 101)], &mut out).expect("left");
    assert_eq!(pairs(&out), vec![(100, 201, 100), (100, 202, 110)]);
    out.clear();
    j.process_input(RIGHT, vec![rec(1, 105, 204)], &mut out).expect("right");
    assert_eq!(pairs(&out), vec![(100, 204, 105)]);
    // The left record at 100 can meet right records up to 110: kept until the watermark is there.
    j.on_watermark_all(109, &mut out).expect("wm");
    assert!(j.state_entries() > 0);
    j.on_watermark_all(120, &mut out).expect("wm");
    assert_eq!(j.state_entries(), 0);
}

#[test]
fn a_restored_join_rebuilds_its_timers_and_keeps_its_watermark() {
    let mut j = Join::new("j", JoinKind::Interval { lower: 0, upper: 10 }, LateRecords::Drop);
    let mut out = Batch::new();
    j.process_input(LEFT, vec![rec(7, 100, 100)], &mut out).expect("left");
    j.on_watermark_all(50, &mut out).expect("wm");
    let snap = j.snapshot(CheckpointId(1), SnapshotMode::Full).expect("snapshot");
    let mut w = StateWriter::new(128);
    snap.keyed.expect("keyed").write_to(&mut w);
    let (bytes, _) = w.finish(false);
    let keyed: Vec<StateEntry> = crate::state::decode_state_file(
        "f",
        &bytes,
        bytes.len() as u64,
        crc32c::crc32c(&bytes),
        crate::graph::KeyGroupRange { start: 0, end: 127 },
    )
    .expect("decode");
    let mut again = Join::new("j", JoinKind::Interval { lower: 0, upper: 10 }, LateRecords::Drop);
    again.restore(Restored { keyed, operator_state: snap.operator_state }).expect("restore");
    again.process_input(RIGHT, vec![rec(7, 40, 200), rec(7, 105, 201)], &mut out).expect("right");
    assert_eq!(pairs(&out), vec![(100, 201, 105)]);
    assert_eq!(again.late_records(), 1, "the watermark 50 came back with the state");
    again.on_watermark_all(110, &mut out).expect("wm");
    assert_eq!(again.state_entries(), 0, "the restored entry's timer fired");
}
