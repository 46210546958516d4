//! A task whose upstream task fails must fail too, never take the closed channel for the end of
//! its input: ending would run `finish`, and a sink's `finish` commits the records after the
//! last checkpoint directly — records the relaunch replays, so they would be committed twice.
//! (A worker process that lost worker 0 showed it first: its sources' hash edge failed, their
//! forward edge to a file sink closed, and the sink committed.)

mod common;

use std::path::Path;

use sluice_crds::JobConfig;
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{RestoreMode, RuntimeConfig, run};

/// gen → fails (a `map` whose expression `expr` may fail on record 6000) → rebalance → out:
/// the failing operator and the sink are separate tasks joined by a channel.
fn job(dir: &Path, expr: &str) -> JobConfig {
    let yaml = format!(
        r#"
name: upstream-failure
checkpointing:
  interval: 1h
  storage: {{uri: "file://{dir}/ckpt"}}
pipeline:
  parallelism: 1
  nodes:
    - {{id: gen, generator: {{count: {COUNT}, keys: 10, ratePerSecond: 100000}}}}
    - {{id: fails, map: {{expr: "{expr}"}}}}
    - {{id: out, fileSink: {{path: "{dir}/out"}}}}
  edges:
    - {{from: gen, to: fails}}
    - {{from: fails, to: out, partition: rebalance}}
"#,
        dir = dir.display()
    );
    JobConfig::from_yaml(&yaml).expect("valid job")
}

const COUNT: u64 = 20_000;

fn config(job: JobConfig, restore: RestoreMode, run_id: String) -> RuntimeConfig {
    RuntimeConfig {
        job,
        restore,
        run_id,
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    }
}

/// The first run fails on record 6000 (after its first checkpoint); the second, with the
/// expression mended, restores the latest checkpoint and finishes. Every record must be
/// committed once: the first run's sink may commit only what a completed checkpoint covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_upstream_task_failed_commits_nothing_beyond_the_checkpoint() {
    for round in 0..12 {
        let dir = tempfile::tempdir().expect("tempdir");
        let failing = job(dir.path(), "value == 6000 ? value / 0 : value");
        let outcome = run(config(failing, RestoreMode::None, format!("r{round}a"))).await;
        let Err(err) = outcome else { panic!("round {round}: the job did not fail on record 6000") };
        let text = err.to_string();
        assert!(text.contains("fails"), "round {round}: the failure names another node than the cause: {text}");
        let mended = job(dir.path(), "value");
        run(config(mended, RestoreMode::Latest, format!("r{round}b"))).await.expect("the mended job finishes");
        let mut seen = vec![0u32; COUNT as usize];
        for r in common::read_committed(&dir.path().join("out")) {
            let v = r["value"].as_u64().expect("a generated value");
            seen[v as usize] += 1;
        }
        let twice: Vec<usize> = (0..seen.len()).filter(|&v| seen[v] > 1).collect();
        let lost = seen.iter().filter(|&&n| n == 0).count();
        assert!(
            twice.is_empty() && lost == 0,
            "round {round}: {} records committed twice (e.g. {:?}), {lost} lost: the sink took its failed upstream \
             for the end of its input and committed what no checkpoint covers",
            twice.len(),
            &twice[..twice.len().min(5)]
        );
    }
}
