//! `sluice-runtime`: runs a job document (the operator's pods run `sluice-runtime run`), checks
//! one, sees and steers a running one (`status`, `checkpoints`, `savepoint`, `stop`, `cancel`),
//! runs the embedded demo, and carries the tools around the engine (benchmarks and the
//! exactly-once verifier), each command in a function of its own.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;
use sluice_crds::contract::control::EXIT_FAILURE;
use sluice_runtime::job::JobError;

mod args;
mod commands;
mod report;
mod signals;
mod tools;

use args::{Cli, Command};

/// mimalloc: records, batches and state rows are many small, short-lived allocations made and
/// freed on different threads, where it is markedly cheaper than the system allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where Kubernetes reads a container's termination message (written only when it exists).
const TERMINATION_LOG: &str = "/dev/termination-log";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let client = matches!(
        cli.command,
        Command::Status(_) | Command::Checkpoints(_) | Command::Savepoint(_) | Command::Stop(_) | Command::Cancel(_)
    );
    let result = runtime.block_on(async {
        match cli.command {
            Command::Status(args) => commands::control::status(args).await,
            Command::Checkpoints(args) => commands::control::checkpoints(args).await,
            Command::Savepoint(args) => commands::control::savepoint(args).await,
            Command::Stop(args) => commands::control::stop(args).await,
            Command::Cancel(args) => commands::control::cancel(args).await,
            Command::Validate { job } => commands::run::validate(&job),
            Command::Run(args) => commands::run::run(args).await,
            Command::Worker(args) => commands::worker::worker(args).await,
            Command::Demo { dir } => commands::run::demo(&dir).await,
            Command::Verify(cmd) => commands::verify::verify(cmd).await,
            Command::BenchState => commands::bench::bench_state(),
            Command::Bench(args) => commands::bench::bench(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A client's failure is not the container's: no termination message.
        Err(e) if client => {
            eprintln!("error: {}", report::said_once(&e));
            ExitCode::from(EXIT_FAILURE)
        }
        Err(e) => failure(&e),
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a person at a terminal, never into a log file or a pod's log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// Prints the error once, writes the termination message, and picks the exit status (see
/// [`report::exit_code`]).
fn failure(e: &anyhow::Error) -> ExitCode {
    let message = report::said_once(e);
    eprintln!("error: {message}");
    let data_loss = e.chain().find_map(|c| c.downcast_ref::<JobError>()).and_then(JobError::data_loss_kind);
    // Kubernetes shows this file as the container's termination message.
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).truncate(true).open(TERMINATION_LOG) {
        use std::io::Write as _;
        let _ = match data_loss {
            Some(kind) => write!(f, "{}", kind.termination_message(&message)),
            None => write!(f, "{message}"),
        };
    }
    ExitCode::from(report::exit_code(e))
}
