//! Wiring: the kube-runtime `Controller` over StreamJobs (read through `DeserializeGuard`, so
//! one unreadable object never stops the others) and the pods, ConfigMaps and Services they
//! own; `reconcile` (observe → plan → apply → status) behind the finalizer; `error_policy`.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod, Service};
use kube::ResourceExt;
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta, error_boundary::InvalidObject};
use kube::runtime::controller::{Action, Controller, Error as ControllerError};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::de::DeserializeOwned;
use sluice_crds::conditions::Reason;
use sluice_crds::{FINALIZER, LABEL_JOB, StreamJob};

use crate::context::Context;
use crate::error::Error;
use crate::health::Health;
use crate::reconcile::{absorb, apply, observe, plan, status};

/// Reconciles one StreamJob.
pub async fn reconcile(job: Arc<StreamJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let ns = job.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<StreamJob> = Api::namespaced(ctx.client.clone(), &ns);
    let key = format!("{ns}/{}", job.name_any());
    let job = match fresh(job, &api, &ctx).await {
        Ok(Some(job)) => job,
        Ok(None) => return Ok(Action::await_change()),
        Err(e) => {
            tracing::warn!(job = %key, error = %e, "reconcile failed");
            return Err(e);
        }
    };
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

/// The object to plan from: the watched copy when it is the version this operator last wrote
/// (or nothing was written and it carries no version), else a consistent read from the API
/// server — a watch cache that lags behind a status write would replan a step already taken
/// (a second savepoint trigger, a status older than the one written). `None`: it is gone.
async fn fresh(job: Arc<StreamJob>, api: &Api<StreamJob>, ctx: &Context) -> Result<Option<Arc<StreamJob>>, Error> {
    if job.resource_version() == ctx.last_written(&status::key(&job)) {
        return Ok(Some(job));
    }
    let name = job.name_any();
    match api.get_opt(&name).await {
        Ok(found) => Ok(found.map(Arc::new)),
        Err(source) => Err(Error::ReadJob { job: name, source }),
    }
}

async fn reconcile_job(job: &StreamJob, ctx: &Context) -> Result<Action, Error> {
    let (plan, _) = reconcile_once(job, ctx).await?;
    Ok(Action::requeue(plan.requeue_after))
}

/// observe → plan → apply → absorb the answers → write status → record Events.
async fn reconcile_once(job: &StreamJob, ctx: &Context) -> Result<(plan::Plan, usize), Error> {
    let previous = job.status.clone().unwrap_or_default();
    // Rolled back: every step sees the last stable spec until the spec changes again.
    let rolled_back =
        crate::reconcile::rollback::effective_spec(&previous, &crate::build::spec_hash(&job.spec)).map(|spec| {
            let mut j = job.clone();
            j.spec = spec;
            j
        });
    let job = rolled_back.as_ref().unwrap_or(job);
    // Storage is opened at most once per reconcile, shared by observe and apply.
    let stores = crate::store::StoreSession::new(ctx.stores.as_ref(), &job.namespace().unwrap_or_default());
    let observed = observe::observe(job, ctx, &stores).await?;
    let now = jiff::Timestamp::now();
    let mut plan = plan::plan(&job.spec, &previous, &observed, now);
    if !plan.actions.is_empty() {
        tracing::info!(job = %job.name_any(), actions = ?plan.actions, phase = plan.status.phase.as_str(), "applying plan");
    }
    let outcomes = apply::apply(job, &plan.actions, &observed.desired_hash, ctx, &stores).await?;
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
    if plan.cleanup_done {
        ctx.set_written(&status::key(job), None);
        Ok(Action::await_change())
    } else {
        Err(Error::PodsTerminating(pods))
    }
}

/// Reconciles one StreamJob as the watch delivered it: a readable object as [`reconcile`]
/// does; one the operator cannot deserialize (a `podTemplate` with type errors, a field this
/// build does not know) gets a Warning Event saying why and is left alone — it never stops the
/// reconciliation of the others.
pub async fn reconcile_guarded(obj: Arc<DeserializeGuard<StreamJob>>, ctx: Arc<Context>) -> Result<Action, Error> {
    match &obj.0 {
        Ok(job) => reconcile(Arc::new(job.clone()), ctx).await,
        Err(invalid) => {
            report_unreadable(invalid, &ctx).await;
            Ok(Action::requeue(UNREADABLE_RECHECK))
        }
    }
}

/// How often an unreadable StreamJob is reported again (an edit that fixes it triggers at once).
pub const UNREADABLE_RECHECK: std::time::Duration = std::time::Duration::from_secs(300);

async fn report_unreadable(invalid: &InvalidObject, ctx: &Context) {
    let name = invalid.metadata.name.clone().unwrap_or_default();
    let ns = invalid.metadata.namespace.clone().unwrap_or_default();
    let message = format!(
        "the operator cannot read this StreamJob, so it is neither reconciled nor cleaned up until fixed \
         (its pods are left as they are): {}",
        invalid.error
    );
    tracing::warn!(job = %format!("{ns}/{name}"), error = %invalid.error, "cannot deserialize StreamJob");
    ctx.metrics.observe_error("unreadable_object");
    let reference = ObjectReference {
        api_version: Some(format!("{}/{}", sluice_crds::GROUP, sluice_crds::VERSION)),
        kind: Some("StreamJob".into()),
        name: Some(name),
        namespace: Some(ns),
        uid: invalid.metadata.uid.clone(),
        resource_version: invalid.metadata.resource_version.clone(),
        ..ObjectReference::default()
    };
    let note = plan::Note { warning: true, reason: Reason::UnreadableObject, message };
    status::publish(&reference, &note, ctx).await;
}

/// Requeue delay after a failed reconcile.
pub fn error_policy(_job: Arc<DeserializeGuard<StreamJob>>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.observe_error(error.metric_label());
    Action::requeue(error.requeue_after())
}

/// Runs the controller until shutdown. Every watch (StreamJobs and the pods, ConfigMaps and
/// Services they own) reports its errors at warn and its health to [`Context::health`].
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let ns = ctx.config.watch_namespace.clone();
    // Children are watched as metadata only (`PartialObjectMeta`): less memory, same triggers.
    let (jobs, pods, cms, svcs) = match &ns {
        Some(ns) => (
            Api::<DeserializeGuard<StreamJob>>::namespaced(client.clone(), ns),
            Api::<PartialObjectMeta<Pod>>::namespaced(client.clone(), ns),
            Api::<PartialObjectMeta<ConfigMap>>::namespaced(client.clone(), ns),
            Api::<PartialObjectMeta<Service>>::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone()), Api::all(client.clone()), Api::all(client)),
    };
    let health = ctx.health.clone();
    let (reader, writer) = reflector::store();
    let job_stream = watcher(jobs, watcher::Config::default())
        .map(watched("streamjobs", health.clone()))
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let owned = watcher::Config::default().labels(LABEL_JOB);
    Controller::for_stream(job_stream, reader)
        // Runtime pods have no owner reference (see `build::pod`): their label names the job.
        .watches_stream(child("pods", pods, &owned, &health), |pod| {
            let ns = pod.namespace();
            pod.labels().get(LABEL_JOB).map(|job| ObjectRef::new(job).within(ns.as_deref().unwrap_or_default()))
        })
        .owns_stream(child("configmaps", cms, &owned, &health))
        .owns_stream(child("services", svcs, &owned, &health))
        .shutdown_on_signal()
        .run(reconcile_guarded, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                // Already logged at warn by the watch that failed.
                Err(ControllerError::QueueError(e)) => tracing::debug!(error = %e, "watch error"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
                Ok(_) => {}
            }
        })
        .await;
}

/// The watch of one kind of child object (metadata only), reporting its health as `name`.
fn child<M>(
    name: &'static str,
    api: Api<M>,
    config: &watcher::Config,
    health: &Arc<Health>,
) -> impl futures::Stream<Item = Result<M, watcher::Error>> + Send + 'static
where
    M: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    watcher(api, config.clone()).map(watched(name, health.clone())).default_backoff().touched_objects()
}

/// Logs a watch's errors at warn and records its health. `Init` (a list about to start) says
/// nothing yet; any event after it means listing or watching works.
fn watched<K>(
    name: &'static str,
    health: Arc<Health>,
) -> impl FnMut(Result<watcher::Event<K>, watcher::Error>) -> Result<watcher::Event<K>, watcher::Error> {
    move |event| {
        match &event {
            Ok(watcher::Event::Init) => {}
            Ok(_) => health.watch_ok(name),
            Err(e) => {
                tracing::warn!(watch = name, error = %e, "watch failed; retrying with backoff");
                health.watch_failed(name, &e.to_string());
            }
        }
        event
    }
}
