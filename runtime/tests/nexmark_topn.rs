//! Nexmark q18 (last bid per bidder and auction: `deduplicate`) and q19 (top 10 bids per
//! auction: `topN`) of `examples/nexmark/` against an independent reference, as
//! `nexmark_queries.rs` checks the others: each job document runs as written except for its
//! source settings (the checked-in reference sample: 2000 events at 1000 events/s), its sink (an
//! exactly-once file sink instead of `discard`) and its checkpoint storage; its committed output
//! must equal the query computed in plain Rust over the reference generator's sample. Both also
//! run through a SIGKILL and crashes at protocol fault points, restarting at parallelism 2, 3
//! and 1, so their keyed state is restored by key group each time.

mod common;
mod nexmark_sample;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value as Json, json};
use sluice_crds::JobConfig;
use sluice_crds::contract::pipeline::{FileSinkSpec, NexmarkSpec};
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{RestoreMode, RuntimeConfig, run};

/// The example `query` set up to run over the sample into `dir/out`, checkpointing into
/// `dir/checkpoints` every 100 ms; `rate` limits the source's events per second.
fn job(query: &str, dir: &Path, rate: Option<u64>) -> JobConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/nexmark/{query}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut job = JobConfig::from_yaml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for node in &mut job.pipeline.nodes {
        if let Some(n) = &mut node.nexmark {
            *n = NexmarkSpec { rate_per_second: rate, splits: n.splits, ..nexmark_sample::spec() };
        }
        if node.discard.take().is_some() {
            node.file_sink = Some(FileSinkSpec { path: dir.join("out").display().to_string() });
        }
    }
    let c = job.checkpointing.as_mut().expect("the examples checkpoint");
    c.interval = Duration::from_millis(100);
    c.storage.uri = format!("file://{}/checkpoints", dir.display());
    job
}

fn int(b: &Json, f: &str) -> i64 {
    b[f].as_i64().unwrap_or_else(|| panic!("bid {f} in {b}"))
}

/// A bid as the queries project it.
fn bid_row(b: &Json) -> Json {
    json!({"auction": b["auction"], "bidder": b["bidder"], "price": b["price"], "channel": b["channel"],
        "url": b["url"], "dateTime": b["date_time"], "extra": b["extra"]})
}

/// The query's result over the sample in plain Rust: `(event time, row)`, sorted.
fn reference(query: &str) -> Vec<(i64, Json)> {
    let events = nexmark_sample::events();
    let bids: Vec<&Json> = events.iter().filter_map(|e| e.get("Bid")).collect();
    let ten_s = 10_000;
    let mut rows = Vec::new();
    match query {
        // Per (bidder, auction): bids cut into 10 s spans from the first; each span's last bid.
        "q18" => {
            let mut pairs: BTreeMap<(i64, i64), Vec<&Json>> = BTreeMap::new();
            for b in &bids {
                pairs.entry((int(b, "bidder"), int(b, "auction"))).or_default().push(b);
            }
            for (_, mut of_pair) in pairs {
                of_pair.sort_by_key(|b| int(b, "date_time"));
                let mut span: Option<(i64, &Json)> = None;
                for b in of_pair {
                    let t = int(b, "date_time");
                    span = match span {
                        Some((start, _)) if t < start + ten_s => Some((start, b)),
                        Some((start, last)) => {
                            rows.push((start + ten_s - 1, bid_row(last)));
                            Some((t, b))
                        }
                        None => Some((t, b)),
                    };
                }
                if let Some((start, last)) = span {
                    rows.push((start + ten_s - 1, bid_row(last)));
                }
            }
        }
        // Per auction and 10 s window: the 10 highest prices, the earlier bid first on a tie.
        "q19" => {
            let mut windows: BTreeMap<(i64, i64), Vec<&Json>> = BTreeMap::new();
            for b in &bids {
                let t = int(b, "date_time");
                windows.entry((int(b, "auction"), t - t.rem_euclid(ten_s))).or_default().push(b);
            }
            for ((_, start), mut of_window) in windows {
                of_window.sort_by_key(|b| (-int(b, "price"), int(b, "date_time")));
                for (rank, b) in of_window.into_iter().take(10).enumerate() {
                    let mut row = bid_row(b);
                    row["rank_number"] = json!(rank + 1);
                    rows.push((start + ten_s - 1, row));
                }
            }
        }
        other => panic!("no reference for {other}"),
    }
    rows.sort_by_key(|(ts, row)| (*ts, row.to_string()));
    rows
}

fn check(query: &str, dir: &Path) {
    let expected = reference(query);
    assert!(expected.len() > 50, "{query} selects enough of the sample: {}", expected.len());
    let mut got: Vec<(i64, Json)> = common::read_committed(&dir.join("out"))
        .into_iter()
        .map(|line| (line["ts"].as_i64().expect("ts"), line["value"].clone()))
        .collect();
    got.sort_by_key(|(ts, row)| (*ts, row.to_string()));
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
async fn q18_keeps_the_last_bid_of_each_bidder_on_each_auction() {
    run_query("q18", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn q19_ranks_the_ten_highest_bids_of_each_auction() {
    run_query("q19", 3).await;
}

/// q18 and q19 through a SIGKILL and crashes while a state file is written and right after a
/// checkpoint is published, restarting at parallelism 2, 3 and 1: still exactly the
/// reference's rows.
#[test]
fn q18_and_q19_are_exact_through_kills_and_restores() {
    for query in ["q18", "q19"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut job = job(query, dir.path(), Some(400));
        job.pipeline.parallelism = Some(777);
        let c = job.checkpointing.as_mut().expect("checkpointing");
        (c.interval, c.timeout, c.tolerable_failures) = (Duration::from_millis(200), Duration::from_secs(20), 1000);
        let faults = ["snapshot.mid_write@2", "coordinator.after_publish@2"];
        let harness = common::KillJob {
            count: nexmark_sample::EVENTS,
            keys: 1,
            window_ms: 1,
            rate: 400,
            storage_yaml: String::new(),
            dir: dir.path().to_path_buf(),
            custom_yaml: Some(job.to_yaml().replace("parallelism: 777", "parallelism: {p}")),
        };
        assert_eq!(harness.run_with_kills(1, &faults), 1 + faults.len());
        check(query, dir.path());
    }
}
