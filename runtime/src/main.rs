//! `sluice-runtime`: runs a job document (the operator's pods run `sluice-runtime run`), checks
//! one, or runs the embedded demo.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sluice_crds::JobConfig;
use sluice_runtime::control::ControlState;
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{self, JobError, RestoreMode, RuntimeConfig, human_bytes};

mod signals;

#[derive(Parser)]
#[command(name = "sluice-runtime", version, about = "Sluice streaming runtime")]
struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a job document; restores from the latest completed checkpoint unless told otherwise.
    Run {
        /// The job document (YAML).
        job: PathBuf,
        /// Restore from this checkpoint manifest or savepoint directory URI.
        #[arg(long, conflicts_with = "no_restore")]
        restore: Option<String>,
        /// Start fresh even if checkpoints exist.
        #[arg(long)]
        no_restore: bool,
        /// Restore an older checkpoint when the newest fails verification even though its sinks
        /// may have committed output (which is then written again); logged as a decision.
        #[arg(long, conflicts_with_all = ["restore", "no_restore"])]
        allow_fallback: bool,
        /// Restore a checkpoint or savepoint written by a job of another name, or holding
        /// state for nodes this job no longer has (that state is dropped), instead of refusing
        /// it; logged as a decision.
        #[arg(long, conflicts_with = "no_restore")]
        allow_non_restored_state: bool,
        /// Unique id of this run (names temp files); random by default.
        #[arg(long)]
        run_id: Option<String>,
        /// Crash on purpose at this fault point (`name` or `name@N`), for recovery tests.
        #[arg(long, env = "SLUICE_FAULT_POINT")]
        fault_point: Option<String>,
        /// Chaos mode: crash at any fault point with this probability per pass.
        #[arg(long, env = "SLUICE_CHAOS_PROBABILITY")]
        chaos_probability: Option<f64>,
        /// Print a progress line every second.
        #[arg(long)]
        progress: bool,
        /// Serve the control endpoint (health, metrics, savepoints, stop) on this address.
        #[arg(long)]
        control_addr: Option<std::net::SocketAddr>,
    },
    /// Validate a job document and exit.
    Validate {
        /// The job document (YAML).
        job: PathBuf,
    },
    /// Run one configuration of the benchmark workload and print its figures.
    Bench {
        /// Records to generate.
        #[arg(long, default_value_t = 50_000_000)]
        records: u64,
        /// Parallelism.
        #[arg(long, default_value_t = 1)]
        parallelism: u32,
        /// Checkpoint interval (e.g. `1s`); checkpoints off when absent.
        #[arg(long)]
        checkpoint_interval: Option<humantime::Duration>,
        /// Directory for checkpoints.
        #[arg(long, default_value = ".bench/checkpoints")]
        dir: PathBuf,
        /// Distinct keys (state size).
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
    },
    /// Exactly-once verifier: produce sequence-numbered input, or check committed output.
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Print keyed-state figures: incremental bytes at 1 % / 10 % change, restore time by size.
    BenchState,
    /// Run the embedded demo job (generator → keyBy → windowed count → file sink).
    Demo {
        /// Directory for checkpoints and output.
        #[arg(long, default_value = ".demo")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum VerifyCommand {
    /// Write `count` JSON lines `{"seq": i, "ts": i}` (input for a jsonFile source).
    ProduceFile {
        /// Output file.
        path: PathBuf,
        /// Number of records.
        #[arg(long)]
        count: u64,
    },
    /// Check a file sink's committed output: every number in 0..count exactly once. Exit 0 only
    /// for a perfect run.
    Files {
        /// The file sink's directory.
        dir: PathBuf,
        /// Number of records expected.
        #[arg(long)]
        count: u64,
        /// Dotted path of the sequence number in each output line.
        #[arg(long, default_value = "value.seq")]
        field: String,
    },
    /// Produce `count` records `{"seq": i}` to a Kafka topic (key `i % keys`, timestamp
    /// `start + i` ms), creating the topic when it is missing.
    #[cfg(feature = "kafka")]
    ProduceKafka {
        #[command(flatten)]
        target: KafkaTopic,
        /// Number of records.
        #[arg(long)]
        count: u64,
        /// Number of distinct keys.
        #[arg(long, default_value_t = 1000)]
        keys: u64,
        /// Partitions of the topic, when it has to be created.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Timestamp of record 0, epoch ms.
        #[arg(long, default_value_t = 1_700_000_000_000)]
        start_ms: i64,
    },
    /// Measure end-to-end latency: produce to `input` at `rate` records/s stamped with the
    /// wall-clock time, read `output` read_committed, print delay percentiles.
    #[cfg(feature = "kafka")]
    KafkaLatency {
        /// Bootstrap servers.
        #[arg(long)]
        bootstrap: String,
        /// Topic the job reads.
        #[arg(long)]
        input: String,
        /// Topic the job writes.
        #[arg(long)]
        output: String,
        /// Records per second.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// How long to produce and measure.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Check a Kafka topic with a read_committed consumer: every number in 0..count exactly
    /// once and no transaction left open. Exit 0 only for a perfect run.
    #[cfg(feature = "kafka")]
    Kafka {
        #[command(flatten)]
        target: KafkaTopic,
        /// Number of records expected.
        #[arg(long)]
        count: u64,
        /// Dotted path of the sequence number in each record's JSON value.
        #[arg(long, default_value = "seq")]
        field: String,
    },
}

/// A Kafka topic and where to reach it.
#[cfg(feature = "kafka")]
#[derive(clap::Args)]
struct KafkaTopic {
    /// Bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// Topic.
    #[arg(long)]
    topic: String,
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

fn load_job(path: &Path) -> Result<JobConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    JobConfig::from_yaml(&text).with_context(|| format!("invalid job document {}", path.display()))
}

fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

async fn run(config: RuntimeConfig) -> Result<()> {
    let name = config.job.name.clone();
    let outcome = job::run(config).await.with_context(|| format!("job {name} failed"))?;
    let s = &outcome.checkpoints;
    println!(
        "job {name} {}: {} source records in {:.1}s, {} checkpoints completed, {} failed{}",
        if outcome.cancelled { "cancelled (resumes from its latest checkpoint)" } else { "finished" },
        outcome.source_records,
        outcome.elapsed.as_secs_f64(),
        s.completed,
        s.failed,
        outcome.restored_from.map(|c| format!(", restored from checkpoint {c}")).unwrap_or_default()
    );
    Ok(())
}

async fn demo(dir: &Path, control: Arc<ControlState>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let abs = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let yaml = include_str!("../jobs/demo.yaml").replace("DEMO_DIR", &abs.display().to_string());
    let job = JobConfig::from_yaml(&yaml).context("embedded demo job")?;
    println!("Sluice demo: 6M generated events → keyBy (100 users) → 10 s windowed count → exactly-once files");
    println!(
        "checkpoints every second in {}/checkpoints; stop it any time (Ctrl-C) and run it again to resume",
        abs.display()
    );
    let config = RuntimeConfig {
        job,
        restore: RestoreMode::Latest,
        run_id: run_id(),
        faults: Faults::none(),
        progress: true,
        control: Some(control),
        allow_non_restored_state: false,
    };
    run(config).await?;
    let out = abs.join("output");
    let files: Vec<_> = std::fs::read_dir(&out)
        .with_context(|| format!("listing {}", out.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .collect();
    let bytes: u64 = files.iter().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum();
    println!("output: {} committed files ({}) in {}", files.len(), human_bytes(bytes), out.display());
    println!("each line is one window: {{\"key\":…,\"value\":{{\"key\":…,\"start\":…,\"end\":…,\"value\":count}}}}");
    Ok(())
}

/// Where Kubernetes reads a container's termination message (written only when it exists).
const TERMINATION_LOG: &str = "/dev/termination-log";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Validate { job } => {
                let job = load_job(&job)?;
                println!(
                    "job {} is valid ({} nodes, {} edges)",
                    job.name,
                    job.pipeline.nodes.len(),
                    job.pipeline.edges.len()
                );
                Ok(())
            }
            Command::Run {
                job,
                restore,
                no_restore,
                allow_fallback,
                allow_non_restored_state,
                run_id: id,
                fault_point,
                chaos_probability,
                progress,
                control_addr,
            } => {
                let job = load_job(&job)?;
                let faults = Faults::new(fault_point.as_deref(), chaos_probability).map_err(anyhow::Error::msg)?;
                let restore = match (restore, no_restore, allow_fallback) {
                    (Some(uri), _, _) => RestoreMode::From(uri),
                    (None, true, _) => RestoreMode::None,
                    (None, false, true) => RestoreMode::LatestAllowingFallback,
                    (None, false, false) => RestoreMode::Latest,
                };
                let run_id = id.unwrap_or_else(run_id);
                // Always there: signals cancel through it even without an endpoint.
                let control = ControlState::new(&run_id);
                let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
                let server = match control_addr {
                    Some(addr) => {
                        let listener = tokio::net::TcpListener::bind(addr)
                            .await
                            .with_context(|| format!("binding the control endpoint to {addr}"))?;
                        let shutdown = async move {
                            let _ = done_rx.await;
                        };
                        Some(tokio::spawn(sluice_runtime::control::http::serve_on(listener, control.clone(), shutdown)))
                    }
                    None => None,
                };
                let config = RuntimeConfig {
                    job,
                    restore,
                    run_id,
                    faults,
                    progress,
                    control: Some(control.clone()),
                    allow_non_restored_state,
                };
                let result = signals::cancel_on_signal(run(config), control).await;
                let _ = done_tx.send(());
                if let Some(server) = server {
                    // Let in-flight requests (a stop's reply) finish.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
                }
                result
            }
            Command::Demo { dir } => {
                let control = ControlState::new(&run_id());
                signals::cancel_on_signal(demo(&dir, control.clone()), control).await
            }
            Command::Verify(VerifyCommand::ProduceFile { path, count }) => {
                sluice_runtime::verify::produce_file(&path, count)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {count} sequence-numbered records to {}", path.display());
                Ok(())
            }
            Command::Verify(VerifyCommand::Files { dir, count, field }) => {
                let report = sluice_runtime::verify::check_file_sink(&dir, &field, count)
                    .with_context(|| format!("reading {}", dir.display()))?;
                println!("{report}");
                if report.is_exactly_once() { Ok(()) } else { anyhow::bail!("output is not exactly-once") }
            }
            #[cfg(feature = "kafka")]
            Command::Verify(VerifyCommand::ProduceKafka { target: KafkaTopic { bootstrap, topic }, count, keys, partitions, start_ms }) => {
                use sluice_runtime::connectors::kafka::verify;
                tokio::task::spawn_blocking(move || {
                    verify::create_topic(&bootstrap, &topic, partitions)?;
                    verify::produce(&bootstrap, &topic, count, keys, start_ms)?;
                    println!("produced {count} sequence-numbered records to {topic}");
                    anyhow::Ok(())
                })
                .await
                .context("producer thread")?
            }
            #[cfg(feature = "kafka")]
            Command::Verify(VerifyCommand::KafkaLatency { bootstrap, input, output, rate, seconds }) => {
                use sluice_runtime::connectors::kafka::verify;
                let b = bootstrap.clone();
                let reader =
                    tokio::task::spawn_blocking(move || verify::measure_latency(&b, &output, seconds + 5));
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let sent = tokio::task::spawn_blocking(move || verify::produce_live(&bootstrap, &input, rate, seconds))
                    .await
                    .context("producer thread")??;
                let mut delays = reader.await.context("consumer thread")??;
                delays.sort_unstable();
                let pct = |q: f64| delays.get(((delays.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(-1);
                println!(
                    "LATENCY sent={sent} received={} p50={}ms p90={}ms p99={}ms max={}ms",
                    delays.len(),
                    pct(0.5),
                    pct(0.9),
                    pct(0.99),
                    pct(1.0)
                );
                Ok(())
            }
            #[cfg(feature = "kafka")]
            Command::Verify(VerifyCommand::Kafka { target: KafkaTopic { bootstrap, topic }, count, field }) => {
                use sluice_runtime::connectors::kafka::verify;
                tokio::task::spawn_blocking(move || {
                    let open =
                        verify::open_transactions_named(&bootstrap, &topic, std::time::Duration::from_secs(10))?;
                    if !open.is_empty() {
                        println!("transactions left open: {open}");
                    }
                    let report = verify::check_topic(&bootstrap, &topic, &field, count)?;
                    println!("{report}");
                    if report.is_exactly_once() && open.is_empty() {
                        Ok(())
                    } else {
                        anyhow::bail!("output is not exactly-once")
                    }
                })
                .await
                .context("consumer thread")?
            }
            Command::BenchState => {
                for keys in [100_000u64, 1_000_000] {
                    for changed in [0.01, 0.10] {
                        let f = sluice_runtime::bench::delta_figure(keys, changed);
                        println!(
                            "DELTA keys={keys} changed={:.0}% fullBytes={} deltaBytes={} deltaOverFull={:.3}",
                            changed * 100.0,
                            f.full_bytes,
                            f.delta_bytes,
                            f.delta_bytes as f64 / f.full_bytes as f64
                        );
                    }
                }
                for keys in [100_000u64, 1_000_000, 5_000_000] {
                    let f = sluice_runtime::bench::restore_figure(keys);
                    println!("RESTORE keys={keys} bytes={} ms={:.0}", f.bytes, f.millis);
                }
                Ok(())
            }
            Command::Bench { records, parallelism, checkpoint_interval, dir, keys } => {
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                let dir = std::fs::canonicalize(&dir)?;
                let cfg = sluice_runtime::bench::BenchConfig {
                    records,
                    parallelism,
                    checkpoint_interval: checkpoint_interval.map(Into::into),
                    dir,
                    keys,
                };
                let r = sluice_runtime::bench::run(&cfg).await.context("benchmark run failed")?;
                println!(
                    "RESULT engine=sluice p={parallelism} n={records} keys={keys} checkpoints={} steadyRecPerSec={:.0} recPerSecWall={:.0} ckptCompleted={} ckptP50Ms={} ckptP99Ms={} ckptMaxMs={} ckptBytes={} peakRssBytes={}",
                    checkpoint_interval.map_or("off".to_string(), |i| i.to_string()),
                    r.steady_rate,
                    r.overall_rate,
                    r.checkpoints,
                    r.ckpt_p50_ms,
                    r.ckpt_p99_ms,
                    r.ckpt_max_ms,
                    r.ckpt_bytes,
                    r.peak_rss
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let data_loss = e.chain().find_map(|c| c.downcast_ref::<JobError>().and_then(JobError::data_loss_kind));
            let timeout = e.chain().any(|c| c.downcast_ref::<signals::StopTimeout>().is_some());
            // Kubernetes shows this file as the container's termination message.
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).truncate(true).open(TERMINATION_LOG) {
                use std::io::Write as _;
                let message = format!("{e:#}");
                let _ = match data_loss {
                    Some(kind) => write!(f, "{}", kind.termination_message(&message)),
                    None => write!(f, "{message}"),
                };
            }
            use sluice_crds::contract::control::{EXIT_DATA_LOSS, EXIT_STOP_TIMEOUT};
            match (data_loss, timeout) {
                (Some(_), _) => ExitCode::from(EXIT_DATA_LOSS),
                (None, true) => ExitCode::from(EXIT_STOP_TIMEOUT),
                (None, false) => ExitCode::FAILURE,
            }
        }
    }
}
