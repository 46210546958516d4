//! Operator configuration: parsed once in `main` from flags and environment, then carried in
//! the [`crate::context::Context`]. No other module reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the operator runs.
#[derive(Clone, Debug, PartialEq, Eq, clap::Parser)]
#[command(name = "sluice-operator", about = "Runs StreamJobs on the Sluice runtime")]
pub struct Config {
    /// Namespace to watch; all namespaces when absent.
    #[arg(long, env = "SLUICE_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Address of the operator's HTTP server (/healthz, /metrics, the job pages under /jobs/).
    #[arg(long, env = "SLUICE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "SLUICE_LEASE_NAMESPACE", default_value = "sluice-system")]
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, env = "SLUICE_LEASE_NAME", default_value = "sluice-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME", default_value = "sluice-operator")]
    pub identity: String,
    /// How long a leader's Lease is valid without renewal.
    #[arg(long, env = "SLUICE_LEASE_DURATION", value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// Directory where storage credentials from Secrets are written for the storage client.
    #[arg(long, env = "SLUICE_CREDENTIALS_DIR", default_value = "/tmp/sluice-operator/credentials")]
    pub credentials_dir: PathBuf,
    /// Timeout of calls to a runtime's control endpoint.
    #[arg(long, env = "SLUICE_RUNTIME_TIMEOUT", value_parser = humantime::parse_duration, default_value = "3s")]
    pub runtime_timeout: Duration,
    /// Timeout of a stop-with-savepoint call (final checkpoint, savepoint copy, sink commits).
    #[arg(long, env = "SLUICE_STOP_TIMEOUT", value_parser = humantime::parse_duration, default_value = "10m")]
    pub stop_timeout: Duration,
    /// Serve the job page (`/jobs/{namespace}/{name}/`) without its savepoint and stop buttons:
    /// both answer 403.
    #[arg(long, env = "SLUICE_JOB_PAGE_READ_ONLY")]
    pub job_page_read_only: bool,
}

/// Field manager of every server-side apply and the Events' reporting controller.
pub const FIELD_MANAGER: &str = "sluice-operator";

impl Config {
    /// Settings for tests.
    pub fn test() -> Config {
        Config {
            watch_namespace: None,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lease_namespace: "sluice-system".into(),
            lease_name: "sluice-operator".into(),
            identity: "test".into(),
            lease_duration: Duration::from_secs(15),
            credentials_dir: std::env::temp_dir().join("sluice-operator-test"),
            runtime_timeout: Duration::from_secs(1),
            stop_timeout: Duration::from_secs(5),
            job_page_read_only: false,
        }
    }
}
