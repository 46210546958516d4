//! `kubectl sluice`: a kubectl plugin for Sluice StreamJobs.
//!
//! Every command acts through the StreamJob the way the operator expects — the savepoint
//! annotation, `spec.state` — and reads what the operator writes to its status; it never talks
//! to the runtime or storage itself. The command logic lives here, so it runs in tests against a
//! mock API server; `main.rs` only turns the command line and kubeconfig into a [`Session`].

pub mod checkpoints;
pub mod cli;
pub mod error;
pub mod job;
pub mod logs;
pub mod render;
pub mod savepoint;
pub mod state;
pub mod status;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_show;

use std::io::Write;

use jiff::Timestamp;
use kube::Client;
use sluice_crds::stream_job::DesiredState;

pub use cli::{Cli, Command};
pub use error::Error;

/// What a command runs with: a client, the namespace, the time ages are counted to, and the
/// nonce a savepoint request uses (both injected, so tests are exact).
pub struct Session {
    /// The API client.
    pub client: Client,
    /// The namespace of the job.
    pub namespace: String,
    /// "Now", for ages.
    pub now: Timestamp,
    /// The annotation value of a savepoint request.
    pub nonce: String,
}

impl Session {
    /// A session at the current time with a fresh nonce.
    pub fn new(client: Client, namespace: &str) -> Self {
        Session { client, namespace: namespace.to_string(), now: Timestamp::now(), nonce: savepoint::fresh_nonce() }
    }

    /// Runs `command`, writing its output to `out`.
    pub async fn run(&self, command: &Command, out: &mut (impl Write + Send)) -> Result<(), Error> {
        let jobs = job::Jobs::new(self.client.clone(), &self.namespace);
        match command {
            Command::Savepoint(a) => {
                let wait = a.wait.then(|| savepoint::Wait { timeout: *a.timeout, interval: *a.poll_interval });
                savepoint::request(&jobs, &a.job, &self.nonce, wait, out).await
            }
            Command::Suspend(a) => state::set(&jobs, &a.job, DesiredState::Suspended, out).await,
            Command::Resume(a) => state::set(&jobs, &a.job, DesiredState::Running, out).await,
            Command::Status(a) => {
                status::show(self.client.clone(), &self.namespace, &a.job, a.output, self.now, out).await
            }
            Command::Checkpoints(a) => checkpoints::show(&jobs, &a.job, a.output, self.now, out).await,
            Command::Logs(a) => logs::stream(self.client.clone(), &jobs, a, out).await,
        }
    }
}
