//! The restore rules of issue 13: no silent duplicates when the newest checkpoint fails
//! verification, no silent fresh start over state without a manifest, real per-file
//! checksums, and no temp file of an interrupted write left behind.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sluice_crds::JobConfig;
use sluice_runtime::checkpoint::restore::{RestoreError, load, load_latest};
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{JobError, JobOutcome, RestoreMode, RuntimeConfig, run};
use sluice_runtime::storage::layout::manifest_key;
use sluice_runtime::storage::local::LocalStore;
use sluice_runtime::storage::manifests::list_ids as list_checkpoints;

const COUNT: u64 = 40_000;

fn yaml(dir: &Path) -> String {
    format!(
        r#"
name: restore-rules
checkpointing:
  interval: 50ms
  retained: 3
  storage: {{uri: "file://{dir}/ckpt"}}
pipeline:
  maxParallelism: 32
  parallelism: 2
  nodes:
    - {{id: gen, generator: {{count: {COUNT}, keys: 200, ratePerSecond: 100000}}}}
    - {{id: sum, aggregate: {{function: sum}}}}
    - {{id: out, discard: {{}}}}
    - {{id: pass, fileSink: {{path: "{dir}/pass"}}}}
  edges:
    - {{from: gen, to: sum, partition: hash}}
    - {{from: sum, to: out}}
    - {{from: gen, to: pass}}
"#,
        dir = dir.display()
    )
}

/// Runs the job in this process; each run gets a run id of its own, as the operator's do (the
/// file sink names its files after it).
async fn run_job(dir: &Path, restore: RestoreMode) -> Result<JobOutcome, JobError> {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run_id = format!("t{}", RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let job = JobConfig::from_yaml(&yaml(dir)).expect("valid job");
    run(RuntimeConfig {
        job,
        restore,
        run_id,
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    })
    .await
}

/// Runs the job with the release binary, as the operator's pods do.
fn run_cli(dir: &Path, extra: &[&str]) -> Output {
    let job = dir.join("job.yaml");
    std::fs::write(&job, yaml(dir)).expect("write job");
    Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
        .arg("run")
        .arg(&job)
        .args(["--run-id", "cli"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run sluice-runtime")
}

fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

/// How often each sequence number is in the committed output of `dir`.
fn seq_counts(dir: &Path) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("list output") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")) {
            for seq in seqs_in(&path) {
                *counts.entry(seq).or_default() += 1;
            }
        }
    }
    counts
}

fn seqs_in(file: &Path) -> Vec<i64> {
    let text = std::fs::read_to_string(file).expect("read part file");
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line")["value"].as_i64().expect("seq"))
        .collect()
}

fn temp_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".sluice-tmp-") {
                out.push(e.path());
            }
        }
    }
    out
}

/// The newest checkpoint's output was committed; after a byte of one of its state files is
/// flipped (same size), restore refuses to fall back — exit status 3 naming both checkpoints and
/// the sink — until `--allow-fallback`, which logs the decision and replays exactly the output
/// committed at the skipped checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_past_committed_output_is_refused_until_allowed() {
    let dir = tempfile::tempdir().expect("tmp");
    run_job(dir.path(), RestoreMode::Latest).await.expect("first run");
    let store = LocalStore::new(dir.path().join("ckpt")).expect("store");
    let ids = list_checkpoints(&store).await.expect("list");
    let (newest, previous) = (ids[ids.len() - 1], ids[ids.len() - 2]);
    let newest_m = load(&store, &manifest_key(newest)).await.expect("newest verifies").manifest;
    let previous_m = load(&store, &manifest_key(previous)).await.expect("previous verifies").manifest;

    // Real checksums: each file's CRC-32C in the manifest is that of its bytes, and they differ.
    let mut crcs = HashSet::new();
    for f in newest_m.referenced_files() {
        let bytes = std::fs::read(dir.path().join("ckpt").join(&f.path)).expect("state file");
        assert_eq!(crc32c::crc32c(&bytes), f.crc32c, "{}", f.path);
        crcs.insert(f.crc32c);
    }
    let files: HashSet<&String> = newest_m.referenced_files().map(|f| &f.path).collect();
    assert!(files.len() > 1 && crcs.len() == files.len(), "per-file checksums differ: {crcs:?}");

    // What the newest checkpoint committed beyond the previous one: the replay writes it again.
    let listed = |m: &sluice_crds::contract::manifest::Manifest| -> HashSet<String> {
        m.tasks
            .iter()
            .filter(|t| t.node == "pass")
            .flat_map(|t| &t.committables)
            .filter_map(|c| c["txn"]["target"].as_str().map(str::to_string))
            .collect()
    };
    let committed_at_newest: Vec<String> = listed(&newest_m).difference(&listed(&previous_m)).cloned().collect();
    assert!(!committed_at_newest.is_empty(), "the newest checkpoint committed output of its own");
    let replayed: HashSet<i64> = committed_at_newest.iter().flat_map(|f| seqs_in(Path::new(f))).collect();

    // Corrupt one byte of a state file only the newest checkpoint references.
    let shared: HashSet<&String> = previous_m.referenced_files().map(|f| &f.path).collect();
    let own = newest_m.referenced_files().find(|f| !shared.contains(&f.path)).expect("a file of its own");
    flip_middle_byte(&dir.path().join("ckpt").join(&own.path));
    let err = load_latest(&store).await.expect_err("refused");
    assert!(
        matches!(&err, RestoreError::FallbackRefused { newest: n, fallback: f, sinks, .. }
            if *n == newest && *f == previous && sinks == "pass"),
        "{err}"
    );

    let refused = run_cli(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "data-loss-risk exit status: {stderr}");
    for needle in [format!("checkpoint {newest} failed verification"), format!("older checkpoint {previous}")] {
        assert!(stderr.contains(&needle), "{needle:?} not in: {stderr}");
    }
    assert!(stderr.contains("pass") && stderr.contains("--allow-fallback"), "{stderr}");
    assert!(seq_counts(&dir.path().join("pass")).values().all(|&n| n == 1), "a refused run writes nothing");

    let allowed = run_cli(dir.path(), &["--allow-fallback"]);
    let stderr = String::from_utf8_lossy(&allowed.stderr);
    assert!(allowed.status.success(), "{stderr}");
    assert!(stderr.contains("falling back past checkpoints whose sinks may have committed"), "{stderr}");
    assert!(stderr.contains(&newest.to_string()) && stderr.contains(&previous.to_string()), "{stderr}");
    let counts = seq_counts(&dir.path().join("pass"));
    assert_eq!(counts.len() as u64, COUNT, "every record committed");
    for (seq, n) in &counts {
        let expected = if replayed.contains(seq) { 2 } else { 1 };
        assert_eq!(*n, expected, "seq {seq}: the replay duplicates exactly what the skipped checkpoint committed");
    }
}

/// Falling back past a checkpoint that committed nothing the older one does not cover is safe:
/// allowed without any flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_past_a_checkpoint_without_new_committables_is_allowed() {
    let dir = tempfile::tempdir().expect("tmp");
    run_job(dir.path(), RestoreMode::Latest).await.expect("first run");
    // The second run restores the final checkpoint, claims it under the next id (same
    // committables) and finds nothing left to read: its newest checkpoints add no output.
    let second = run_job(dir.path(), RestoreMode::Latest).await.expect("second run");
    let store = LocalStore::new(dir.path().join("ckpt")).expect("store");
    let ids = list_checkpoints(&store).await.expect("list");
    let newest = *ids.last().expect("a checkpoint");
    assert!(newest > second.restored_from.expect("restored"));
    let mut m = load(&store, &manifest_key(newest)).await.expect("newest").manifest;
    // Tear the newest manifest: its committables are unknown, so this one is refused ...
    std::fs::write(dir.path().join("ckpt").join(manifest_key(newest)), b"{\"torn\":").expect("tear");
    assert!(matches!(load_latest(&store).await, Err(RestoreError::FallbackRefused { .. })));
    // ... but a readable manifest with a lost state file, listing no committable the older one
    // does not list, is not.
    let mut lost = m.referenced_files().next().expect("state files").clone();
    lost.path = format!("state/chk-{newest}/lost.state");
    m.tasks[0].files.push(lost);
    std::fs::write(dir.path().join("ckpt").join(manifest_key(newest)), m.encode()).expect("rewrite manifest");
    let loaded = load_latest(&store).await.expect("safe fallback").expect("a checkpoint");
    assert!(loaded.manifest.checkpoint_id < newest);
    assert!(seq_counts(&dir.path().join("pass")).values().all(|&n| n == 1));
}

/// The newest manifest deleted outright (nothing left to fail verification): the completion
/// note still says that checkpoint completed, so restoring the one before it — which would
/// commit the newest checkpoint's output a second time — is refused, naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_newest_manifest_is_noticed_and_fallback_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    run_job(dir.path(), RestoreMode::Latest).await.expect("first run");
    let store = LocalStore::new(dir.path().join("ckpt")).expect("store");
    let ids = list_checkpoints(&store).await.expect("list");
    let (newest, previous) = (ids[ids.len() - 1], ids[ids.len() - 2]);
    std::fs::remove_file(dir.path().join("ckpt").join(manifest_key(newest))).expect("delete the newest manifest");
    let err = load_latest(&store).await.expect_err("refused");
    assert!(
        matches!(&err, RestoreError::FallbackRefused { newest: n, fallback: f, reason, .. }
            if *n == newest && *f == previous && reason.contains("manifest is gone")),
        "{err}"
    );
    let refused = run_cli(dir.path(), &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "data-loss-risk exit status: {stderr}");
    assert!(stderr.contains(&format!("checkpoint {newest}")) && stderr.contains("--allow-fallback"), "{stderr}");
    assert!(seq_counts(&dir.path().join("pass")).values().all(|&n| n == 1), "a refused run writes nothing");
}

/// Emptied `manifests/`: state files or committed sink output without a manifest refuse a
/// fresh start (data-loss risk) unless `--no-restore`; savepoints alone and leftover temp files
/// do not, and the run leaves no temp file behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_without_manifests_but_with_state_or_output_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ckpt = dir.path().join("ckpt");
    // A fresh location, except for a savepoint and temp files of a killed writer: it starts.
    for (rel, body) in [
        ("savepoints/sp-1/_manifest.json", "m"),
        ("state/chk-7/.sluice-tmp-deadbeef0000-1", "partial"),
        ("manifests/.sluice-tmp-0123456789abcdef", "partial"),
    ] {
        let path = ckpt.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, body).expect("write");
    }
    let first = run_job(dir.path(), RestoreMode::Latest).await.expect("a fresh location starts");
    assert_eq!(first.restored_from, None);
    assert_eq!(temp_files(&ckpt), Vec::<PathBuf>::new(), "temp files of interrupted writes are swept");

    std::fs::remove_dir_all(ckpt.join("manifests")).expect("empty manifests/");
    let err = run_job(dir.path(), RestoreMode::Latest).await.expect_err("refused");
    assert!(err.is_data_loss(), "{err}");
    assert!(
        matches!(err, JobError::Restore(RestoreError::ManifestsMissing { ref evidence, .. }) if evidence.contains("state files")),
        "{err}"
    );

    // Without state files the completion note (`sinks/`) says that sinks committed ...
    std::fs::remove_dir_all(ckpt.join("state")).expect("remove state/");
    let err = run_job(dir.path(), RestoreMode::Latest).await.expect_err("refused");
    assert!(err.is_data_loss() && err.to_string().contains("completed-through"), "{err}");
    // ... and without it (a stateless job, notes gone) the committed output still counts.
    std::fs::remove_dir_all(ckpt.join("sinks")).expect("remove sinks/");
    let err = run_job(dir.path(), RestoreMode::Latest).await.expect_err("refused");
    assert!(err.is_data_loss() && err.to_string().contains("committed sink output (pass:"), "{err}");
    assert!(seq_counts(&dir.path().join("pass")).values().all(|&n| n == 1), "nothing written twice");

    let fresh = run_job(dir.path(), RestoreMode::None).await.expect("--no-restore starts over on purpose");
    assert_eq!(fresh.restored_from, None);
    assert!(seq_counts(&dir.path().join("pass")).values().all(|&n| n == 2), "as asked: everything again");
}
