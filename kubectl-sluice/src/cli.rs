//! The command line: kubectl's targeting flags (`-n`, `--context`, `--kubeconfig`) on every
//! command, and one subcommand per action on a StreamJob.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `kubectl sluice`: act on Sluice StreamJobs through the StreamJob object, the way the operator
/// expects (annotation, spec), never around it.
#[derive(Debug, Parser)]
#[command(name = "kubectl-sluice", bin_name = "kubectl sluice", version)]
pub struct Cli {
    /// Which cluster and namespace.
    #[command(flatten)]
    pub target: Target,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Which cluster and namespace a command acts on.
#[derive(Debug, Args)]
pub struct Target {
    /// Namespace of the StreamJob. Default: the namespace of the kubeconfig context.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use. Default: the current context.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Path of the kubeconfig file. Default: `$KUBECONFIG`, then `~/.kube/config`.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
}

/// The plugin's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Trigger a savepoint: set the annotation `sluice.dev/savepoint` to a fresh nonce.
    Savepoint(SavepointArgs),
    /// Suspend the job: set `spec.state: suspended` (the operator stops it with a savepoint).
    Suspend(JobArg),
    /// Resume a suspended job: set `spec.state: running` (it restores that savepoint).
    Resume(JobArg),
    /// Show phase, attempt, workers, last checkpoint and its age, last savepoint, conditions.
    Status(ShowArgs),
    /// Show the checkpoints and savepoints the job's status records.
    Checkpoints(ShowArgs),
    /// Print the logs of the current attempt's runtime pod(s).
    Logs(LogsArgs),
}

/// A command that names one job.
#[derive(Debug, Args)]
pub struct JobArg {
    /// Name of the StreamJob.
    pub job: String,
}

/// `kubectl sluice savepoint`.
#[derive(Debug, Args)]
pub struct SavepointArgs {
    /// Name of the StreamJob.
    pub job: String,
    /// Wait until the savepoint completed (print its location) or failed (exit 1).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (with `--wait`).
    #[arg(long, requires = "wait", default_value = "10m")]
    pub timeout: humantime::Duration,
    /// How often to read the StreamJob while waiting.
    #[arg(long, hide = true, default_value = "2s")]
    pub poll_interval: humantime::Duration,
}

/// `kubectl sluice status` and `checkpoints`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Name of the StreamJob.
    pub job: String,
    /// Output format: `json` or `yaml`. Default: a layout for people.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

/// Machine-readable output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// `kubectl sluice logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Name of the StreamJob.
    pub job: String,
    /// Keep streaming new lines, and follow the next attempt's pods when the operator restarts
    /// the job, until it is Finished, Failed or Suspended or you press Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Container of the runtime pod.
    #[arg(short = 'c', long, default_value = crate::logs::RUNTIME_CONTAINER)]
    pub container: String,
    /// Lines of recent log to show first. Default: all.
    #[arg(long)]
    pub tail: Option<i64>,
    /// The log of the previous run of the container (after a restart in place).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its pod's name (always on when there are several pods).
    #[arg(long)]
    pub prefix: bool,
    /// How often to read the StreamJob while waiting for the next attempt (with `-f`).
    #[arg(long, hide = true, default_value = "2s")]
    pub poll_interval: humantime::Duration,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn flags_parse_like_kubectl_anywhere_on_the_line() {
        let cli =
            Cli::try_parse_from(["kubectl-sluice", "status", "demo", "-n", "prod", "-o", "json"]).expect("parses");
        assert_eq!(cli.target.namespace.as_deref(), Some("prod"));
        assert!(
            matches!(cli.command, Command::Status(ShowArgs { ref job, output: Some(Output::Json) }) if job == "demo")
        );
        let cli = Cli::try_parse_from([
            "kubectl-sluice",
            "--context",
            "kind",
            "savepoint",
            "demo",
            "--wait",
            "--timeout",
            "90s",
        ])
        .expect("parses");
        let Command::Savepoint(args) = cli.command else { panic!("savepoint") };
        assert!(args.wait);
        assert_eq!(*args.timeout, std::time::Duration::from_secs(90));
        assert_eq!(cli.target.context.as_deref(), Some("kind"));
    }

    #[test]
    fn usage_errors_are_exit_status_2_and_help_is_not_an_error() {
        for bad in [
            vec!["kubectl-sluice", "savepoint"],
            vec!["kubectl-sluice", "savepoint", "demo", "--timeout", "5m"],
            vec!["kubectl-sluice", "status", "demo", "-o", "wide"],
            vec!["kubectl-sluice", "rescale", "demo"],
        ] {
            let err = Cli::try_parse_from(&bad).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{bad:?}: {err}");
        }
        let help = Cli::try_parse_from(["kubectl-sluice", "--help"]).expect_err("help exits");
        assert_eq!(help.exit_code(), 0);
        let usage = Cli::command().render_usage().to_string();
        assert!(usage.starts_with("Usage: kubectl sluice"), "{usage}");
        Cli::command().debug_assert();
    }
}
