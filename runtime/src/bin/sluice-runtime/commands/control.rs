//! `status`, `checkpoints`, `savepoint`, `stop` and `cancel`: a running job seen and steered
//! through its control endpoint (`sluice_crds::contract::control`), one function each.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use sluice_crds::contract::control::{SavepointState, SavepointStatus, StopKind};
use sluice_runtime::control::client::ControlClient;

use super::control_format::{checkpoints_table, status_text, stop_text};
use crate::args::{ClientArgs, Output, SavepointArgs, StopArgs};

/// How often `savepoint --wait` asks.
const POLL: Duration = Duration::from_millis(200);

fn client(args: &ClientArgs) -> ControlClient {
    ControlClient::new(&args.control_addr, args.timeout.into())
}

/// Prints `doc` as pretty JSON.
fn print_json<T: Serialize>(doc: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(doc).context("printing the document")?);
    Ok(())
}

/// `status`: the job's state and checkpoint progress.
pub async fn status(args: ClientArgs) -> Result<()> {
    let c = client(&args);
    let status = c.status().await?;
    match args.output {
        Output::Json => print_json(&status),
        Output::Human => {
            print!("{}", status_text(&status, c.addr(), now_ms()));
            Ok(())
        }
    }
}

/// `checkpoints`: the run's recent checkpoints and savepoints.
pub async fn checkpoints(args: ClientArgs) -> Result<()> {
    let history = client(&args).history().await?;
    match args.output {
        Output::Json => print_json(&history),
        Output::Human => {
            print!("{}", checkpoints_table(&history, now_ms()));
            Ok(())
        }
    }
}

/// `savepoint`: triggers one; with `--wait`, waits until it completed (exit 0) or failed (an
/// error, exit 1).
pub async fn savepoint(args: SavepointArgs) -> Result<()> {
    let c = client(&args.client);
    let mut sp = c.trigger_savepoint(args.location).await?;
    if args.wait {
        sp = wait_for(&c, sp, args.client.timeout.into()).await?;
    }
    if args.client.output == Output::Json {
        print_json(&sp)?;
    }
    match sp.state {
        SavepointState::Completed => {
            if args.client.output == Output::Human {
                println!("savepoint {} completed: {}", sp.id, sp.location.as_deref().unwrap_or("(no location)"));
            }
            Ok(())
        }
        SavepointState::Failed => {
            bail!("savepoint {} failed: {}", sp.id, sp.error.as_deref().unwrap_or("no reason given"))
        }
        SavepointState::Pending => {
            if args.client.output == Output::Human {
                println!(
                    "savepoint {} triggered; follow it with `sluice-runtime checkpoints --control-addr {}`",
                    sp.id,
                    c.addr()
                );
            }
            Ok(())
        }
    }
}

/// Polls savepoint `sp` until it is no longer pending, for at most `limit`.
async fn wait_for(c: &ControlClient, mut sp: SavepointStatus, limit: Duration) -> Result<SavepointStatus> {
    let start = Instant::now();
    while sp.state == SavepointState::Pending {
        if start.elapsed() > limit {
            bail!("savepoint {} still pending after {} s", sp.id, limit.as_secs());
        }
        tokio::time::sleep(POLL).await;
        sp = c.savepoint(&sp.id).await?;
    }
    Ok(sp)
}

/// `stop`: stops the job, with a final savepoint when `--savepoint`; returns once it stopped.
pub async fn stop(args: StopArgs) -> Result<()> {
    stop_as(&args.client, StopKind::of(args.savepoint)).await
}

/// `cancel`: cancels the job; returns once every task has ended.
pub async fn cancel(args: ClientArgs) -> Result<()> {
    stop_as(&args, StopKind::Cancel).await
}

async fn stop_as(args: &ClientArgs, kind: StopKind) -> Result<()> {
    let c = client(args);
    let stopped = c.stop(kind == StopKind::Savepoint).await?;
    match args.output {
        Output::Json => print_json(&stopped),
        Output::Human => {
            println!("{}", stop_text(&stopped));
            Ok(())
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
