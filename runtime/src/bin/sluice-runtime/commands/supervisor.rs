//! `run --workers N`: a job over N worker processes on 127.0.0.1. This process only starts and
//! watches them — it runs no task — as the operator does with pods: when any worker fails (exits
//! with an error, or dies), it kills the others and relaunches all N from the latest completed
//! checkpoint, each attempt with a new attempt id and fresh ports. Each worker exits when this
//! process goes away (its standard input, a pipe from here, closes).

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use sluice_crds::contract::control::{EXIT_DATA_LOSS, EXIT_FAILURE, EXIT_INVALID_JOB, EXIT_USAGE};
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use super::run::{load_job, run_id};
use crate::args::RunArgs;
use sluice_runtime::nodes::preflight;

/// A worker failed and the run does not relaunch it (no restart left, or a failure a relaunch
/// cannot mend): the run exits with `code`.
#[derive(Debug, thiserror::Error)]
#[error("worker {worker} of attempt {attempt} failed ({status}){why}")]
pub struct WorkerFailed {
    /// The worker whose failure ended the attempt.
    pub worker: usize,
    /// The attempt.
    pub attempt: String,
    /// How it ended.
    pub status: String,
    /// Why there is no relaunch.
    pub why: String,
    /// The exit status of the run.
    pub code: u8,
}

/// How an attempt ended.
enum AttemptEnd {
    /// Worker 0 finished (the job finished or was cancelled) and the others followed.
    Finished,
    /// This worker failed first (worker 0's status preferred when it failed too).
    Failed(usize, ExitStatus),
}

/// Runs `args.job` over `n` local workers, relaunching them after a failure up to
/// `--max-restarts` times.
pub async fn supervise(args: RunArgs, n: usize) -> Result<()> {
    load_job(&args.job)?; // refuse an invalid document before anything starts
    let exe = std::env::current_exe().context("locating the sluice-runtime executable")?;
    let run = args.run_id.clone().unwrap_or_else(run_id);
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    for attempt_no in 0..=args.max_restarts {
        let attempt = format!("{run}-a{attempt_no}");
        // Every worker of the attempt reads this one copy of the document, taken now: an edit
        // while they start (the relaunch reads the document again) cannot split them.
        let document = Snapshot::take(&args.job, &attempt)?;
        let mut children = launch(&exe, &args, &document.path, n, &attempt, attempt_no == 0)?;
        let end = tokio::select! {
            end = watch(&mut children) => end,
            _ = term.recv() => return cancel(children, "SIGTERM").await,
            _ = int.recv() => return cancel(children, "SIGINT").await,
        };
        let (worker, status) = match end {
            AttemptEnd::Finished => return Ok(()),
            AttemptEnd::Failed(worker, status) => (worker, status),
        };
        kill_all(&mut children).await;
        let code = exit_code(&status);
        let why = if !retryable(&status) {
            format!(": exit status {code} is not mended by a relaunch")
        } else if attempt_no == args.max_restarts {
            format!(": no relaunch left (--max-restarts {})", args.max_restarts)
        } else {
            eprintln!(
                "sluice-runtime: worker {worker} of attempt {attempt} failed ({status}); relaunching all {n} workers from the latest completed checkpoint (restart {} of {})",
                attempt_no + 1,
                args.max_restarts
            );
            continue;
        };
        return Err(WorkerFailed { worker, attempt, status: status.to_string(), why, code }.into());
    }
    unreachable!("the last attempt returns")
}

/// The job document as one attempt's workers read it: a copy in the temporary directory,
/// checked first, removed when the attempt is over.
struct Snapshot {
    path: std::path::PathBuf,
}

impl Snapshot {
    fn take(job: &std::path::Path, attempt: &str) -> Result<Snapshot> {
        let text = std::fs::read_to_string(job).with_context(|| format!("reading {}", job.display()))?;
        // An edit that broke the document fails here, naming the user's file.
        preflight::load(&text).with_context(|| format!("invalid job document {}", job.display()))?;
        let name = job.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "job.yaml".into());
        let path = std::env::temp_dir().join(format!("sluice-{attempt}-{}-{name}", std::process::id()));
        std::fs::write(&path, text).with_context(|| format!("writing the attempt's copy {}", path.display()))?;
        Ok(Snapshot { path })
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts the `n` workers of `attempt`, each with its exchange port and worker 0's control port
/// on 127.0.0.1. The first attempt takes the run's restore and fault flags; a relaunch restores
/// the latest checkpoint.
fn launch(
    exe: &std::path::Path,
    args: &RunArgs,
    job: &std::path::Path,
    n: usize,
    attempt: &str,
    first: bool,
) -> Result<Vec<Child>> {
    let ports = free_ports(n + 1)?;
    let peers: Vec<String> = ports[..n].iter().map(SocketAddr::to_string).collect();
    let mut children = Vec::with_capacity(n);
    for index in 0..n {
        let mut cmd = Command::new(exe);
        cmd.arg("worker").arg(job).arg("--index").arg(index.to_string());
        cmd.arg("--peers").arg(peers.join(",")).arg("--coordinator").arg(ports[n].to_string());
        cmd.arg("--attempt").arg(attempt).arg("--supervised");
        if first {
            if let Some(r) = &args.restore {
                cmd.arg("--restore").arg(r);
            }
            if args.no_restore {
                cmd.arg("--no-restore");
            }
            if let Some(f) = &args.fault_point {
                cmd.arg("--fault-point").arg(f);
            }
            if let Some(p) = args.chaos_probability {
                cmd.arg("--chaos-probability").arg(p.to_string());
            }
        } else {
            // The fault plan was for the first attempt only.
            cmd.env_remove("SLUICE_FAULT_POINT").env_remove("SLUICE_CHAOS_PROBABILITY");
        }
        if args.allow_fallback {
            cmd.arg("--allow-fallback");
        }
        if args.allow_non_restored_state {
            cmd.arg("--allow-non-restored-state");
        }
        if index == 0 {
            match (args.control_addr, args.no_control) {
                (_, true) => {
                    cmd.arg("--no-control");
                }
                (Some(addr), false) => {
                    cmd.arg("--control-addr").arg(addr.to_string());
                }
                (None, false) => {}
            }
            cmd.arg("--control-linger").arg(args.control_linger.to_string());
            if args.progress {
                cmd.arg("--progress");
            }
        }
        cmd.stdin(Stdio::piped()).kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting worker {index}"))?;
        eprintln!(
            "sluice-runtime: attempt {attempt}: worker {index} pid {} exchange {}",
            child.id().unwrap_or(0),
            ports[index]
        );
        children.push(child);
    }
    Ok(children)
}

/// `count` free ports on 127.0.0.1 (bound, then released for the workers to bind; a port taken
/// meanwhile fails the attempt, and the relaunch picks others).
fn free_ports(count: usize) -> Result<Vec<SocketAddr>> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("finding free ports on 127.0.0.1")?;
    listeners.iter().map(|l| l.local_addr().context("reading a free port")).collect()
}

/// Waits until worker 0 finished and the others followed, or a worker failed.
async fn watch(children: &mut [Child]) -> AttemptEnd {
    let mut ended: Vec<Option<ExitStatus>> = vec![None; children.len()];
    loop {
        for (i, c) in children.iter_mut().enumerate() {
            if ended[i].is_none()
                && let Ok(Some(s)) = c.try_wait()
            {
                ended[i] = Some(s);
            }
        }
        if let Some(failed) = ended.iter().position(|s| s.is_some_and(|s| !s.success())) {
            if failed != 0 {
                // Worker 0 holds the attempt's own error when it failed too: a moment for it.
                if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_secs(3), children[0].wait()).await
                    && !s.success()
                {
                    return AttemptEnd::Failed(0, s);
                }
            }
            return AttemptEnd::Failed(failed, ended[failed].unwrap_or_default());
        }
        if ended[0].is_some() {
            // Worker 0 finished: the others end on its goodbye.
            for c in children.iter_mut().skip(1) {
                match tokio::time::timeout(Duration::from_secs(10), c.wait()).await {
                    Ok(Ok(s)) if !s.success() => tracing::warn!("a worker ended with {s} after the job finished"),
                    Ok(_) => {}
                    Err(_) => {
                        tracing::warn!("a worker did not end within 10 s of the job: killing it");
                        let _ = c.kill().await;
                    }
                }
            }
            return AttemptEnd::Finished;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A signal: worker 0 cancels the job for every worker (asked through its pipe, in case the
/// signal reached only this process); a second signal kills them all.
async fn cancel(mut children: Vec<Child>, name: &str) -> Result<()> {
    tracing::warn!(signal = name, "cancelling the job through worker 0; a second signal kills every worker");
    if let Some(stdin) = children[0].stdin.as_mut() {
        let _ = stdin.write_all(b"cancel\n").await;
        let _ = stdin.flush().await;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let waited = async {
        let status = children[0].wait().await;
        for c in children.iter_mut().skip(1) {
            let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
        }
        status
    };
    tokio::select! {
        status = waited => match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(WorkerFailed {
                worker: 0, attempt: String::new(), status: s.to_string(), why: " while cancelling".into(), code: exit_code(&s),
            }.into()),
            Err(e) => Err(e).context("waiting for worker 0"),
        },
        _ = term.recv() => { kill_all(&mut children).await; std::process::exit(143) }
        _ = int.recv() => { kill_all(&mut children).await; std::process::exit(130) }
    }
}

/// Kills every worker still running (SIGKILL, by its pid) and reaps it.
async fn kill_all(children: &mut [Child]) {
    for c in children.iter_mut() {
        let _ = c.start_kill();
    }
    for c in children.iter_mut() {
        let _ = c.wait().await;
    }
}

/// The run's exit status for a worker that ended with `status`.
fn exit_code(status: &ExitStatus) -> u8 {
    match status.code() {
        Some(c) => u8::try_from(c).unwrap_or(EXIT_FAILURE),
        None => EXIT_FAILURE,
    }
}

/// Whether a relaunch may mend a worker that ended with `status`: a death by signal or a plain
/// failure may be; an invalid document, a bad command line or a data-loss risk is not.
fn retryable(status: &ExitStatus) -> bool {
    if status.signal().is_some() {
        return true;
    }
    !matches!(status.code().map(|c| c as u8), Some(EXIT_DATA_LOSS | EXIT_INVALID_JOB | EXIT_USAGE))
}
