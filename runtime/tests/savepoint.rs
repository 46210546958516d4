//! Savepoints through the control endpoint of a real runtime process: take one while running,
//! stop with a savepoint, restore from it at another parallelism, and get exactly the output of
//! an uninterrupted run.

mod common;

use std::time::{Duration, Instant};

use common::{KillJob, free_port, http, wait_with_timeout};

fn wait_ready(addr: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok((200, _)) = http(addr, "GET", "/readyz", None) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("runtime at {addr} never became ready");
}

#[test]
fn savepoint_stop_and_restore_at_another_parallelism_is_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let job = KillJob {
        count: 600_000,
        keys: 100,
        window_ms: 10_000,
        rate: 100_000,
        storage_yaml: format!("    uri: file://{}/checkpoints", dir.path().display()),
        dir: dir.path().to_path_buf(),
        custom_yaml: None,
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = job.command(1, 2).arg("--control-addr").arg(&addr).spawn().expect("spawn");
    wait_ready(&addr);
    std::thread::sleep(Duration::from_millis(1500));

    // A savepoint while running.
    let (code, body) = http(&addr, "POST", "/v1/savepoints", Some("{}")).expect("post savepoint");
    assert_eq!(code, 202, "{body}");
    let sp: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = sp["id"].as_str().expect("id").to_string();
    let start = Instant::now();
    let location = loop {
        let (_, body) = http(&addr, "GET", &format!("/v1/savepoints/{id}"), None).expect("get savepoint");
        let s: serde_json::Value = serde_json::from_str(&body).expect("json");
        match s["state"].as_str() {
            Some("completed") => break s["location"].as_str().expect("location").to_string(),
            Some("failed") => panic!("savepoint failed: {body}"),
            _ if start.elapsed() > Duration::from_secs(30) => panic!("savepoint never completed: {body}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let sp_dir = location.strip_prefix("file://").expect("file location");
    assert!(std::path::Path::new(sp_dir).join("_manifest.json").exists(), "self-contained savepoint at {sp_dir}");
    let (code, body) = http(&addr, "GET", "/v1/checkpoints", None).expect("status");
    assert_eq!(code, 200);
    assert!(body.contains("\"state\":\"running\""), "{body}");
    let (_, metrics) = http(&addr, "GET", "/metrics", None).expect("metrics");
    assert!(metrics.contains("sluice_runtime_records_in_total{node=\"win\",subtask=\"0\"}"), "{metrics}");

    // Stop with a savepoint: every sink committed, nothing after the barrier, exit 0.
    let (code, body) = http(&addr, "POST", "/v1/stop", Some(r#"{"savepoint": true}"#)).expect("stop");
    assert_eq!(code, 200, "{body}");
    let stop: serde_json::Value = serde_json::from_str(&body).expect("json");
    let final_sp = stop["savepoint"].as_str().expect("savepoint location").to_string();
    let status = wait_with_timeout(&mut child, Duration::from_secs(30));
    assert!(status.success(), "stop-with-savepoint exits 0, got {status}");
    for sub in ["pass", "windows"] {
        let temps = std::fs::read_dir(dir.path().join(sub))
            .expect("sink dir")
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".inprogress")))
            .count();
        assert_eq!(temps, 0, "stop-with-savepoint left temp files in {sub}");
    }

    // Resume from the final savepoint at parallelism 3, run to the end, compare with the truth.
    let mut resumed = job.command(2, 3).arg("--restore").arg(&final_sp).spawn().expect("spawn");
    let status = wait_with_timeout(&mut resumed, Duration::from_secs(120));
    assert!(status.success(), "resumed run failed: {status}");
    job.verify();
}
