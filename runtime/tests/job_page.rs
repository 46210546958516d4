//! Issue 17 item 4, the job page, in a real headless browser (Debian's `chromium`, driven over
//! the DevTools protocol): served by a running job's control port, it draws every node and edge
//! of the job document with its figures and lists a completed checkpoint; its Savepoint button
//! produces a savepoint that is in storage, and its Stop button stops the job with one. A
//! screenshot is saved under the target directory (the path is printed). Without chromium the
//! test fails, naming the binary and how to install it.

#[path = "job_page/cdp.rs"]
mod cdp;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_crds::JobConfig;
use sluice_crds::contract::control::{History, JobState, JobStatus, SavepointState};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-runtime");

/// A throttled generator feeding a window (then a file sink) and a filter (then a discard):
/// four columns deep, two rows wide.
fn write_job(dir: &Path) -> PathBuf {
    let yaml = format!(
        r#"name: page-test
checkpointing:
  interval: 300ms
  timeout: 20s
  retained: 1000
  storage:
    uri: file://{d}/checkpoints
pipeline:
  maxParallelism: 16
  parallelism: 1
  nodes:
    - id: gen
      generator: {{count: 100000000, keys: 10, ratePerSecond: 2000, eventTimeStepMs: 1, splits: 2}}
    - id: win
      window: {{size: 1000ms, function: count}}
      parallelism: 2
    - id: out
      fileSink: {{path: {d}/out}}
      parallelism: 2
    - id: keep
      filter: {{expr: "true"}}
    - id: drop
      discard: {{}}
  edges:
    - {{from: gen, to: win, partition: hash}}
    - {{from: win, to: out}}
    - {{from: gen, to: keep, partition: rebalance}}
    - {{from: keep, to: drop}}
"#,
        d = dir.display()
    );
    let path = dir.join("job.yaml");
    std::fs::write(&path, yaml).expect("write job");
    path
}

/// The job's process, terminated when dropped (the test may fail half-way).
struct Run(Child);

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            common::signal(&self.0, "TERM");
            common::wait_with_timeout(&mut self.0, Duration::from_secs(30));
        }
    }
}

fn get<T: serde::de::DeserializeOwned>(addr: &str, path: &str) -> T {
    let (status, body) = common::http(addr, "GET", path, None).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The local directory of a `file://` URI.
fn local(uri: &str) -> PathBuf {
    PathBuf::from(uri.strip_prefix("file://").unwrap_or(uri))
}

/// What the page shows, read from its DOM.
const SHOWN: &str = r#"JSON.stringify({
  nodes: [...document.querySelectorAll('#graph g.node')].map(g => g.dataset.id),
  edges: [...document.querySelectorAll('#graph path.edge')].map(p => p.dataset.from + '>' + p.dataset.to),
  rates: [...document.querySelectorAll('#graph g.node text.rate')].map(t => t.textContent),
  watermarks: [...document.querySelectorAll('#graph g.node text.watermark')].map(t => t.textContent),
  completed: [...document.querySelectorAll('#checkpoints tbody tr[data-status=completed]')].map(r => Number(r.dataset.id)),
  cells: [...document.querySelectorAll('#checkpoints tbody tr[data-status=completed] td')].map(c => c.textContent),
})"#;

/// The savepoint or stop outcome the page shows.
const ACTION: &str = "JSON.stringify({state: document.querySelector('#action-status').dataset.state, location: document.querySelector('#action-status').dataset.location, text: document.querySelector('#action-status').textContent})";

fn parse(v: &Value) -> Value {
    serde_json::from_str(v.as_str().unwrap_or("null")).unwrap_or(Value::Null)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn the_job_page_shows_the_graph_and_checkpoints_and_its_buttons_take_a_savepoint_and_stop() {
    let browser_bin = cdp::chromium();
    let tmp = tempfile::tempdir().expect("tempdir");
    let job_file = write_job(tmp.path());
    let doc = JobConfig::from_yaml(&std::fs::read_to_string(&job_file).expect("job.yaml")).expect("valid job");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let stderr = std::fs::File::create(tmp.path().join("run.stderr")).expect("stderr file");
    let mut run = Run(Command::new(BIN)
        .arg("run")
        .arg(&job_file)
        .args(["--run-id", "page", "--control-addr", &addr, "--control-linger", "300s"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn sluice-runtime run"));
    let run_stderr = || std::fs::read_to_string(tmp.path().join("run.stderr")).unwrap_or_default();
    let started = Instant::now();
    while common::http(&addr, "GET", "/v1/checkpoints", None)
        .ok()
        .and_then(|(_, b)| serde_json::from_str::<JobStatus>(&b).ok())
        .is_none_or(|s| s.completed == 0)
    {
        assert!(matches!(run.0.try_wait(), Ok(None)), "the job exited: {}", run_stderr());
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint: {}", run_stderr());
        std::thread::sleep(Duration::from_millis(100));
    }

    let url = format!("http://{addr}/");
    let browser = cdp::Browser::launch(&browser_bin, &url);
    let mut page = browser.page(&url);

    // The graph: every node and edge of the document, each node with its rates and watermark;
    // and at least one completed checkpoint row.
    let mut want_nodes: Vec<String> = doc.pipeline.nodes.iter().map(|n| n.id.clone()).collect();
    want_nodes.sort();
    let mut want_edges: Vec<String> = doc.pipeline.edges.iter().map(|e| format!("{}>{}", e.from, e.to)).collect();
    want_edges.sort();
    let shown = page.wait_for(SHOWN, Duration::from_secs(30), |v| {
        let v = parse(v);
        let mut nodes = strings(&v["nodes"]);
        nodes.sort();
        // The first poll may come before the rates are measured: wait for numbers.
        nodes == want_nodes
            && strings(&v["rates"]).iter().all(|r| !r.contains('–'))
            && v["completed"].as_array().is_some_and(|c| !c.is_empty())
    });
    let shown = parse(&shown);
    let mut edges = strings(&shown["edges"]);
    edges.sort();
    assert_eq!(edges, want_edges, "every edge is drawn: {shown}");
    let nodes = strings(&shown["nodes"]);
    let watermarks = strings(&shown["watermarks"]);
    let win = nodes.iter().position(|n| n == "win").and_then(|i| watermarks.get(i)).expect("win's watermark line");
    assert!(win.starts_with("watermark ") && !win.contains('–'), "the window's watermark is shown: {shown}");
    let history: History = get(&addr, "/v1/checkpoints/history");
    let first_row = shown["completed"][0].as_u64().expect("a completed checkpoint id");
    let listed = history.checkpoints.iter().find(|c| c.id.0 == first_row).expect("the row is a checkpoint of the API");
    assert!(listed.location.is_some() && listed.size_bytes.is_some(), "{listed:?}");
    assert!(strings(&shown["cells"]).iter().any(|c| c.ends_with(" ms") || c.ends_with(" s")), "a duration: {shown}");

    // The Savepoint button: a completed savepoint, in storage, the one the API lists.
    assert!(history.savepoints.is_empty(), "no savepoint before the click: {history:?}");
    page.eval("document.querySelector('#savepoint').click(); true");
    let action = page.wait_for(ACTION, Duration::from_secs(60), |v| {
        let s = parse(v)["state"].as_str().unwrap_or("").to_string();
        s == "completed" || s == "failed"
    });
    let action = parse(&action);
    assert_eq!(action["state"], "completed", "the page shows the savepoint's outcome: {action}");
    let location = action["location"].as_str().expect("the savepoint's location").to_string();
    assert!(local(&location).join("_manifest.json").is_file(), "savepoint {location} is in storage");
    let history: History = get(&addr, "/v1/checkpoints/history");
    let sps: Vec<_> = history.savepoints.iter().map(|s| (s.state, s.location.as_deref())).collect();
    assert_eq!(sps, [(SavepointState::Completed, Some(location.as_str()))], "exactly the one savepoint");
    page.wait_for(
        "document.querySelectorAll('#savepoints tbody tr[data-state=completed]').length",
        Duration::from_secs(10),
        |v| v.as_u64() == Some(1),
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("job-page.png");
    page.screenshot(&shot);
    println!("job page screenshot: {}", shot.display());

    // The Stop button (its confirm() answered yes): the job stops with a savepoint.
    page.eval("window.confirm = () => true; document.querySelector('#stop').click(); true");
    let action = page.wait_for(ACTION, Duration::from_secs(60), |v| {
        let v = parse(v);
        v["state"] == "failed"
            || (v["state"] == "completed" && v["text"].as_str().is_some_and(|t| t.contains("stopped")))
    });
    let action = parse(&action);
    assert_eq!(action["state"], "completed", "{action}; run: {}", run_stderr());
    let stop_savepoint = action["location"].as_str().expect("the stop's savepoint").to_string();
    assert!(local(&stop_savepoint).join("_manifest.json").is_file(), "{stop_savepoint}");
    let status: JobStatus = get(&addr, "/v1/checkpoints");
    assert_eq!(status.state, JobState::Finished);
    page.wait_for("[...document.querySelectorAll('button')].every(b => b.disabled)", Duration::from_secs(10), |v| {
        v.as_bool() == Some(true)
    });
    drop(browser);
    common::signal(&run.0, "TERM");
    assert!(common::wait_with_timeout(&mut run.0, Duration::from_secs(60)).success(), "{}", run_stderr());
}
