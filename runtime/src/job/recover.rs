//! Before a run's tasks start: choose the restore point, fence an older attempt, and resolve
//! every transactional sink's pending transactions (commit what the restored checkpoint lists,
//! abort the rest).

use sluice_crds::CheckpointId;

use super::{JobError, RestoreMode, RuntimeConfig};
use crate::checkpoint::restore::{self, LoadedCheckpoint, RestoreError, RestorePlan};
use crate::checkpoint::retention::sweep;
use crate::checkpoint::{CheckpointError, claim, completed, fallback};
use crate::connectors::two_phase::RecoveryContext;
use crate::nodes::sink_recovery;
use crate::storage::{self, ObjectStore, SharedStore};

/// What a run starts from, once recovery is done.
pub(super) struct Prepared {
    /// The job's checkpoint storage, when it takes checkpoints.
    pub store: Option<SharedStore>,
    /// The checkpoint or savepoint restored, if any.
    pub loaded: Option<LoadedCheckpoint>,
    /// Its state, per operator subtask (sinks' committables already taken out and resolved).
    pub restore_plan: RestorePlan,
    /// The id the run's first checkpoint gets.
    pub first_id: CheckpointId,
}

/// Restore point, fencing and sink recovery, in that order; also starts the start-up orphan
/// sweep in the background.
pub(super) async fn prepare(config: &RuntimeConfig) -> Result<Prepared, JobError> {
    let job = &config.job;
    let store = match &job.checkpointing {
        Some(c) => Some(storage::open(&c.storage).await?),
        None => None,
    };
    let (loaded, claimable) = load_restore_point(config, store.as_ref()).await?;
    let mut restore_plan = match &loaded {
        Some(l) => {
            tracing::info!(checkpoint = %l.manifest.checkpoint_id, location = %l.location, "restoring");
            restore::check_fit(l, &job.name, &job.pipeline, config.allow_non_restored_state)?;
            restore::assign(l, &job.pipeline)?
        }
        None => RestorePlan::default(),
    };
    let first_id = first_checkpoint_id(config, store.as_deref(), loaded.as_ref(), claimable, &restore_plan).await?;
    recover_sinks(config, store.as_deref(), &mut restore_plan).await?;
    config.faults.hit("restore.after_sink_recovery");
    if let (Some(s), Some(c)) = (&store, &job.checkpointing) {
        let (s, retained, faults) = (s.clone(), c.retained as usize, config.faults.clone());
        tokio::spawn(async move {
            if let Err(e) = sweep(s.as_ref(), retained, &faults).await {
                tracing::warn!(error = %e, "start-up orphan sweep failed");
            }
        });
    }
    Ok(Prepared { store, loaded, restore_plan, first_id })
}

/// Checkpoint ids continue after every id ever published (the completion note may name a
/// checkpoint whose manifest is gone: its id is never reused). Where this attempt restores the
/// job's own latest state (or starts without state) it first fences an older attempt that may
/// still run by claiming the next id (see `checkpoint::claim`); a savepoint restore follows a
/// stop, and its files live elsewhere.
async fn first_checkpoint_id(
    config: &RuntimeConfig,
    store: Option<&dyn ObjectStore>,
    loaded: Option<&LoadedCheckpoint>,
    claimable: bool,
    restore_plan: &RestorePlan,
) -> Result<CheckpointId, JobError> {
    let existing = match store {
        Some(s) => {
            let note = completed::read(s).await.ok().flatten();
            storage::manifests::list_ids(s).await?.last().copied().max(note)
        }
        None => None,
    };
    let first_id = restore::first_checkpoint_id(existing, restore_plan.checkpoint);
    let Some(s) = store.filter(|_| claimable) else { return Ok(first_id) };
    let (job, pipeline) = (&config.job, &config.job.pipeline);
    claim::claim(s, &job.name, &config.run_id, pipeline.max_parallelism, loaded.map(|l| &l.manifest), first_id)
        .await
        .map_err(|source| CheckpointError::Claim { checkpoint: first_id, source })?;
    Ok(first_id.next())
}

/// Resolves every transactional sink before anything runs: commits what the restored
/// checkpoint lists, aborts the rest. A failure here is never ignored (data-loss risk).
async fn recover_sinks(
    config: &RuntimeConfig,
    store: Option<&dyn ObjectStore>,
    restore_plan: &mut RestorePlan,
) -> Result<(), JobError> {
    let (job, pipeline) = (&config.job, &config.job.pipeline);
    for (idx, node) in pipeline.nodes.iter().enumerate() {
        let Some(recovery) = sink_recovery(node, job) else { continue };
        let committables = restore_plan.committables.remove(&idx).unwrap_or_default();
        let ctx = RecoveryContext {
            store,
            checkpoint: restore_plan.checkpoint,
            parallelism: pipeline.parallelism_of(node),
            faults: &config.faults,
        };
        let (committed, aborted) = recovery
            .recover(&ctx, &committables)
            .await
            .map_err(|source| JobError::SinkRecovery { node: node.id.clone(), source })?;
        if committed + aborted > 0 {
            tracing::info!(node = %node.id, committed, aborted, "recovered sink transactions");
        }
    }
    Ok(())
}

/// The restore point, and whether it is the job's own checkpoint (or none) — a state a new
/// attempt may claim (see `checkpoint::claim`).
async fn load_restore_point(
    config: &RuntimeConfig,
    store: Option<&SharedStore>,
) -> Result<(Option<LoadedCheckpoint>, bool), JobError> {
    match &config.restore {
        RestoreMode::None => Ok((None, true)),
        RestoreMode::Latest | RestoreMode::LatestAllowingFallback => match store {
            Some(s) => {
                let policy = match config.restore {
                    RestoreMode::LatestAllowingFallback => fallback::Fallback::Allow,
                    _ => fallback::Fallback::Refuse,
                };
                let loaded = restore::load_latest_with(s.as_ref(), policy).await?;
                let output = if loaded.is_none() { fallback::sink_output(&config.job) } else { Vec::new() };
                if !output.is_empty() {
                    let evidence = format!("committed sink output ({})", output.join("; "));
                    return Err(RestoreError::ManifestsMissing { store: s.describe(), evidence }.into());
                }
                Ok((loaded, true))
            }
            None => Ok((None, false)),
        },
        RestoreMode::From(uri) => {
            let target = storage::layout::RestoreTarget::parse(uri);
            let own = config.job.checkpointing.as_ref().is_some_and(|c| target.is_checkpoint_of(&c.storage.uri));
            let storage::layout::RestoreTarget { root, key } = target;
            let default = sluice_crds::contract::job_config::StorageSpec {
                uri: root.clone(),
                endpoint: None,
                region: None,
                path_style: None,
                credentials_dir: None,
            };
            let options = config.job.checkpointing.as_ref().map(|c| &c.storage).unwrap_or(&default);
            let s = storage::open_uri(&root, options).await?;
            Ok((Some(restore::load(s.as_ref(), &key).await?), own))
        }
    }
}

/// What a worker other than worker 0 starts from: worker 0 chose the restore point (`restore`,
/// a manifest or savepoint URI; `None` for a fresh start), fenced older attempts and recovered
/// the sinks; this worker only loads the same checkpoint and deals its state.
pub(super) async fn prepare_member(
    config: &RuntimeConfig,
    restore: Option<&str>,
) -> Result<(Option<SharedStore>, RestorePlan), JobError> {
    let job = &config.job;
    let store = match &job.checkpointing {
        Some(c) => Some(storage::open(&c.storage).await?),
        None => None,
    };
    let Some(uri) = restore else { return Ok((store, RestorePlan::default())) };
    let chosen = RuntimeConfig { restore: RestoreMode::From(uri.to_string()), ..config.clone() };
    let (loaded, _) = load_restore_point(&chosen, store.as_ref()).await?;
    let Some(loaded) = loaded else { return Ok((store, RestorePlan::default())) };
    tracing::info!(checkpoint = %loaded.manifest.checkpoint_id, location = %loaded.location, "restoring (as worker 0 chose)");
    restore::check_fit(&loaded, &job.name, &job.pipeline, config.allow_non_restored_state)?;
    Ok((store, restore::assign(&loaded, &job.pipeline)?))
}
