//! `/metrics` of a real runtime process, checked against what the job was given: a JSON file of
//! in-order records, deliberately late ones and malformed lines (random counts, seed printed),
//! keyed and counted in windows at parallelism 2. An unbounded generator keeps the job running
//! after the file is done, so the scrape sees the finished file pipeline. The scrape is parsed
//! by the independent parser of `exposition/` and must agree with the input and output; every
//! metric the Grafana dashboard queries must exist in it.

mod common;
mod exposition;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, http, read_committed};
use exposition::Scrape;
use rand::{Rng, SeedableRng};

/// Event time of the first record (a whole second).
const T0: i64 = 1_700_000_000_000;
const OUT_OF_ORDERNESS_MS: i64 = 2_000;
/// Records per source batch (`record::BATCH_SIZE`): the file is cut so that the last batch
/// holds only the late records (see `write_input`).
const BATCH: u64 = 1024;

/// What the input holds.
struct Input {
    in_order: u64,
    late: u64,
    malformed: u64,
    max_ts: i64,
    /// Distinct (key, window) pairs of the in-order records: the lines the sink must commit.
    windows: usize,
}

/// In-order records in whole batches (so the watermark after the last of them is emitted
/// before the file ends), malformed lines among them, then the late records (event times in
/// the first window, closed long before they come).
fn write_input(path: &Path, rng: &mut impl Rng) -> Input {
    let in_order = BATCH * rng.random_range(2..=4);
    let (late, malformed) = (rng.random_range(1..=20), rng.random_range(1..=3));
    let bad_at: HashSet<u64> = (0..malformed).map(|_| rng.random_range(0..in_order)).collect();
    let mut text = String::new();
    let mut windows = HashSet::new();
    for i in 0..in_order {
        if bad_at.contains(&i) {
            text.push_str("{not json\n");
        }
        let ts = T0 + 10 * i as i64;
        windows.insert((i % 7, ts / 1000));
        let _ = writeln!(text, r#"{{"k": {}, "ts": {ts}, "v": {i}}}"#, i % 7);
    }
    for j in 0..late {
        let _ = writeln!(text, r#"{{"k": {}, "ts": {}, "v": -1}}"#, j % 7, T0 + 5 + j as i64);
    }
    std::fs::write(path, text).expect("write input");
    let max_ts = T0 + 10 * (in_order as i64 - 1);
    Input { in_order, late, malformed: bad_at.len() as u64, max_ts, windows: windows.len() }
}

fn job_yaml(dir: &Path) -> String {
    format!(
        r#"name: metrics-test
checkpointing:
  interval: 100ms
  storage:
    uri: file://{d}/checkpoints
pipeline:
  maxParallelism: 16
  parallelism: 2
  errorPolicy: skip
  nodes:
    - id: events
      parallelism: 1
      jsonFile: {{path: {d}/input.jsonl, timestampField: ts, maxOutOfOrderness: {ooo}ms}}
    - id: keyed
      parallelism: 1
      keyBy: {{field: k}}
    - id: win
      window: {{size: 1s, function: count}}
    - id: out
      parallelism: 1
      fileSink: {{path: {d}/out}}
    - id: tick
      parallelism: 1
      generator: {{keys: 1, ratePerSecond: 20}}
    - id: ticks
      parallelism: 1
      discard: {{}}
  edges:
    - {{from: events, to: keyed}}
    - {{from: keyed, to: win, partition: hash}}
    - {{from: win, to: out, partition: rebalance}}
    - {{from: tick, to: ticks}}
"#,
        d = dir.display(),
        ooo = OUT_OF_ORDERNESS_MS
    )
}

fn scrape(addr: &str) -> Scrape {
    let (code, text) = http(addr, "GET", "/metrics", None).expect("GET /metrics");
    assert_eq!(code, 200, "{text}");
    exposition::parse(&text).unwrap_or_else(|e| panic!("unparsable scrape: {e}\n{text}"))
}

/// Every family has HELP and TYPE and says its unit: counters by their `_total` samples,
/// the rest by a unit suffix (`ready` and the checkpoint id are dimensionless).
fn check_metadata(s: &Scrape) {
    const UNITS: [&str; 4] = ["_seconds", "_bytes", "_milliseconds", "_records"];
    const DIMENSIONLESS: [&str; 2] = ["sluice_runtime_ready", "sluice_runtime_checkpoint_last_completed_id"];
    for sample in &s.samples {
        let family = s.family_of(&sample.name).unwrap_or_else(|| panic!("{} has no # TYPE", sample.name));
        let f = &s.families[family];
        assert!(f.help && f.kind.is_some(), "{family}: HELP and TYPE");
        assert!(family.starts_with("sluice_runtime_"), "{family}: prefix");
        match f.kind.as_deref() {
            Some("counter") => assert!(sample.name.ends_with("_total"), "{}: counter sample", sample.name),
            _ => assert!(
                UNITS.iter().any(|u| family.ends_with(u)) || DIMENSIONLESS.contains(&family),
                "{family}: no unit suffix"
            ),
        }
    }
}

/// Histogram `name`: `_bucket` (cumulative, ending in `+Inf`), `_sum`, `_count` per series;
/// returns the count of each series by its labels (without `le`).
fn histogram_counts(s: &Scrape, name: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for c in s.select(&format!("{name}_count"), &[]) {
        let want: Vec<(&str, &str)> = c.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let buckets: Vec<f64> = s.select(&format!("{name}_bucket"), &want).map(|b| b.value).collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{name} {want:?}: cumulative buckets");
        assert_eq!(s.one(&format!("{name}_bucket"), &[want.as_slice(), &[("le", "+Inf")]].concat()), c.value);
        assert!(s.one(&format!("{name}_sum"), &want) >= 0.0);
        out.push((format!("{:?}", c.labels), c.value));
    }
    out
}

fn wait_for_output(dir: &Path, lines: usize, child: &mut std::process::Child) {
    let start = Instant::now();
    loop {
        let got = read_committed(&dir.join("out")).len();
        if got == lines {
            return;
        }
        assert!(got < lines, "more lines ({got}) than windows ({lines})");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the job ended ({status}) with {got} of {lines} lines");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "only {got} of {lines} lines committed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_agree_with_the_jobs_input_and_output_and_the_dashboard() {
    let seed: u64 = std::env::var("SLUICE_METRICS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("SLUICE_METRICS_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_input(&dir.path().join("input.jsonl"), &mut rng);
    let job = dir.path().join("job.yaml");
    std::fs::write(&job, job_yaml(dir.path())).expect("write job");
    let addr = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
            .args(["run", &job.display().to_string(), "--control-addr", &addr])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    wait_for_output(dir.path(), input.windows, &mut child.0);
    let before_ms = now_ms();
    let s = scrape(&addr);
    let after_ms = now_ms();
    let uptime = started.elapsed().as_secs_f64();
    drop(child);

    check_metadata(&s);
    let total = |name: &str, node: &str| s.sum(&format!("sluice_runtime_{name}_total"), &[("node", node)]);
    assert_eq!(total("records_out", "events"), (input.in_order + input.late) as f64, "seed {seed}");
    assert_eq!(total("malformed_records", "events"), input.malformed as f64, "seed {seed}");
    assert_eq!(total("records_in", "win"), (input.in_order + input.late) as f64, "seed {seed}");
    assert_eq!(total("late_records", "win"), input.late as f64, "seed {seed}");
    assert_eq!(total("records_in", "out"), input.windows as f64, "sink input = lines written; seed {seed}");
    assert_eq!(s.select("sluice_runtime_records_in_total", &[("node", "win")]).count(), 2, "one series per subtask");

    // The last watermark before the end of input: max event time − out-of-orderness − 1.
    let wm = (input.max_ts - OUT_OF_ORDERNESS_MS - 1) as f64;
    assert_eq!(s.one("sluice_runtime_watermark_milliseconds", &[("node", "events")]), wm, "seed {seed}");
    for sub in ["0", "1"] {
        let w = [("node", "win"), ("subtask", sub)];
        assert_eq!(s.one("sluice_runtime_watermark_milliseconds", &w), wm, "seed {seed}");
        let lag = s.one("sluice_runtime_watermark_lag_seconds", &w);
        assert!(lag >= (before_ms as f64 - wm) / 1e3 && lag <= (after_ms as f64 - wm) / 1e3, "lag {lag}");
    }

    // Histograms: well formed; one duration per completed checkpoint; every completed
    // checkpoint aligned by every input-fed task.
    let completed = s.one("sluice_runtime_checkpoints_completed_total", &[]);
    assert!(completed >= 1.0);
    let durations = histogram_counts(&s, "sluice_runtime_checkpoint_duration_seconds");
    assert_eq!(durations.len(), 1);
    assert_eq!(durations[0].1, completed, "checkpoint duration count");
    let aligned = histogram_counts(&s, "sluice_runtime_checkpoint_alignment_seconds");
    assert_eq!(aligned.len(), 3, "win#0, win#1, out#0: {aligned:?}");
    let failed = s.one("sluice_runtime_checkpoints_failed_total", &[]);
    for (series, n) in &aligned {
        assert!(*n >= completed && *n <= completed + failed + 1.0, "{series}: {n} alignments, {completed} completed");
    }
    // Latency at the sink: every sample is at least the age of the newest event time.
    let latency = histogram_counts(&s, "sluice_runtime_end_to_end_latency_seconds");
    let (_, n) = latency.iter().find(|(l, _)| l.contains("\"out\"")).expect("sink latency series");
    let sum = s.one("sluice_runtime_end_to_end_latency_seconds_sum", &[("node", "out")]);
    assert!(
        *n >= 1.0 && sum >= n * ((started_ms(before_ms, uptime) - input.max_ts - 1_000) as f64 / 1e3),
        "{sum} over {n}"
    );

    // Busy + idle + backpressured of each task: at most its lifetime.
    for b in s.select("sluice_runtime_busy_seconds_total", &[]) {
        let l: Vec<(&str, &str)> = b.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sum = b.value
            + s.one("sluice_runtime_idle_seconds_total", &l)
            + s.one("sluice_runtime_backpressured_seconds_total", &l);
        assert!(sum > 0.0 && sum <= uptime, "{l:?}: {sum} s in {uptime} s");
    }
    assert_eq!(s.select("sluice_runtime_busy_seconds_total", &[]).count(), 5, "tasks: events, win×2, out, tick");
    assert!(s.one("sluice_runtime_process_resident_memory_bytes", &[]) > 0.0);
    assert!(s.one("sluice_runtime_process_cpu_seconds_total", &[]) > 0.0);
    check_dashboard(&s);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Wall-clock ms when the process was spawned (at most).
fn started_ms(scrape_ms: i64, uptime_s: f64) -> i64 {
    scrape_ms - (uptime_s * 1e3) as i64
}

/// The metrics a job of this test cannot show: a Kafka source's lag (no broker here), from the
/// runtime's own job metrics with a lag set, encoded as `/metrics` encodes them.
fn kafka_only() -> Scrape {
    let m = sluice_runtime::engine::metrics::JobMetrics::new(vec![("src".into(), 1)]);
    m.set_kafka_lag(0, "topic", 3, 42);
    let mut r = prometheus_client::registry::Registry::with_prefix("sluice_runtime");
    m.register(&mut r, 0);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r).expect("encode");
    let s = exposition::parse(&text).expect("parse");
    assert_eq!(s.one("sluice_runtime_kafka_consumer_lag_records", &[("topic", "topic"), ("partition", "3")]), 42.0);
    s
}

/// Every `sluice_runtime_*` name in a panel query of the dashboard exists in the scrape (or,
/// for the Kafka lag, in [`kafka_only`]).
fn check_dashboard(s: &Scrape) {
    let kafka = kafka_only();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/grafana/sluice-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard JSON");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 8, "panels with queries: {exprs:?}");
    for expr in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "query without a sluice metric: {expr}");
        for name in names {
            assert!(
                s.knows(&name) || kafka.knows(&name),
                "dashboard query {expr:?} uses {name}, which /metrics does not have"
            );
        }
    }
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The `sluice_runtime_*` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("sluice_runtime_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The runtime process, killed when the test ends (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
