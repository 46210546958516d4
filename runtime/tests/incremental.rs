//! Incremental snapshots: a delta holds about the changed entries only, and a base plus a chain
//! of deltas restores exactly the state a full snapshot holds, at any parallelism.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use sluice_crds::contract::manifest::{Manifest, SnapshotKind, StateFile, TaskState};
use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy};
use sluice_crds::{CheckpointId, JobConfig};
use sluice_runtime::checkpoint::restore::{LoadedCheckpoint, assign};
use sluice_runtime::ops::aggregate::Aggregate;
use sluice_runtime::ops::window::TumblingWindow;
use sluice_runtime::ops::{Operator, SnapshotMode};
use sluice_runtime::record::{Batch, Record};
use sluice_runtime::state::StateWriter;
use sluice_runtime::value::Value;

const MAX_P: u32 = 64;

fn records(keys: impl IntoIterator<Item = i64>, ts: i64) -> Batch {
    keys.into_iter().map(|k| Record { key: Value::Int(k), ts, value: Value::Int(k % 7 + 1) }).collect()
}

/// Snapshots `op` and encodes the capture into a state file.
fn snapshot(op: &mut dyn Operator, id: u64, mode: SnapshotMode) -> (Vec<u8>, StateFile) {
    let snap = op.snapshot(CheckpointId(id), mode).expect("snapshot");
    let keyed = snap.keyed.expect("keyed state");
    let delta = keyed.is_delta();
    let mut w = StateWriter::new(MAX_P);
    keyed.write_to(&mut w);
    let (bytes, span) = w.finish(delta);
    let (start, end) = span.unwrap_or((0, 0));
    let file = StateFile {
        path: format!("state/chk-{id}/op.state"),
        size_bytes: bytes.len() as u64,
        crc32c: crc32c::crc32c(&bytes),
        key_group_start: start,
        key_group_end: end,
        delta,
    };
    (bytes, file)
}

#[test]
fn a_delta_writes_about_the_changed_entries_and_nothing_else() {
    let mut op = Aggregate::new("sum", AggregateFn::Sum, None, ErrorPolicy::Fail);
    op.process(records(0..100_000, 0), &mut Vec::new()).expect("process");
    let (full, _) = snapshot(&mut op, 1, SnapshotMode::Full);
    // 1 % of the keys change (some of them several times).
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut changed: Vec<i64> = (0..1000).map(|i| i * 100 + rng.random_range(0..100)).collect();
    changed.extend_from_slice(&changed.clone()[..300]);
    op.process(records(changed, 1), &mut Vec::new()).expect("process");
    let (delta, file) = snapshot(&mut op, 2, SnapshotMode::Incremental);
    assert!(file.delta);
    let changed_entry_bytes = full.len() as f64 * 1000.0 / 100_000.0;
    assert!(
        delta.len() as f64 <= 1.2 * changed_entry_bytes,
        "delta is {} bytes for 1000 changed entries of a {}-byte state ({changed_entry_bytes:.0} bytes)",
        delta.len(),
        full.len()
    );
}

fn pipeline(parallelism: u32) -> sluice_crds::contract::pipeline::Pipeline {
    JobConfig::from_yaml(&format!(
        r#"
name: t
pipeline:
  maxParallelism: {MAX_P}
  parallelism: {parallelism}
  nodes:
    - {{id: gen, generator: {{count: 1}}}}
    - {{id: op, window: {{size: 10ms, function: sum}}}}
  edges:
    - {{from: gen, to: op, partition: hash}}
"#
    ))
    .expect("valid")
    .pipeline
}

fn load(files: Vec<(Vec<u8>, StateFile)>) -> LoadedCheckpoint {
    let mut bytes = HashMap::new();
    let mut list = Vec::new();
    for (b, f) in files {
        bytes.insert(f.path.clone(), Bytes::from(b));
        list.push(f);
    }
    let manifest = Manifest {
        version: 1,
        job: "t".into(),
        checkpoint_id: CheckpointId(99),
        kind: SnapshotKind::Checkpoint,
        triggered_at_ms: 0,
        completed_at_ms: 0,
        max_parallelism: MAX_P,
        tasks: vec![TaskState {
            node: "op".into(),
            subtask: 0,
            parallelism: 1,
            files: list,
            operator_state: vec![],
            committables: vec![],
        }],
        run_id: None,
        records: None,
    };
    LoadedCheckpoint { manifest, files: bytes, location: "test".into() }
}

/// The restored state of node `op` across all subtasks of parallelism `p`, as a sorted map.
fn restored(loaded: &LoadedCheckpoint, p: u32) -> BTreeMap<String, String> {
    let mut plan = assign(loaded, &pipeline(p)).expect("assign");
    let mut out = BTreeMap::new();
    for s in 0..p {
        for e in plan.take(1, s).keyed {
            let prev = out.insert(format!("{}/{}", e.key, e.namespace), format!("{:?}", e.value));
            assert!(prev.is_none(), "entry restored twice");
        }
    }
    out
}

#[test]
fn a_base_and_twenty_deltas_restore_exactly_what_a_full_snapshot_holds() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut op = TumblingWindow::new("op", Duration::from_millis(10), AggregateFn::Sum, None, ErrorPolicy::Fail);
    // Windows that stay open throughout: the purges below never outnumber the live entries, so
    // every incremental capture stays a delta (a table whose removals outnumber its entries
    // writes a new base instead: `state::table`).
    op.process(records(0..2000, 1000), &mut Vec::new()).expect("process");
    let mut chain = vec![snapshot(&mut op, 1, SnapshotMode::Full)];
    for epoch in 0..20i64 {
        // Updates in the open windows, new windows, and fired (deleted) windows.
        let keys: Vec<i64> = (0..300).map(|_| rng.random_range(0..3000)).collect();
        op.process(records(keys, epoch * 5 + rng.random_range(0..5)), &mut Vec::new()).expect("process");
        if epoch % 4 == 3 {
            op.on_watermark_all(epoch * 5 - 1, &mut Vec::new()).expect("watermark");
        }
        chain.push(snapshot(&mut op, epoch as u64 + 2, SnapshotMode::Incremental));
    }
    assert!(chain[1..].iter().all(|(_, f)| f.delta));
    let mut full_op = op;
    let full = load(vec![snapshot(&mut full_op, 100, SnapshotMode::Full)]);
    let folded = load(chain);
    let expected = restored(&full, 1);
    assert!(!expected.is_empty());
    for p in [1, 2, 3, 7] {
        assert_eq!(restored(&folded, p), expected, "chain restore at parallelism {p}");
    }
}
