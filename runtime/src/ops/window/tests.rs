//! Unit tests of the window operator: tumbling windows as before multi-aggregates, and small
//! hand-checked cases of sliding and session windows (the randomized differential tests are in
//! `runtime/tests/window_differential.rs`).

use std::time::Duration;

use sluice_crds::CheckpointId;
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy, LateRecords, WindowFn, WindowSpec};

use super::*;
use crate::ops::{Operator, Restored, SnapshotMode};
use crate::record::{Batch, Record};
use crate::value::Value;

fn rec(key: i64, ts: i64) -> Record {
    Record { key: Value::Int(key), ts, value: Value::Int(1) }
}

#[test]
fn windows_fire_once_when_the_watermark_passes_their_end() {
    let mut w = Window::new("w", Duration::from_millis(10), AggregateFn::Count, None, ErrorPolicy::Fail);
    let mut out = Vec::new();
    w.process(vec![rec(1, 0), rec(1, 9), rec(2, 5), rec(1, 10)], &mut out).expect("process");
    w.on_watermark_all(8, &mut out).expect("wm");
    assert!(out.is_empty());
    w.on_watermark_all(9, &mut out).expect("wm");
    let mut got: Vec<(i64, i64)> = out
        .iter()
        .map(|r| (r.key.as_i64().unwrap_or(-1), r.value.get_path("value").and_then(Value::as_i64).unwrap_or(-1)))
        .collect();
    got.sort_unstable();
    assert_eq!(got, vec![(1, 2), (2, 1)]);
    out.clear();
    w.process(vec![rec(3, 4)], &mut out).expect("late");
    assert_eq!(w.late_records(), 1);
    w.finish_all(&mut out).expect("finish");
    assert_eq!(out.len(), 1, "the open window [10,20) fires at the end");
}

fn spec(lateness_ms: u64, late_records: LateRecords) -> WindowSpec {
    WindowSpec {
        allowed_lateness: Duration::from_millis(lateness_ms),
        late_records,
        ..WindowSpec::tumbling(Duration::from_millis(10), WindowFn::Count, None)
    }
}

fn counts(out: &Batch) -> Vec<(i64, i64, i64)> {
    out.iter()
        .map(|r| {
            let get = |f: &str| r.value.get_path(f).and_then(Value::as_i64).unwrap_or(-1);
            (get("key"), get("start"), get("value"))
        })
        .collect()
}

#[test]
fn a_restored_watermark_keeps_fired_windows_closed() {
    let mut w = Window::from_spec("w", &spec(0, LateRecords::Drop), ErrorPolicy::Fail).expect("valid");
    let mut out = Vec::new();
    w.process(vec![rec(1, 0), rec(1, 12)], &mut out).expect("process");
    w.on_watermark_all(9, &mut out).expect("wm");
    assert_eq!(counts(&out), vec![(1, 0, 1)]);
    let snap = w.snapshot(CheckpointId(1), SnapshotMode::Full).expect("snap");
    let mut again = Window::from_spec("w", &spec(0, LateRecords::Drop), ErrorPolicy::Fail).expect("valid");
    again.restore(Restored { keyed: Vec::new(), operator_state: snap.operator_state }).expect("restore");
    let mut out = Vec::new();
    again.process(vec![rec(1, 5)], &mut out).expect("late after restore");
    again.on_watermark_all(5, &mut out).expect("an older watermark changes nothing");
    assert!(out.is_empty(), "the window [0,10) fired before the checkpoint: {out:?}");
    assert_eq!(again.take_late(&mut Vec::new()), 1);
    again.finish_all(&mut out).expect("finish");
    assert!(out.is_empty(), "no window reopened");
}

#[test]
fn allowed_lateness_updates_a_fired_window_then_closes_it() {
    let mut w = Window::from_spec("w", &spec(5, LateRecords::DeadLetter), ErrorPolicy::Fail).expect("valid");
    let mut out = Vec::new();
    w.process(vec![rec(1, 0), rec(1, 3)], &mut out).expect("process");
    w.on_watermark_all(9, &mut out).expect("wm");
    assert_eq!(counts(&out), vec![(1, 0, 2)]);
    out.clear();
    w.process(vec![rec(1, 4)], &mut out).expect("late but allowed");
    assert_eq!(counts(&out), vec![(1, 0, 3)], "the updated window is emitted at once");
    out.clear();
    w.on_watermark_all(13, &mut out).expect("wm");
    assert!(out.is_empty(), "a fired window does not fire again");
    w.on_watermark_all(14, &mut out).expect("wm: 9 + 5 reached, the window closes");
    w.process(vec![rec(1, 2), rec(2, 25)], &mut out).expect("too late");
    assert!(out.is_empty());
    let mut late = Vec::new();
    assert_eq!(w.take_late(&mut late), 1);
    assert_eq!(late, vec![rec(1, 2)], "dead-lettered unchanged");
    assert_eq!(w.take_late(&mut late), 0, "counted once");
    w.finish_all(&mut out).expect("finish");
    assert_eq!(counts(&out), vec![(2, 20, 1)]);
}

#[test]
fn snapshot_and_restore_keep_open_windows() {
    let mut w = Window::new("w", Duration::from_millis(10), AggregateFn::Sum, None, ErrorPolicy::Fail);
    w.process(vec![rec(1, 0), rec(1, 3), rec(2, 12)], &mut Vec::new()).expect("p");
    let snap = w.snapshot(CheckpointId(1), SnapshotMode::Full).expect("snap");
    let mut writer = crate::state::StateWriter::new(128);
    snap.keyed.expect("keyed").write_to(&mut writer);
    let (bytes, _) = writer.finish(false);
    let entries = crate::state::decode_state_file(
        "f",
        &bytes,
        bytes.len() as u64,
        crc32c::crc32c(&bytes),
        crate::graph::KeyGroupRange { start: 0, end: 127 },
    )
    .expect("decode");
    let mut restored = Window::new("w", Duration::from_millis(10), AggregateFn::Sum, None, ErrorPolicy::Fail);
    restored.restore(Restored { keyed: entries, operator_state: vec![] }).expect("restore");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    w.finish_all(&mut a).expect("f");
    restored.finish_all(&mut b).expect("f");
    assert_eq!(a, b);
}

fn bid(key: i64, ts: i64, price: i64, bidder: i64) -> Record {
    Record {
        key: Value::Int(key),
        ts,
        value: Value::map([("price", Value::Int(price)), ("bidder", Value::Int(bidder))]),
    }
}

fn multi(size: Option<u64>, slide: Option<u64>, gap: Option<u64>, lateness: u64) -> Window {
    let yaml = format!(
        "{{{}{}{}allowedLateness: {lateness}ms, aggregates: [{{name: bids, function: count}}, \
         {{name: maxPrice, function: max, field: price}}, {{name: avgPrice, function: avg, field: price}}, \
         {{name: bidders, function: countDistinct, field: bidder}}]}}",
        size.map(|s| format!("size: {s}ms, ")).unwrap_or_default(),
        slide.map(|s| format!("slide: {s}ms, ")).unwrap_or_default(),
        gap.map(|g| format!("session: {{gap: {g}ms}}, ")).unwrap_or_default(),
    );
    let spec: WindowSpec = serde_yaml::from_str(&yaml).expect("a window block");
    Window::from_spec("w", &spec, ErrorPolicy::Fail).expect("valid")
}

/// `(key, start, end, bids, maxPrice, avgPrice, bidders)` of each output.
fn rows(out: &Batch) -> Vec<(i64, i64, i64, i64, i64, f64, i64)> {
    out.iter()
        .map(|r| {
            let int = |f: &str| r.value.get_path(f).and_then(Value::as_i64).unwrap_or(-1);
            let avg = r.value.get_path("avgPrice").and_then(Value::as_f64).unwrap_or(-1.0);
            (int("key"), int("start"), int("end"), int("bids"), int("maxPrice"), avg, int("bidders"))
        })
        .collect()
}

#[test]
fn a_sliding_record_counts_in_size_over_slide_windows_each_firing_at_its_end() {
    let mut w = multi(Some(10), Some(5), None, 0);
    let mut out = Vec::new();
    w.process(vec![bid(1, 7, 10, 1), bid(1, 3, 30, 2), bid(1, 12, 20, 1)], &mut out).expect("process");
    w.on_watermark_all(8, &mut out).expect("wm");
    assert_eq!(rows(&out), vec![(1, -5, 5, 1, 30, 30.0, 1)], "[-5, 5) holds the record at 3 only");
    out.clear();
    w.on_watermark_all(14, &mut out).expect("wm");
    assert_eq!(rows(&out), vec![(1, 0, 10, 2, 30, 20.0, 2), (1, 5, 15, 2, 20, 15.0, 1)]);
    out.clear();
    w.finish_all(&mut out).expect("finish");
    assert_eq!(rows(&out), vec![(1, 10, 20, 1, 20, 20.0, 1)]);
    let v = &out[0].value;
    assert_eq!(v.get_path("value"), None, "the aggregates form has no value field");
    assert_eq!(out[0].ts, 19);
}

#[test]
fn sessions_merge_when_a_record_bridges_them_even_out_of_order() {
    let mut w = multi(None, None, Some(10), 0);
    let mut out = Vec::new();
    // Sessions [0, 10), [25, 35), then [12, 22): three apart.
    w.process(vec![bid(1, 0, 5, 1), bid(1, 25, 7, 2), bid(1, 12, 1, 1)], &mut out).expect("process");
    // 10 touches [0, 10) (ends included, as in Flink) and overlaps [12, 22): one session [0, 22).
    w.process(vec![bid(1, 10, 2, 3)], &mut out).expect("process");
    w.on_watermark_all(20, &mut out).expect("wm");
    assert!(out.is_empty(), "[0, 22) fires at 21: {out:?}");
    // 21 bridges [0, 22) and [25, 35): [0, 35).
    w.process(vec![bid(1, 21, 9, 2)], &mut out).expect("process");
    w.on_watermark_all(33, &mut out).expect("wm");
    assert!(out.is_empty());
    w.on_watermark_all(34, &mut out).expect("wm");
    assert_eq!(rows(&out), vec![(1, 0, 35, 5, 9, 24.0 / 5.0, 3)]);
    out.clear();
    w.finish_all(&mut out).expect("finish");
    assert!(out.is_empty(), "fired once");
    assert_eq!(w.table.len(), 0, "purged");
}

#[test]
fn a_late_record_within_the_lateness_merges_fired_sessions_and_emits_at_once() {
    let mut w = multi(None, None, Some(10), 100);
    let mut out = Vec::new();
    w.process(vec![bid(1, 0, 1, 1), bid(1, 15, 2, 1)], &mut out).expect("process");
    w.on_watermark_all(30, &mut out).expect("wm");
    assert_eq!(rows(&out), vec![(1, 0, 10, 1, 1, 1.0, 1), (1, 15, 25, 1, 2, 2.0, 1)]);
    out.clear();
    w.process(vec![bid(1, 8, 3, 2)], &mut out).expect("late, allowed");
    assert_eq!(rows(&out), vec![(1, 0, 25, 3, 3, 2.0, 2)], "the merged session, at once");
    out.clear();
    w.on_watermark_all(123, &mut out).expect("wm: 24 + 100 not reached");
    w.process(vec![bid(1, 20, 3, 2)], &mut out).expect("still allowed");
    assert_eq!(rows(&out), vec![(1, 0, 30, 4, 3, 9.0 / 4.0, 2)]);
    out.clear();
    w.on_watermark_all(129, &mut out).expect("wm closes [0, 30)");
    w.process(vec![bid(1, 5, 3, 2)], &mut out).expect("too late");
    assert!(out.is_empty());
    assert_eq!(w.take_late(&mut Vec::new()), 1);
}

#[test]
fn a_malformed_record_changes_no_aggregate() {
    let mut w = multi(Some(10), None, None, 0);
    let mut out = Vec::new();
    w.process(vec![bid(1, 1, 4, 1)], &mut out).expect("process");
    let bad = Record { key: Value::Int(1), ts: 2, value: Value::map([("price", Value::str("x"))]) };
    let e = w.process(vec![bad.clone()], &mut out).expect_err("fails the job");
    assert!(e.to_string().contains("needs a number"), "{e}");
    let spec: WindowSpec = serde_yaml::from_str(
        "{size: 10ms, aggregates: [{name: bids, function: count}, {name: maxPrice, function: max, field: price}]}",
    )
    .expect("block");
    let mut lenient = Window::from_spec("w", &spec, ErrorPolicy::Skip).expect("valid");
    lenient.process(vec![bid(1, 1, 4, 1), bad], &mut out).expect("skips");
    lenient.finish_all(&mut out).expect("finish");
    let counts: Vec<i64> = out.iter().filter_map(|r| r.value.get_path("bids").and_then(Value::as_i64)).collect();
    assert_eq!(counts, vec![1], "the count did not take the malformed record");
    assert_eq!(lenient.malformed_records(), 1);
}

#[test]
fn restoring_state_of_another_window_shape_is_refused() {
    let mut tumbling = Window::new("w", Duration::from_millis(10), AggregateFn::Sum, None, ErrorPolicy::Fail);
    tumbling.process(vec![rec(1, 0)], &mut Vec::new()).expect("p");
    let entries: Vec<crate::state::StateEntry> = tumbling
        .table
        .entries()
        .into_iter()
        .map(|(k, n, v)| crate::state::StateEntry {
            key_group: 0,
            key: k.clone(),
            namespace: n.clone(),
            value: Some(v.clone()),
        })
        .collect();
    let mut session = multi(None, None, Some(10), 0);
    let e = session.restore(Restored { keyed: entries, operator_state: vec![] }).expect_err("refused");
    assert!(e.to_string().contains("does not fit"), "{e}");
}

#[test]
fn thousands_of_windows_fire_a_chunk_per_call_in_order() {
    let keys = crate::ops::firing::FIRE_CHUNK as i64 * 2 + 5;
    let mut w = Window::new("w", Duration::from_millis(10), AggregateFn::Count, None, ErrorPolicy::Fail);
    let mut out = Vec::new();
    w.process((0..keys).map(|k| rec(k, 3)).collect(), &mut out).expect("process");
    w.process(vec![rec(0, 12)], &mut out).expect("process");
    let mut chunks = Vec::new();
    loop {
        let mut chunk = Vec::new();
        w.on_watermark(9, &mut chunk).expect("wm");
        chunks.push(chunk);
        if !w.more_due() {
            break;
        }
    }
    let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
    let chunk = crate::ops::firing::FIRE_CHUNK;
    assert_eq!(sizes, vec![chunk, chunk, 5], "one window per key, a chunk per call");
    let fired: Vec<&Record> = chunks.iter().flatten().collect();
    assert!(fired.windows(2).all(|p| p[0].key.stable_hash() <= p[1].key.stable_hash()), "by key hash across chunks");
    let mut seen: Vec<i64> = fired.iter().map(|r| r.key.as_i64().unwrap_or(-1)).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..keys).collect::<Vec<_>>(), "every key's window once");
    // The fired windows are purged; the window [10, 20) is still open and fires at the end.
    let mut rest = Vec::new();
    w.finish_all(&mut rest).expect("finish");
    assert_eq!(counts(&rest), vec![(0, 10, 1)]);
}
