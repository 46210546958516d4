//! The command line of `sluice-runtime`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `sluice-runtime`'s arguments.
#[derive(Parser)]
#[command(name = "sluice-runtime", version, about = "Sluice streaming runtime")]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Subcommand)]
pub enum Command {
    /// Run a job document; restores from the latest completed checkpoint unless told otherwise.
    Run(RunArgs),
    /// Validate a job document and exit.
    Validate {
        /// The job document (YAML).
        job: PathBuf,
    },
    /// Run one configuration of the benchmark workload and print its figures.
    Bench(BenchArgs),
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

/// `sluice-runtime run`.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The job document (YAML).
    pub job: PathBuf,
    /// Restore from this checkpoint manifest or savepoint directory URI.
    #[arg(long, conflicts_with = "no_restore")]
    pub restore: Option<String>,
    /// Start fresh even if checkpoints exist.
    #[arg(long)]
    pub no_restore: bool,
    /// Restore an older checkpoint when the newest fails verification even though its sinks
    /// may have committed output (which is then written again); logged as a decision.
    #[arg(long, conflicts_with_all = ["restore", "no_restore"])]
    pub allow_fallback: bool,
    /// Restore a checkpoint or savepoint written by a job of another name, or holding
    /// state for nodes this job no longer has (that state is dropped), instead of refusing
    /// it; logged as a decision.
    #[arg(long, conflicts_with = "no_restore")]
    pub allow_non_restored_state: bool,
    /// Unique id of this run (names temp files); random by default.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Crash on purpose at this fault point (`name` or `name@N`), for recovery tests.
    #[arg(long, env = "SLUICE_FAULT_POINT")]
    pub fault_point: Option<String>,
    /// Chaos mode: crash at any fault point with this probability per pass.
    #[arg(long, env = "SLUICE_CHAOS_PROBABILITY")]
    pub chaos_probability: Option<f64>,
    /// Print a progress line every second.
    #[arg(long)]
    pub progress: bool,
    /// Serve the control endpoint (health, metrics, savepoints, stop) on this address.
    #[arg(long)]
    pub control_addr: Option<std::net::SocketAddr>,
}

/// `sluice-runtime bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Records to generate.
    #[arg(long, default_value_t = 50_000_000)]
    pub records: u64,
    /// Parallelism.
    #[arg(long, default_value_t = 1)]
    pub parallelism: u32,
    /// Checkpoint interval (e.g. `1s`); checkpoints off when absent.
    #[arg(long)]
    pub checkpoint_interval: Option<humantime::Duration>,
    /// Directory for checkpoints.
    #[arg(long, default_value = ".bench/checkpoints")]
    pub dir: PathBuf,
    /// Distinct keys (state size).
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
}

/// `sluice-runtime verify …`.
#[derive(Subcommand)]
pub enum VerifyCommand {
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
pub struct KafkaTopic {
    /// Bootstrap servers.
    #[arg(long)]
    pub bootstrap: String,
    /// Topic.
    #[arg(long)]
    pub topic: String,
}
