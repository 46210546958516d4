//! `worker`: one worker of a job spread over several processes (see
//! `sluice_runtime::job::workers`). A pod of a multi-worker job runs it; so does each child of
//! `run --workers N`.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sluice_runtime::job::workers::WorkerSpec;
use tokio::sync::mpsc;

use super::run::{AsWorker, run_as};
use crate::args::WorkerArgs;

/// Runs worker `args.index` of attempt `args.attempt`.
pub async fn worker(mut args: WorkerArgs) -> Result<()> {
    if args.run.workers.is_some() {
        bail!("--workers is for `run`; a worker is one of them (--index, --peers)");
    }
    let cancels = args.supervised.then(watch_supervisor);
    let connect_timeout: Duration = args.connect_timeout.into();
    let peers = resolve_all(&args.peers, connect_timeout).await?;
    let coordinator = resolve(&args.coordinator, connect_timeout).await?;
    let mut spec = WorkerSpec::new(args.index, peers, coordinator, args.attempt.clone());
    spec.listen = args.listen;
    spec.coordinator_listen = args.coordinator_listen;
    spec.connect_timeout = connect_timeout;
    spec.heartbeat = args.heartbeat.into();
    spec.heartbeat_timeout = args.heartbeat_timeout.into();
    args.run.run_id.get_or_insert_with(|| args.attempt.clone());
    run_as(args.run, Some(AsWorker { spec, cancels })).await
}

/// Resolves every `host:port` (a pod's peers are names that may not resolve until their pods
/// exist: retried until `within`).
async fn resolve_all(addrs: &[String], within: Duration) -> Result<Vec<SocketAddr>> {
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs {
        out.push(resolve(a, within).await?);
    }
    Ok(out)
}

async fn resolve(addr: &str, within: Duration) -> Result<SocketAddr> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let found = tokio::net::lookup_host(addr).await.map(|mut a| a.next());
        match found {
            Ok(Some(a)) => return Ok(a),
            Ok(None) if tokio::time::Instant::now() >= deadline => bail!("{addr} resolves to no address"),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("resolving {addr}"));
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Watches standard input, the local supervisor's pipe: its end means the supervisor is gone
/// (killed), and so must this worker be, at once; a line `cancel` asks to cancel the job.
fn watch_supervisor() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new().name("sluice-supervisor-pipe".into()).spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) if l.trim() == "cancel" => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        eprintln!("error: the supervisor (`run --workers`) is gone: exiting");
        std::process::exit(i32::from(sluice_crds::contract::control::EXIT_FAILURE));
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the supervisor's pipe: {e}");
    }
    rx
}
