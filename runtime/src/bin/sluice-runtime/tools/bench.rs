//! The shared benchmark workload (`make bench`), the same as the Flink reference in
//! `shared/bench/`: `generator 0..N → map (key = i % 100000, value 1) → hash by key → running
//! sum per key → discard`, with checkpoints off or every interval to a local directory; or a
//! job document of its own (`make bench-nexmark`), measured at its source.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_crds::JobConfig;
use sluice_crds::contract::job_config::{Checkpointing, StorageSpec};

use sluice_runtime::checkpoint::driver::stats;
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{self, JobError, JobHandles, RestoreMode, RuntimeConfig};

/// One benchmark configuration.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Records to generate.
    pub records: u64,
    /// Parallelism of every node.
    pub parallelism: u32,
    /// Checkpoint interval; `None` for checkpoints off.
    pub checkpoint_interval: Option<Duration>,
    /// Directory for checkpoints.
    pub dir: std::path::PathBuf,
    /// Distinct keys (state size); the shared workload uses 100 000.
    pub keys: u64,
    /// A job document to run instead of the shared workload (its checkpointing and
    /// parallelism replaced by this configuration's); its one source must be bounded.
    pub document: Option<JobConfig>,
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct BenchResult {
    /// Steady-state records/s at the keyed operator, between 10 % and 80 % of the records.
    pub steady_rate: f64,
    /// Records / wall time of the whole run.
    pub overall_rate: f64,
    /// Completed checkpoints.
    pub checkpoints: u64,
    /// Median checkpoint duration, trigger → complete (ms).
    pub ckpt_p50_ms: u64,
    /// 99th percentile checkpoint duration (ms).
    pub ckpt_p99_ms: u64,
    /// Longest checkpoint (ms).
    pub ckpt_max_ms: u64,
    /// Mean bytes per checkpoint.
    pub ckpt_bytes: u64,
    /// Peak resident memory of the process (bytes), from /proc.
    pub peak_rss: u64,
    /// CPU time (user + system) of the whole process, seconds.
    pub cpu_seconds: f64,
    /// Records the measured node counted.
    pub records: u64,
}

/// A benchmark job: the document, the node whose records are counted and how many it sees.
struct Measured {
    job: JobConfig,
    node: usize,
    records: u64,
    /// Count the node's output (a source) rather than its input.
    output: bool,
}

/// `document` with this configuration's parallelism and checkpointing; measured at its one
/// source, which must be bounded (`nexmark.events`, `generator.count`).
fn own_job(cfg: &BenchConfig, mut document: JobConfig) -> Result<Measured, String> {
    document.pipeline.parallelism = Some(cfg.parallelism);
    document.checkpointing = cfg.checkpoint_interval.map(|interval| Checkpointing {
        interval,
        timeout: Duration::from_secs(600),
        min_pause: Duration::ZERO,
        max_concurrent: 1,
        tolerable_failures: 3,
        retained: 1,
        storage: StorageSpec {
            uri: format!("file://{}", cfg.dir.display()),
            endpoint: None,
            region: None,
            path_style: None,
            credentials_dir: None,
        },
    });
    let sources: Vec<(usize, Option<u64>)> = document
        .pipeline
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match (&n.nexmark, &n.generator) {
            (Some(x), _) => Some((i, x.events)),
            (_, Some(g)) => Some((i, g.count)),
            _ => None,
        })
        .collect();
    match sources[..] {
        [(node, Some(records))] => Ok(Measured { job: document, node, records, output: true }),
        _ => Err("the job document needs exactly one nexmark or generator source, with a bounded count".into()),
    }
}

/// The job document of the workload.
pub fn job(cfg: &BenchConfig) -> JobConfig {
    let checkpointing = match cfg.checkpoint_interval {
        Some(i) => format!(
            "checkpointing:\n  interval: {}ms\n  retained: 1\n  storage:\n    uri: file://{}\n",
            i.as_millis(),
            cfg.dir.display()
        ),
        None => String::new(),
    };
    let yaml = format!(
        r#"name: bench
{checkpointing}pipeline:
  parallelism: {p}
  nodes:
    - id: source
      generator: {{count: {n}, keys: {keys}, splits: {p}}}
    - id: to-kv
      map: {{expr: "1"}}
    - id: sum
      aggregate: {{function: sum}}
    - id: discard
      discard: {{}}
  edges:
    - {{from: source, to: to-kv}}
    - {{from: to-kv, to: sum, partition: hash}}
    - {{from: sum, to: discard}}
"#,
        p = cfg.parallelism,
        n = cfg.records,
        keys = cfg.keys
    );
    // The workload is fixed and valid; a failure here is a bug in this file.
    JobConfig::from_yaml(&yaml).unwrap_or_else(|e| panic!("benchmark job is invalid: {e}"))
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Peak resident set size of this process, in bytes (0 where /proc is unavailable).
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system) of this process so far, in seconds (0 where /proc is unavailable;
/// /proc counts in USER_HZ = 100 ticks a second on Linux).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces) end with `)`.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Runs one configuration and measures it.
pub async fn run(cfg: &BenchConfig) -> Result<BenchResult, JobError> {
    let measured = match &cfg.document {
        Some(d) => own_job(cfg, d.clone())
            .map_err(|m| JobError::Invalid(sluice_crds::ValidationError::single("pipeline.nodes", m)))?,
        None => Measured { job: job(cfg), node: 2, records: cfg.records, output: false },
    };
    let samples: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
    let (sampler_samples, n) = (samples.clone(), measured.records);
    let (node, output) = (measured.node, measured.output);
    let cpu_start = cpu_seconds();
    let config = RuntimeConfig {
        job: measured.job,
        restore: RestoreMode::None,
        run_id: "bench".into(),
        faults: Faults::none(),
        progress: false,
        control: None,
        allow_non_restored_state: false,
    };
    let mut handles: Option<JobHandles> = None;
    let start = Instant::now();
    let sampler = Arc::new(Mutex::new(None::<tokio::task::JoinHandle<()>>));
    let sampler_slot = sampler.clone();
    let outcome = job::run_observed(config, |h| {
        handles = Some(h.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let c = if output { h.metrics.records_out(node) } else { h.metrics.records_in(node) };
                sampler_samples.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), c));
                if c >= n {
                    break;
                }
            }
        });
        *sampler_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    })
    .await?;
    if let Some(t) = sampler.lock().unwrap_or_else(|p| p.into_inner()).take() {
        t.abort();
    }
    let samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let at = |frac: f64| samples.iter().find(|(_, c)| *c as f64 >= frac * n as f64).copied();
    let steady_rate = match (at(0.1), at(0.8)) {
        (Some((t1, c1)), Some((t2, c2))) if t2 > t1 => (c2 - c1) as f64 / (t2 - t1).as_secs_f64(),
        _ => 0.0,
    };
    let s = handles.map(|h| stats(&h.stats).clone()).unwrap_or_default();
    let mut d = s.durations_ms.clone();
    d.sort_unstable();
    let ckpt_bytes = s.latest.as_ref().map_or(0, |l| l.size_bytes);
    Ok(BenchResult {
        steady_rate,
        overall_rate: n as f64 / start.elapsed().as_secs_f64(),
        checkpoints: outcome.checkpoints.completed,
        ckpt_p50_ms: percentile(&d, 0.5),
        ckpt_p99_ms: percentile(&d, 0.99),
        ckpt_max_ms: d.last().copied().unwrap_or(0),
        ckpt_bytes,
        peak_rss: peak_rss(),
        cpu_seconds: cpu_seconds() - cpu_start,
        records: n,
    })
}

/// Bytes a checkpoint writes at a given change rate, against the full state.
#[derive(Clone, Debug)]
pub struct DeltaFigure {
    /// Bytes of a full snapshot.
    pub full_bytes: usize,
    /// Bytes of the incremental snapshot.
    pub delta_bytes: usize,
}

/// Time to restore keyed state of a given size.
#[derive(Clone, Debug)]
pub struct RestoreFigure {
    /// Bytes of the state file.
    pub bytes: usize,
    /// Verify (CRC) + decode + load into the operator, milliseconds.
    pub millis: f64,
}

fn encoded(op: &mut sluice_runtime::ops::aggregate::Aggregate, mode: sluice_runtime::ops::SnapshotMode) -> Vec<u8> {
    use sluice_runtime::ops::Operator;
    let Ok(snap) = op.snapshot(sluice_crds::CheckpointId(1), mode) else { return Vec::new() };
    let Some(keyed) = snap.keyed else { return Vec::new() };
    keyed.encode(128).map(|(bytes, _)| bytes).unwrap_or_default()
}

fn int_record(i: u64) -> sluice_runtime::record::Record {
    sluice_runtime::record::Record {
        key: sluice_runtime::value::Value::Int(i as i64),
        ts: 0,
        value: sluice_runtime::value::Value::Int(1),
    }
}

fn filled(keys: u64) -> sluice_runtime::ops::aggregate::Aggregate {
    use sluice_crds::contract::pipeline::{AggregateFn, ErrorPolicy};
    use sluice_runtime::ops::Operator;
    let mut op = sluice_runtime::ops::aggregate::Aggregate::new("sum", AggregateFn::Sum, None, ErrorPolicy::Fail);
    let mut k = 0;
    while k < keys {
        let batch = (k..(k + 65_536).min(keys)).map(int_record).collect();
        let _ = op.process(batch, &mut Vec::new());
        k += 65_536;
    }
    op
}

/// Delta size at `changed` fraction of `keys` keys changed, against the full snapshot.
pub fn delta_figure(keys: u64, changed: f64) -> DeltaFigure {
    use sluice_runtime::ops::{Operator, SnapshotMode};
    let mut op = filled(keys);
    let full_bytes = encoded(&mut op, SnapshotMode::Full).len();
    let step = (1.0 / changed).round().max(1.0) as u64;
    let batch = (0..keys).step_by(step as usize).map(int_record).collect();
    let _ = op.process(batch, &mut Vec::new());
    let delta_bytes = encoded(&mut op, SnapshotMode::Incremental).len();
    DeltaFigure { full_bytes, delta_bytes }
}

/// Restore time of a full snapshot of `keys` keys (verify, decode, load).
pub fn restore_figure(keys: u64) -> RestoreFigure {
    use sluice_runtime::ops::{Operator, Restored, SnapshotMode};
    let mut op = filled(keys);
    let bytes = encoded(&mut op, SnapshotMode::Full);
    let crc = crc32c::crc32c(&bytes);
    let start = Instant::now();
    let entries = sluice_runtime::state::decode_state_file(
        "bench",
        &bytes,
        bytes.len() as u64,
        crc,
        sluice_runtime::graph::KeyGroupRange { start: 0, end: 127 },
    )
    .unwrap_or_default();
    let mut fresh = filled(0);
    let _ = fresh.restore(Restored { keyed: entries, operator_state: Vec::new() });
    RestoreFigure { bytes: bytes.len(), millis: start.elapsed().as_secs_f64() * 1000.0 }
}
