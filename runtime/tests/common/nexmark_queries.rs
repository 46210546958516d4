//! Running the Nexmark examples of `examples/nexmark/` over the checked-in sample and comparing
//! their committed output with a test's own reference (plain Rust over the sample). Each example
//! runs as written except for its source settings (the sample's: 2000 events at 1000 events/s),
//! its sink (an exactly-once file sink instead of `discard`) and its checkpoint storage.
//!
//! Include it with `#[path = "common/nexmark_queries.rs"] mod queries;` beside `mod common;`
//! and `mod nexmark_sample;`.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_crds::JobConfig;
use sluice_crds::contract::pipeline::{FileSinkSpec, NexmarkSpec};
use sluice_runtime::job::run;

use crate::{common, nexmark_sample};

/// Rows as `(event time, value)`.
pub type Rows = Vec<(i64, Json)>;

/// One test file's queries: how it computes each query's rows, and how a committed row is made
/// comparable (rounding a float, say) before the comparison.
pub struct Queries {
    /// The query's rows over the sample, computed without the engine.
    pub reference: fn(&str) -> Rows,
    /// Applied to every committed value of `query` before it is compared.
    pub normalise: fn(&str, &mut Json),
    /// The fewest rows a query's reference must select from the sample (a check of the check).
    pub min_rows: usize,
}

/// Leaves a row as it is.
pub fn as_is(_: &str, _: &mut Json) {}

/// The example `query`, set up to run over the sample's events into `dir/out`, with its
/// checkpoints in `dir/checkpoints` every 100 ms; `rate` limits the source's events per second.
pub fn job(query: &str, dir: &Path, rate: Option<u64>) -> JobConfig {
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

impl Queries {
    /// The committed output in `dir/out`, normalised, ordered by event time, then value.
    pub fn committed(&self, query: &str, dir: &Path) -> Rows {
        let mut rows: Rows = common::read_committed(&dir.join("out"))
            .into_iter()
            .map(|line| {
                let mut value = line["value"].clone();
                (self.normalise)(query, &mut value);
                (line["ts"].as_i64().expect("ts"), value)
            })
            .collect();
        rows.sort_by_key(|(ts, row)| (*ts, row.to_string()));
        rows
    }

    /// The committed output of `query` in `dir` is exactly the reference's rows.
    pub fn check(&self, query: &str, dir: &Path) {
        let expected = (self.reference)(query);
        assert!(expected.len() >= self.min_rows, "{query} selects {} rows of the sample, too few", expected.len());
        let got = self.committed(query, dir);
        assert_eq!(got.len(), expected.len(), "{query}: rows committed");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e, "{query}: the row at event time {}", e.0);
        }
    }

    /// Runs `query` to the end at `parallelism` in this process and checks its output.
    pub async fn run(&self, query: &str, parallelism: u32) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut job = job(query, dir.path(), None);
        job.pipeline.parallelism = Some(parallelism);
        run(common::in_process(job)).await.unwrap_or_else(|e| panic!("{query} runs: {e}"));
        self.check(query, dir.path());
    }

    /// Runs `query` over the sample at 400 events/s (the 2000 events take 5 s, longer than the
    /// crashed runs get through): a SIGKILL, then a crash at each of `faults`, restarting at
    /// parallelism 2, 3 and 1, then a last run to the end; the output must be the reference's.
    pub fn exact_through_kills(&self, query: &str, faults: &[&str]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut job = job(query, dir.path(), Some(400));
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
        assert_eq!(harness.run_with_kills(1, faults), 1 + faults.len());
        self.check(query, dir.path());
    }
}
