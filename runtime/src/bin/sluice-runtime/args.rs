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
    /// Run one worker of a job spread over several processes (what each pod of a multi-worker
    /// job runs; `run --workers N` starts N of them locally).
    Worker(WorkerArgs),
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
    /// Show a running job: state, run id, what it restored from, the last checkpoint.
    Status(ClientArgs),
    /// List a running job's recent checkpoints and savepoints.
    Checkpoints(ClientArgs),
    /// Take a savepoint of a running job.
    Savepoint(SavepointArgs),
    /// Stop a running job; with --savepoint a final savepoint is taken first (sinks commit
    /// it), without it the job is cancelled (as `cancel`).
    Stop(StopArgs),
    /// Cancel a running job: open transactions are aborted; the next start resumes from the
    /// latest completed checkpoint.
    Cancel(ClientArgs),
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
    /// Serve the control endpoint (job page, health, metrics, savepoints, stop) on this
    /// address. Without it the run serves it on 127.0.0.1:9090, where `status`, `stop`, … look
    /// by default, unless that address is taken (then it says so and serves none).
    #[arg(long, conflicts_with = "no_control")]
    pub control_addr: Option<std::net::SocketAddr>,
    /// Serve no control endpoint.
    #[arg(long)]
    pub no_control: bool,
    /// After the job ended, keep serving the control endpoint this long, so that a client sees
    /// the final state (`finished`, `failed`, `cancelled`); a signal ends it early.
    #[arg(long, default_value = "2s")]
    pub control_linger: humantime::Duration,
    /// Run the job over this many worker processes on 127.0.0.1: this process only starts and
    /// watches them, and when one fails it stops the others and relaunches them all from the
    /// latest completed checkpoint. Worker 0 runs the coordinator and serves the control
    /// endpoint.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// With --workers: how many times the workers are relaunched after a failure before the
    /// run fails.
    #[arg(long, default_value_t = 10, requires = "workers")]
    pub max_restarts: u32,
}

/// `sluice-runtime worker`: one worker of a multi-worker attempt.
#[derive(clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// This worker's index (0 runs the checkpoint coordinator and serves the control endpoint).
    #[arg(long)]
    pub index: usize,
    /// Every worker's exchange address (`host:port`), by index, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub peers: Vec<String>,
    /// Where this worker's exchange listens (default: its own entry of --peers).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Worker 0's control address (`host:port`), where the other workers connect.
    #[arg(long)]
    pub coordinator: String,
    /// Where worker 0 listens for the other workers (default: --coordinator).
    #[arg(long)]
    pub coordinator_listen: Option<std::net::SocketAddr>,
    /// The attempt id, the same for every worker of the attempt: a worker of another attempt
    /// is refused. Also the run id, unless --run-id says otherwise.
    #[arg(long)]
    pub attempt: String,
    /// How long the other workers may take to start and connect.
    #[arg(long, default_value = "30s")]
    pub connect_timeout: humantime::Duration,
    /// How often an idle control connection says it is alive.
    #[arg(long, default_value = "1s")]
    pub heartbeat: humantime::Duration,
    /// Silence on a control connection after which the other worker is taken as lost.
    #[arg(long, default_value = "10s")]
    pub heartbeat_timeout: humantime::Duration,
    /// Started by `run --workers`: exit when standard input closes (the supervisor is gone);
    /// a line `cancel` on it cancels the job.
    #[arg(long, hide = true)]
    pub supervised: bool,
}

/// Where a client command finds the runtime, and how it answers.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// The control endpoint (`host:port`) of the runtime, as given to `run --control-addr`.
    #[arg(long, env = "SLUICE_CONTROL_ADDR", default_value = DEFAULT_CONTROL_ADDR)]
    pub control_addr: String,
    /// Output: a human layout, or the endpoint's JSON document.
    #[arg(short, long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// Give up on an answer after this long (a stop answers once the job stopped).
    #[arg(long, default_value = "60s")]
    pub timeout: humantime::Duration,
}

/// Where client commands look when `--control-addr` is not given.
pub const DEFAULT_CONTROL_ADDR: &str = "127.0.0.1:9090";

/// How a client command prints its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// A layout for people.
    Human,
    /// The control endpoint's JSON document.
    Json,
}

/// `sluice-runtime savepoint`.
#[derive(clap::Args)]
pub struct SavepointArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Wait until the savepoint completed (exit 0) or failed (exit 1).
    #[arg(long)]
    pub wait: bool,
    /// Directory URI for the savepoint (`file:///dir`, `s3://bucket/prefix`); by default
    /// `<storage uri>/savepoints/<id>`.
    #[arg(long)]
    pub location: Option<String>,
}

/// `sluice-runtime stop`.
#[derive(clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Take a final savepoint before stopping and print its location.
    #[arg(long)]
    pub savepoint: bool,
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
    /// Measure this job document instead of the shared workload (`--records` and `--keys`
    /// do not apply): its one source (`nexmark` with `events`, or `generator` with `count`)
    /// is counted; `--parallelism` and `--checkpoint-interval` replace its own settings.
    #[arg(long)]
    pub job: Option<PathBuf>,
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use sluice_crds::contract::control::CONTROL_PORT;

    use super::*;

    #[test]
    fn client_commands_default_to_the_local_control_port() {
        assert_eq!(DEFAULT_CONTROL_ADDR.parse::<std::net::SocketAddr>().map(|a| a.port()), Ok(CONTROL_PORT));
        let cli = Cli::try_parse_from(["sluice-runtime", "savepoint", "--wait", "-o", "json"]).expect("parses");
        let Command::Savepoint(a) = cli.command else { panic!("savepoint") };
        assert!(a.wait && a.location.is_none() && a.client.output == Output::Json);
        assert!(Cli::try_parse_from(["sluice-runtime", "stop", "--savepoint", "-o", "yaml"]).is_err());
        let cli = Cli::try_parse_from(["sluice-runtime", "run", "j.yaml", "--control-linger", "0s"]).expect("parses");
        let Command::Run(r) = cli.command else { panic!("run") };
        assert!(std::time::Duration::from(r.control_linger).is_zero());
    }
}
