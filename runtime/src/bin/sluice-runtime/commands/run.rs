//! `run`, `validate` and `demo`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_crds::JobConfig;
use sluice_runtime::control::ControlState;
use sluice_runtime::fault::Faults;
use sluice_runtime::job::{self, RestoreMode, RuntimeConfig, human_bytes};

use crate::args::RunArgs;
use crate::signals;

fn load_job(path: &Path) -> Result<JobConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    JobConfig::from_yaml(&text).with_context(|| format!("invalid job document {}", path.display()))
}

/// A fresh run id: 12 hex digits.
pub fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// `validate`: checks a job document.
pub fn validate(path: &Path) -> Result<()> {
    let job = load_job(path)?;
    println!("job {} is valid ({} nodes, {} edges)", job.name, job.pipeline.nodes.len(), job.pipeline.edges.len());
    Ok(())
}

/// `run`: runs a job document until it finishes, is cancelled (signal or control endpoint) or
/// fails, serving the control endpoint when asked.
pub async fn run(args: RunArgs) -> Result<()> {
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
    let server = match args.control_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the control endpoint to {addr}"))?;
            let shutdown = async move {
                let _ = done_rx.await;
            };
            Some(tokio::spawn(sluice_runtime::control::http::serve_on(listener, control.clone(), shutdown)))
        }
        None => None,
    };
    let config = RuntimeConfig {
        job,
        restore,
        run_id,
        faults,
        progress: args.progress,
        control: Some(control.clone()),
        allow_non_restored_state: args.allow_non_restored_state,
    };
    let result = signals::cancel_on_signal(run_job(config), control).await;
    let _ = done_tx.send(());
    if let Some(server) = server {
        // Let in-flight requests (a stop's reply) finish.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    }
    result
}

/// Runs the job and prints its one-line summary.
async fn run_job(config: RuntimeConfig) -> Result<()> {
    let name = config.job.name.clone();
    let outcome = job::run(config).await.with_context(|| format!("job {name} failed"))?;
    let s = &outcome.checkpoints;
    println!(
        "job {name} {}: {} source records in {:.1}s, {} checkpoints completed, {} failed{}",
        if outcome.cancelled { "cancelled (resumes from its latest checkpoint)" } else { "finished" },
        outcome.source_records,
        outcome.elapsed.as_secs_f64(),
        s.completed,
        s.failed,
        outcome.restored_from.map(|c| format!(", restored from checkpoint {c}")).unwrap_or_default()
    );
    Ok(())
}

/// `demo`: the embedded demo job (`make demo`), cancelled by Ctrl-C and resumed on the next run.
pub async fn demo(dir: &Path) -> Result<()> {
    let control = ControlState::new(&run_id());
    signals::cancel_on_signal(run_demo(dir, control.clone()), control).await
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
    run_job(config).await?;
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
