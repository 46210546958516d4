//! Wiring: the kube-runtime `Controller` over StreamJobs and the pods, ConfigMaps and Services
//! they own; `reconcile` (observe → plan → apply → status) behind the finalizer; `error_policy`.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use sluice_crds::{FINALIZER, LABEL_JOB, StreamJob};

use crate::context::Context;
use crate::error::Error;
use crate::reconcile::{absorb, apply, observe, plan, status};

/// Reconciles one StreamJob.
pub async fn reconcile(job: Arc<StreamJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = job.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<StreamJob> = Api::namespaced(ctx.client.clone(), &ns);
    let key = format!("{ns}/{}", job.name_any());
    let result = finalizer(&api, FINALIZER, job, |event| async {
        match event {
            Finalizer::Apply(job) => reconcile_job(&job, &ctx).await,
            Finalizer::Cleanup(job) => cleanup(&job, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(inner) | kube::runtime::finalizer::Error::CleanupFailed(inner) => {
            inner
        }
        other => Error::Finalizer(Box::new(other)),
    });
    ctx.metrics.observe_reconcile(started.elapsed());
    if let Err(e) = &result {
        tracing::warn!(job = %key, error = %e, "reconcile failed");
    }
    result
}

async fn reconcile_job(job: &StreamJob, ctx: &Context) -> Result<Action, Error> {
    let (plan, _) = reconcile_once(job, ctx).await?;
    Ok(Action::requeue(plan.requeue_after))
}

/// observe → plan → apply → absorb the answers → write status → record Events.
async fn reconcile_once(job: &StreamJob, ctx: &Context) -> Result<(plan::Plan, usize), Error> {
    let observed = observe::observe(job, ctx).await?;
    let previous = job.status.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let mut plan = plan::plan(&job.spec, &previous, &observed, now);
    if !plan.actions.is_empty() {
        tracing::info!(job = %job.name_any(), actions = ?plan.actions, phase = plan.status.phase.as_str(), "applying plan");
    }
    let outcomes = apply::apply(job, &plan.actions, &observed.desired_hash, ctx).await?;
    absorb::absorb(&mut plan, outcomes, now);
    let next = status::next_status(&previous, &plan, now);
    if !plan.cleanup_done {
        // A job whose finalizer goes next needs no further status.
        status::write(job, &previous, &next, ctx).await?;
    }
    status::record_events(job, &plan, ctx).await;
    for action in &plan.actions {
        if matches!(action, plan::Action::Launch { .. }) && next.restarts > previous.restarts {
            ctx.metrics.restarts.inc();
        }
    }
    let key = format!("{}/{}", job.namespace().unwrap_or_default(), job.name_any());
    ctx.metrics.set_phase(&key, (!observed.deleting).then_some(next.phase));
    Ok((plan, observed.pods.len()))
}

/// Deletion: a final savepoint when `savepointOnDeletion` (default true) and the job runs,
/// then every pod of the job goes; the finalizer stays until they are gone, so no runtime of
/// a deleted job can still commit. Status records each step, as in any other flow.
async fn cleanup(job: &StreamJob, ctx: &Context) -> Result<Action, Error> {
    let (plan, pods) = reconcile_once(job, ctx).await?;
    if plan.cleanup_done { Ok(Action::await_change()) } else { Err(Error::PodsTerminating(pods)) }
}

/// Requeue delay after a failed reconcile.
pub fn error_policy(_job: Arc<StreamJob>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.observe_error(error.metric_label());
    Action::requeue(error.requeue_after())
}

/// Runs the controller until shutdown.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let (jobs, pods, cms, svcs) = match &ctx.config.watch_namespace {
        Some(ns) => (
            Api::<StreamJob>::namespaced(client.clone(), ns),
            Api::<Pod>::namespaced(client.clone(), ns),
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()), Api::all(client)),
    };
    let owned = watcher::Config::default().labels(LABEL_JOB);
    Controller::new(jobs, watcher::Config::default())
        .owns(pods, owned.clone())
        .owns(cms, owned.clone())
        .owns(svcs, owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
}
