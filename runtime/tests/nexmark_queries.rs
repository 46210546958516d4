//! The Nexmark queries of `examples/nexmark/` against an independent reference: each job
//! document runs as written except for its source settings (those of the checked-in reference
//! sample: 2000 events at 1000 events/s), its sink (an exactly-once file sink instead of
//! `discard`) and its checkpoint storage; its committed output must equal the query computed in
//! plain Rust over the reference generator's sample (`data/nexmark/reference-2000.jsonl`), which
//! shares nothing with the engine. One query also runs through SIGKILLs and crashes at protocol
//! fault points, restarting at parallelism 1, 2 and 3.

mod common;
mod nexmark_sample;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};
use sluice_crds::JobConfig;
use sluice_crds::contract::pipeline::{FileSinkSpec, NexmarkSpec};
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{RestoreMode, RuntimeConfig, run};

/// The example `query`, set up to run over the sample's events into `dir/out`, with its
/// checkpoints in `dir/checkpoints` every 100 ms; `rate` limits the source's events per second.
fn job(query: &str, dir: &Path, rate: Option<u64>) -> JobConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/nexmark/{query}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut job = JobConfig::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut sources, mut sinks) = (0, 0);
    for node in &mut job.pipeline.nodes {
        if let Some(n) = &mut node.nexmark {
            assert_eq!(n.person_proportion, 1, "{query} keeps the generator's defaults");
            *n = NexmarkSpec { rate_per_second: rate, splits: n.splits, ..nexmark_sample::spec() };
            sources += 1;
        }
        if node.discard.take().is_some() {
            node.file_sink = Some(FileSinkSpec { path: dir.join("out").display().to_string() });
            sinks += 1;
        }
    }
    assert_eq!((sources, sinks), (1, 1), "{query}: one nexmark source and one discard sink");
    let c = job.checkpointing.as_mut().expect("the examples checkpoint");
    c.interval = Duration::from_millis(100);
    c.storage.uri = format!("file://{}/checkpoints", dir.display());
    job
}

/// The query's result over the reference sample, computed in plain Rust: `(event time, row)`
/// in event order.
fn reference(query: &str) -> Vec<(i64, Json)> {
    let events = nexmark_sample::events();
    let bids = events.iter().filter_map(|e| e.get("Bid"));
    let int = |b: &Json, f: &str| b[f].as_i64().unwrap_or_else(|| panic!("bid {f} in {b}"));
    match query {
        "q0" => bids
            .map(|b| {
                let row = json!({"auction": b["auction"], "bidder": b["bidder"], "price": b["price"],
                    "dateTime": b["date_time"], "extra": b["extra"]});
                (int(b, "date_time"), row)
            })
            .collect(),
        // Flink's price is DECIMAL(23, 3): exactly price · 908 thousandths (see `thousandths`).
        "q1" => bids
            .map(|b| {
                let row = json!({"auction": b["auction"], "bidder": b["bidder"], "price": int(b, "price") * 908,
                    "dateTime": b["date_time"], "extra": b["extra"]});
                (int(b, "date_time"), row)
            })
            .collect(),
        "q2" => bids
            .filter(|b| int(b, "auction") % 123 == 0)
            .map(|b| (int(b, "date_time"), json!({"auction": b["auction"], "price": b["price"]})))
            .collect(),
        other => panic!("no reference for {other}"),
    }
}

/// q1's price (a double) in whole thousandths: the decimal Flink's DECIMAL(23, 3) holds, which
/// the double must round to.
fn thousandths(mut row: Json) -> Json {
    if let Some(price) = row["price"].as_f64() {
        row["price"] = json!((price * 1000.0).round() as i64);
    }
    row
}

/// The committed output in `dir/out` as `(event time, value)`, ordered by event time (every
/// event of the sample has its own millisecond).
fn committed(query: &str, dir: &Path) -> Vec<(i64, Json)> {
    let mut rows: Vec<(i64, Json)> = common::read_committed(&dir.join("out"))
        .into_iter()
        .map(|line| {
            let value = line["value"].clone();
            (line["ts"].as_i64().expect("ts"), if query == "q1" { thousandths(value) } else { value })
        })
        .collect();
    rows.sort_by_key(|(ts, _)| *ts);
    rows
}

fn check(query: &str, dir: &Path) {
    let expected = reference(query);
    assert!(!expected.is_empty(), "{query} selects something from the sample");
    let got = committed(query, dir);
    assert_eq!(got.len(), expected.len(), "{query}: rows committed");
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g, e, "{query}: the row at event time {}", e.0);
    }
}

async fn run_query(query: &str, parallelism: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut job = job(query, dir.path(), None);
    job.pipeline.parallelism = Some(parallelism);
    let config = RuntimeConfig {
        job,
        restore: RestoreMode::Latest,
        run_id: "t".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    };
    run(config).await.unwrap_or_else(|e| panic!("{query} runs: {e}"));
    check(query, dir.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q0_passes_every_bid_through() {
    run_query("q0", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q1_converts_every_price_to_euros() {
    run_query("q1", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q2_selects_the_bids_on_every_123rd_auction() {
    run_query("q2", 1).await;
}

/// q1 through a SIGKILL and crashes at two protocol fault points, restarting at parallelism
/// 2, 3 and 1 before a last run to the end: still exactly the reference's rows.
#[test]
fn q1_is_exact_through_kills_and_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 400 events/s: the 2000 events take 5 s, longer than the crashed runs get through.
    let mut job = job("q1", dir.path(), Some(400));
    job.pipeline.parallelism = Some(777);
    let c = job.checkpointing.as_mut().expect("checkpointing");
    (c.interval, c.timeout, c.tolerable_failures) = (Duration::from_millis(200), Duration::from_secs(20), 1000);
    let harness = common::KillJob {
        count: nexmark_sample::EVENTS,
        keys: 1,
        window_ms: 1,
        rate: 400,
        storage_yaml: String::new(),
        dir: dir.path().to_path_buf(),
        custom_yaml: Some(job.to_yaml().replace("parallelism: 777", "parallelism: {p}")),
    };
    let crashed = harness.run_with_kills(1, &["task.after_precommit@2", "sink.mid_commit@2"]);
    assert_eq!(crashed, 3);
    check("q1", dir.path());
}
