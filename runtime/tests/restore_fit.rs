//! A restore refuses a snapshot that does not fit the job as it stands (issue 14): one written
//! by a job of another name, or one holding state for nodes the pipeline no longer has —
//! unless `--allow-non-restored-state` says to drop that state. Every manifest records the run
//! that wrote it.

use std::path::Path;
use std::process::Command;

use sluice_crds::JobConfig;
use sluice_crds::contract::manifest::Manifest;
use sluice_runtime::checkpoint::restore::RestoreError;
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{JobError, JobOutcome, RestoreMode, RuntimeConfig, run};
use sluice_runtime::storage::ObjectStore;
use sluice_runtime::storage::layout::manifest_key;
use sluice_runtime::storage::local::LocalStore;
use sluice_runtime::storage::manifests::list_ids as list_checkpoints;

/// The job: `with_sum` adds a keyed running sum (state) beside the pass-through file sink.
fn yaml(dir: &Path, name: &str, with_sum: bool) -> String {
    let (sum_nodes, sum_edges) = if with_sum {
        (
            "    - {id: sum, aggregate: {function: sum}}\n    - {id: out, discard: {}}\n",
            "    - {from: gen, to: sum, partition: hash}\n    - {from: sum, to: out}\n",
        )
    } else {
        ("", "")
    };
    format!(
        r#"
name: {name}
checkpointing:
  interval: 50ms
  retained: 2
  storage: {{uri: "file://{dir}/ckpt"}}
pipeline:
  maxParallelism: 32
  parallelism: 2
  nodes:
    - {{id: gen, generator: {{count: 20000, keys: 50, ratePerSecond: 100000}}}}
{sum_nodes}    - {{id: pass, fileSink: {{path: "{dir}/pass"}}}}
  edges:
{sum_edges}    - {{from: gen, to: pass}}
"#,
        dir = dir.display()
    )
}

async fn run_job(dir: &Path, name: &str, with_sum: bool, run_id: &str, allow: bool) -> Result<JobOutcome, JobError> {
    let job = JobConfig::from_yaml(&yaml(dir, name, with_sum)).expect("valid job");
    run(RuntimeConfig {
        job,
        restore: RestoreMode::Latest,
        run_id: run_id.into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: allow,
    })
    .await
}

async fn newest_manifest(dir: &Path) -> Manifest {
    let store = LocalStore::new(dir.join("ckpt")).expect("store");
    let newest = *list_checkpoints(&store).await.expect("list").last().expect("a checkpoint");
    Manifest::decode(&store.get(&manifest_key(newest)).await.expect("read")).expect("decode")
}

fn incompatible(r: Result<JobOutcome, JobError>) -> String {
    match r {
        Err(JobError::Restore(e @ RestoreError::Incompatible { .. })) => e.to_string(),
        Err(e) => panic!("expected a refused restore, got {e}"),
        Ok(o) => panic!("expected a refused restore, the run restored {:?} and finished", o.restored_from),
    }
}

#[tokio::test]
async fn manifests_name_the_run_that_wrote_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_job(dir.path(), "fit", true, "fit-1-uid", false).await.expect("first run");
    assert_eq!(newest_manifest(dir.path()).await.run_id.as_deref(), Some("fit-1-uid"));
    // A second run restores and re-publishes (the start-up claim) under its own id.
    let again = run_job(dir.path(), "fit", true, "fit-2-uid", false).await.expect("second run");
    assert!(again.restored_from.is_some());
    assert_eq!(newest_manifest(dir.path()).await.run_id.as_deref(), Some("fit-2-uid"));
}

#[tokio::test]
async fn state_of_a_removed_node_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_job(dir.path(), "fit", true, "r1", false).await.expect("first run");
    let refused = incompatible(run_job(dir.path(), "fit", false, "r2", false).await);
    assert!(refused.contains("nodes this job no longer has (sum)"), "{refused}");
    assert!(refused.contains("--allow-non-restored-state"), "{refused}");
    // Nothing was changed by the refusal: the same restore, allowed, drops the sum's state.
    let allowed = run_job(dir.path(), "fit", false, "r3", true).await.expect("allowed");
    assert!(allowed.restored_from.is_some(), "restored, minus the sum's state");
}

#[tokio::test]
async fn a_checkpoint_of_another_job_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_job(dir.path(), "first-job", true, "r1", false).await.expect("first run");
    // A second job pointed at the same storage by mistake.
    let refused = incompatible(run_job(dir.path(), "second-job", true, "r2", false).await);
    assert!(refused.contains(r#"written by job "first-job", not "second-job""#), "{refused}");
    run_job(dir.path(), "second-job", true, "r3", true).await.expect("allowed");
}

#[test]
fn the_cli_flag_reaches_the_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = |with_sum: bool| {
        let path = dir.path().join(format!("job-{with_sum}.yaml"));
        std::fs::write(&path, yaml(dir.path(), "fit", with_sum)).expect("write job");
        path
    };
    let cli = |path: &Path, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
            .arg("run")
            .arg(path)
            .args(extra)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run sluice-runtime")
    };
    let first = cli(&job(true), &[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let refused = cli(&job(false), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && stderr.contains("(sum)"), "{stderr}");
    let allowed = cli(&job(false), &["--allow-non-restored-state"]);
    assert!(allowed.status.success(), "{}", String::from_utf8_lossy(&allowed.stderr));
}
