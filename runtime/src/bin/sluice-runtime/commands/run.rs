//! `run`, `validate` and `demo`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_crds::JobConfig;
use sluice_crds::contract::control::JobState;
use sluice_runtime::control::ControlState;
use sluice_runtime::fault::Faults;
use sluice_runtime::job::workers::WorkerSpec;
use sluice_runtime::job::{self, RestoreMode, RuntimeConfig, human_bytes};
use sluice_runtime::nodes::preflight;

use crate::args::{DEFAULT_CONTROL_ADDR, RunArgs};
use crate::signals;

/// Reads and checks a job document as a run would before processing anything: every problem,
/// each naming its field and node ([`preflight::load`]).
pub fn load_job(path: &Path) -> Result<JobConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    preflight::load(&text).with_context(|| format!("invalid job document {}", path.display()))
}

/// A fresh run id: 12 hex digits.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// `validate`: checks a job document as `run` does before it processes anything (the same
/// code: [`preflight::load`]), creating nothing.
pub fn validate(path: &Path) -> Result<()> {
    let job = load_job(path)?;
    println!("job {} is valid ({} nodes, {} edges)", job.name, job.pipeline.nodes.len(), job.pipeline.edges.len());
    Ok(())
}

/// `run`: runs a job document until it finishes, is cancelled (signal or control endpoint) or
/// fails, serving the control endpoint when asked; with `--workers N`, starts and supervises N
/// worker processes instead.
pub async fn run(args: RunArgs) -> Result<()> {
    match args.workers {
        Some(n) => super::supervisor::supervise(args, n as usize).await,
        None => run_as(args, None).await,
    }
}

/// One worker's place in a multi-worker attempt, and the supervisor's cancel requests.
pub struct AsWorker {
    /// Its place.
    pub spec: WorkerSpec,
    /// Requests to cancel the job (from the local supervisor's pipe), if any.
    pub cancels: Option<tokio::sync::mpsc::UnboundedReceiver<()>>,
}

/// Runs the job in this process, alone or (`worker`) as one worker of an attempt: worker 0
/// serves the control endpoint and cancels the job on a signal; the others leave both to it.
pub async fn run_as(args: RunArgs, worker: Option<AsWorker>) -> Result<()> {
    let job = load_job(&args.job)?;
    let faults = Faults::new(args.fault_point.as_deref(), args.chaos_probability).map_err(anyhow::Error::msg)?;
    let restore = match (args.restore, args.no_restore, args.allow_fallback) {
        (Some(uri), _, _) => RestoreMode::From(uri),
        (None, true, _) => RestoreMode::None,
        (None, false, true) => RestoreMode::LatestAllowingFallback,
        (None, false, false) => RestoreMode::Latest,
    };
    let run_id = args.run_id.unwrap_or_else(run_id);
    // Always there: signals cancel through it even without an endpoint.
    let control = ControlState::new(&run_id);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let member = worker.as_ref().is_some_and(|w| w.spec.index > 0);
    let bind = match (args.control_addr, args.no_control) {
        _ if member => Bind::Off,
        (_, true) => Bind::Off,
        (Some(addr), false) => Bind::Required(addr),
        (None, false) => Bind::Default,
    };
    let server = serve_control(bind, control.clone(), done_rx).await?;
    let config = RuntimeConfig {
        job,
        restore,
        run_id,
        faults,
        progress: args.progress,
        control: Some(control.clone()),
        allow_non_restored_state: args.allow_non_restored_state,
    };
    let resume = format!("sluice-runtime run {}", args.job.display());
    let (spec, cancels) = match worker {
        Some(AsWorker { spec, cancels }) => (Some(spec), cancels),
        None => (None, None),
    };
    if let Some(mut cancels) = cancels {
        let control = control.clone();
        tokio::spawn(async move {
            if cancels.recv().await.is_some() {
                tracing::warn!("the supervisor asks to cancel the job");
                let _ = control.stop(sluice_crds::contract::control::StopKind::Cancel).await;
            }
        });
    }
    let result = if member {
        signals::defer_to_coordinator(run_job(config, &resume, spec)).await
    } else {
        signals::cancel_on_signal(run_job(config, &resume, spec), control.clone()).await
    };
    if result.is_err() && control.job_state() == JobState::Running {
        // It failed before the job could say so (e.g. restore): the endpoint says it now.
        control.set_job_state(JobState::Failed);
    }
    if let Some(server) = server {
        // Clients polling a requested endpoint (a pod's, a script's) see the final state
        // before the process goes away; the default one is a person's, who has the summary.
        if matches!(bind, Bind::Required(_)) {
            signals::linger(args.control_linger.into()).await;
        }
        let _ = done_tx.send(());
        // Let in-flight requests (a stop's reply) finish.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    }
    result
}

/// Where `run` and `demo` serve the control endpoint.
#[derive(Clone, Copy, Debug)]
enum Bind {
    /// Nowhere (`--no-control`).
    Off,
    /// At this address, or not at all: a run that cannot bind it fails (`--control-addr`).
    Required(std::net::SocketAddr),
    /// At [`DEFAULT_CONTROL_ADDR`] when it is free (the client commands' default), else
    /// nowhere, said once.
    Default,
}

/// Binds the control endpoint as `bind` says and serves it until `done` fires; says where.
async fn serve_control(
    bind: Bind,
    control: Arc<ControlState>,
    done: tokio::sync::oneshot::Receiver<()>,
) -> Result<Option<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let listener = match bind {
        Bind::Off => return Ok(None),
        Bind::Required(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the control endpoint to {addr}"))?,
        Bind::Default => match tokio::net::TcpListener::bind(DEFAULT_CONTROL_ADDR).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "note: no control endpoint for this run: {DEFAULT_CONTROL_ADDR} is not free ({e}); \
                     give --control-addr to serve one elsewhere"
                );
                return Ok(None);
            }
        },
    };
    let addr = listener.local_addr().context("reading the control endpoint's address")?;
    eprintln!("job page and control endpoint: http://{addr}/ (`sluice-runtime status --control-addr {addr}`)");
    let shutdown = async move {
        let _ = done.await;
    };
    Ok(Some(tokio::spawn(sluice_runtime::control::http::serve_on(listener, control, shutdown))))
}

/// Runs the job (alone, or as worker `spec.index` of an attempt) and prints its summary; a
/// cancelled run (Ctrl-C, SIGTERM, a stop) also says how to resume it: `resume` is the command
/// that runs it again. A worker other than worker 0 prints nothing.
async fn run_job(config: RuntimeConfig, resume: &str, spec: Option<WorkerSpec>) -> Result<()> {
    let name = config.job.name.clone();
    let checkpointing = config.job.checkpointing.is_some();
    let on = spec.as_ref().map(|s| format!(" on worker {}", s.index)).unwrap_or_default();
    let result = match spec {
        None => job::run(config).await,
        Some(spec) => match job::workers::run_worker(config, spec).await {
            Ok(Some(outcome)) => Ok(outcome),
            Ok(None) => return Ok(()),
            Err(e) => Err(e),
        },
    };
    let outcome = result.with_context(|| format!("job {name} failed{on}"))?;
    let s = &outcome.checkpoints;
    println!(
        "job {name} {}: {} source records in {:.1}s{}, {} checkpoints completed, {} failed{}",
        if outcome.cancelled { "cancelled" } else { "finished" },
        outcome.source_records,
        outcome.elapsed.as_secs_f64(),
        match (outcome.restored_from, outcome.records_before) {
            (Some(_), Some(before)) => format!(" ({} since the job started)", before + outcome.source_records),
            _ => String::new(),
        },
        s.completed,
        s.failed,
        outcome.restored_from.map(|c| format!(", restored from checkpoint {c}")).unwrap_or_default()
    );
    if outcome.cancelled {
        let hint = match (checkpointing, &s.latest, outcome.restored_from) {
            (false, _, _) => format!("the job takes no checkpoints: `{resume}` starts it over"),
            (true, Some(c), _) => format!("to resume from checkpoint {} (the latest), run: {resume}", c.id),
            (true, None, Some(_)) => format!("to resume from the latest checkpoint, run: {resume}"),
            (true, None, None) => format!("no checkpoint completed yet: `{resume}` starts it over"),
        };
        println!("{hint}");
    }
    Ok(())
}

/// `demo`: the embedded demo job (`make demo`), cancelled by Ctrl-C and resumed on the next run.
pub async fn demo(dir: &Path) -> Result<()> {
    let control = ControlState::new(&run_id());
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = serve_control(Bind::Default, control.clone(), done_rx).await?;
    let result = signals::cancel_on_signal(run_demo(dir, control.clone()), control).await;
    let _ = done_tx.send(());
    if let Some(server) = server {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    }
    result
}

async fn run_demo(dir: &Path, control: Arc<ControlState>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let abs = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let yaml = include_str!("../../../../jobs/demo.yaml").replace("DEMO_DIR", &abs.display().to_string());
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
    run_job(config, &format!("sluice-runtime demo --dir {}", dir.display()), None).await?;
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
