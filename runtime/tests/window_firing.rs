//! Windows, top-N windows and deduplication spans that a watermark passes by the thousand fire
//! a chunk at a time (`ops::firing::FIRE_CHUNK` keys per call, each chunk sent on before the
//! next): through the real task loop, every one is still emitted exactly once with its exact
//! result, mid-stream (a window's end passes about 4500 keys' windows per subtask at once) and
//! at the end of the input.
//!
//! The expected rows are computed here from the generator's definition alone (record `n` has key
//! `n % KEYS`, value `n` and event time `n` ms), sharing no code with the engine.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use sluice_crds::JobConfig;
use sluice_runtime::job::run;

// 30 000 keys: 15 000 per subtask, more than three chunks, where one call per watermark (the
// last window's end passed by the final watermark, and once more at the end of the input)
// would fire only two.
const KEYS: i64 = 30_000;
const COUNT: i64 = 120_000;
const WINDOW_MS: i64 = 40_000;
/// Every key's second span is still open at the end of the input.
const TTL_MS: i64 = 70_000;

/// The generator into `node`, its output into `out`; `then` adds nodes, `then_edges` edges.
fn job(dir: &Path, node: &str, (then, then_edges): (&str, &str)) -> JobConfig {
    let d = dir.display();
    let yaml = format!(
        r#"name: firing
checkpointing:
  interval: 100ms
  storage: {{uri: "file://{d}/checkpoints"}}
pipeline:
  parallelism: 2
  nodes:
    - id: gen
      generator: {{count: {COUNT}, keys: {KEYS}, eventTimeStepMs: 1}}
    - id: win
      {node}
    - id: out
      fileSink: {{path: {d}/out}}
{then}
  edges:
    - {{from: gen, to: win, partition: hash}}
    - {{from: win, to: out}}
{then_edges}
"#
    );
    JobConfig::from_yaml(&yaml).expect("job")
}

async fn run_job(dir: &Path, node: &str, then: (&str, &str)) -> Vec<serde_json::Value> {
    run(common::in_process(job(dir, node, then))).await.expect("the job runs");
    committed(dir, "out")
}

fn committed(dir: &Path, sink: &str) -> Vec<serde_json::Value> {
    common::read_committed(&dir.join(sink)).into_iter().map(|line| line["value"].clone()).collect()
}

/// The records of each `(key, window start)`, by the generator's definition.
fn windows() -> BTreeMap<(i64, i64), Vec<i64>> {
    let mut out: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
    for n in 0..COUNT {
        out.entry((n % KEYS, n - n % WINDOW_MS)).or_default().push(n);
    }
    out
}

fn int(row: &serde_json::Value, field: &str) -> i64 {
    row[field].as_i64().unwrap_or_else(|| panic!("{field} in {row}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_of_thousands_fires_once_with_its_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Downstream, the windows' results are counted per window of the same size: a chunk sent
    // after the watermark that passed its windows would be late there, and missing.
    let d = dir.path().display();
    let then = format!(
        "    - id: all\n      keyBy: {{expr: \"0\"}}\n    - id: per-window\n      window: {{size: {WINDOW_MS}ms, function: count}}\n    - id: totals\n      fileSink: {{path: {d}/totals}}"
    );
    let edges = "    - {from: win, to: all}\n    - {from: all, to: per-window, partition: hash}\n    - {from: per-window, to: totals}";
    let rows = run_job(dir.path(), &format!("window: {{size: {WINDOW_MS}ms, function: count}}"), (&then, edges)).await;
    let mut got = BTreeMap::new();
    for row in &rows {
        let id = (int(row, "key"), int(row, "start"));
        assert_eq!(int(row, "end"), id.1 + WINDOW_MS, "{row}");
        assert!(got.insert(id, int(row, "value")).is_none(), "window {id:?} emitted twice");
    }
    let expected: BTreeMap<(i64, i64), i64> = windows().into_iter().map(|(id, ns)| (id, ns.len() as i64)).collect();
    assert_eq!(got.len(), expected.len(), "windows emitted");
    assert!(got == expected, "window counts differ");
    let totals: BTreeMap<i64, i64> =
        committed(dir.path(), "totals").iter().map(|row| (int(row, "start"), int(row, "value"))).collect();
    let mut keys_per_window = BTreeMap::new();
    for (_, start) in expected.keys() {
        *keys_per_window.entry(*start).or_insert(0) += 1;
    }
    assert_eq!(totals, keys_per_window, "results on time downstream, per window");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_top_n_of_thousands_fires_once_with_its_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The generator's values are plain integers: an empty `orderBy` ranks by the whole value.
    let node = format!("topN: {{n: 2, orderBy: \"\", descending: true, window: {{size: {WINDOW_MS}ms}}}}");
    let rows = run_job(dir.path(), &node, ("", "")).await;
    let mut got: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for row in &rows {
        got.entry((int(row, "key"), int(row, "start"))).or_default().push((int(row, "rank"), int(row, "value")));
    }
    let expected: BTreeMap<(i64, i64), Vec<(i64, i64)>> = windows()
        .into_iter()
        .map(|(id, mut ns)| {
            ns.sort_unstable_by(|a, b| b.cmp(a));
            (id, ns.into_iter().take(2).zip(1..).map(|(n, rank)| (rank, n)).collect())
        })
        .collect();
    for ranks in got.values_mut() {
        ranks.sort_unstable();
    }
    assert_eq!(got.len(), expected.len(), "windows emitted");
    assert!(got == expected, "top-2 rows differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deduplicated_span_of_thousands_of_keys_is_emitted_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rows = run_job(dir.path(), &format!("deduplicate: {{keep: last, ttl: {TTL_MS}ms}}"), ("", "")).await;
    let mut got: Vec<i64> = rows.iter().map(|v| v.as_i64().unwrap_or_else(|| panic!("value {v}"))).collect();
    got.sort_unstable();
    // A key's span opens at its first record and lasts the ttl; the next record at or after
    // its end opens the next; `last` keeps a span's last record.
    let mut expected = Vec::new();
    for key in 0..KEYS {
        let mut span: Option<(i64, i64)> = None;
        for n in (key..COUNT).step_by(KEYS as usize) {
            match span {
                Some((start, _)) if n < start + TTL_MS => span = Some((start, n)),
                _ => {
                    expected.extend(span.map(|(_, last)| last));
                    span = Some((n, n));
                }
            }
        }
        expected.extend(span.map(|(_, last)| last));
    }
    expected.sort_unstable();
    assert_eq!(got.len(), expected.len(), "spans emitted");
    assert!(got == expected, "kept records differ");
}
