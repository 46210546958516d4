//! `logs`: the log of the current attempt's runtime pods, found by the labels the operator puts
//! on them (`sluice.dev/job`, `sluice.dev/attempt`), several pods merged line by line.

use std::io::Write;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, Client};
use sluice_crds::{LABEL_ATTEMPT, LABEL_JOB, Phase};

use crate::Error;
use crate::cli::LogsArgs;
use crate::job::Jobs;

/// The container `logs` reads by default: the runtime container of the operator's pods.
pub const RUNTIME_CONTAINER: &str = sluice_crds::CONTAINER_RUNTIME;

/// The label selector of the runtime pods of `attempt` of job `name`.
pub fn selector(name: &str, attempt: u32) -> String {
    format!("{LABEL_JOB}={name},{LABEL_ATTEMPT}={attempt}")
}

/// The runtime pods of one attempt: names (sorted) and whether each has started (is past
/// `Pending`, so it has a log to read).
struct AttemptPods {
    attempt: u32,
    names: Vec<String>,
    started: bool,
}

/// The runtime pods of the current attempt of job `name`, or why there are none.
async fn current_pods(client: Client, jobs: &Jobs, name: &str) -> Result<AttemptPods, Error> {
    let job = jobs.get(name).await?;
    let status = job.status.unwrap_or_default();
    let none = || Error::NoPods {
        name: name.into(),
        namespace: jobs.namespace().into(),
        attempt: status.attempt,
        phase: status.phase.as_str().into(),
    };
    if status.attempt == 0 {
        return Err(none());
    }
    let pods = pods_of(client, jobs, name, status.attempt).await?;
    if pods.names.is_empty() {
        return Err(none());
    }
    Ok(pods)
}

async fn pods_of(client: Client, jobs: &Jobs, name: &str, attempt: u32) -> Result<AttemptPods, Error> {
    let pods: Api<Pod> = Api::namespaced(client, jobs.namespace());
    let list =
        pods.list(&ListParams::default().labels(&selector(name, attempt))).await.map_err(|source| Error::Api {
            step: "listing the pods of",
            name: name.into(),
            namespace: jobs.namespace().into(),
            source: Box::new(source),
        })?;
    let started = list
        .items
        .iter()
        .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|phase| phase != "Pending"));
    let mut names: Vec<String> = list.items.into_iter().filter_map(|p| p.metadata.name).collect();
    names.sort();
    Ok(AttemptPods { attempt, names, started })
}

/// `kubectl sluice logs JOB [-f] [-c CONTAINER] [--tail N] [-p] [--prefix]`: streams each pod's
/// log; with several pods, lines are interleaved as they arrive and prefixed `[pod] `. With
/// `-f` it follows the job, not the pods: when an attempt's pods end and the operator starts
/// another (a restart after a failure, an upgrade), it says so and follows the new attempt's
/// pods from their first line, until the job is Finished, Failed or Suspended, or is deleted.
pub async fn stream(client: Client, jobs: &Jobs, args: &LogsArgs, out: &mut impl Write) -> Result<(), Error> {
    let mut pods = current_pods(client.clone(), jobs, &args.job).await?;
    let mut tail = args.tail;
    loop {
        stream_pods(client.clone(), jobs, args, &pods.names, tail, out).await?;
        if !args.follow {
            return Ok(());
        }
        match next_attempt(client.clone(), jobs, &args.job, pods.attempt, *args.poll_interval, out).await? {
            Some(next) => pods = next,
            None => return Ok(()),
        }
        tail = None;
    }
}

/// Waits for the attempt after `after` and for its pods to start; `None` when the job ended
/// (or is gone) instead, said on `out`.
async fn next_attempt(
    client: Client,
    jobs: &Jobs,
    name: &str,
    after: u32,
    poll: std::time::Duration,
    out: &mut impl Write,
) -> Result<Option<AttemptPods>, Error> {
    let mut announced = false;
    loop {
        let job = match jobs.get(name).await {
            Err(Error::NotFound { .. }) => {
                writeln!(out, "--- streamjob {name} was deleted")?;
                return Ok(None);
            }
            other => other?,
        };
        let status = job.status.unwrap_or_default();
        if status.attempt > after {
            let pods = pods_of(client.clone(), jobs, name, status.attempt).await?;
            if !announced {
                let why = status.error.as_deref().map(|e| format!(" after: {e}")).unwrap_or_default();
                writeln!(out, "--- attempt {} of streamjob {name} ({}){why}", status.attempt, status.phase.as_str())?;
                out.flush()?;
                announced = true;
            }
            if !pods.names.is_empty() && pods.started {
                return Ok(Some(pods));
            }
        } else if matches!(status.phase, Phase::Finished | Phase::Failed | Phase::Suspended) {
            writeln!(out, "--- streamjob {name} is {}", status.phase.as_str())?;
            return Ok(None);
        }
        tokio::time::sleep(poll).await;
    }
}

/// Streams the logs of `names` until they end, merged line by line.
async fn stream_pods(
    client: Client,
    jobs: &Jobs,
    args: &LogsArgs,
    names: &[String],
    tail: Option<i64>,
    out: &mut impl Write,
) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(client, jobs.namespace());
    let params = LogParams {
        container: Some(args.container.clone()),
        follow: args.follow,
        tail_lines: tail,
        previous: args.previous,
        ..LogParams::default()
    };
    let prefix = args.prefix || names.len() > 1;
    let mut streams = Vec::new();
    for pod in names {
        let reader =
            pods.log_stream(pod, &params).await.map_err(|e| Error::Logs { pod: pod.clone(), source: Box::new(e) })?;
        let pod = pod.clone();
        let lines = reader.lines().map(move |line| match line {
            Ok(l) => Ok((pod.clone(), l)),
            Err(e) => Err(Error::Logs { pod: pod.clone(), source: Box::new(e) }),
        });
        streams.push(lines.boxed());
    }
    let mut merged = futures::stream::select_all(streams);
    while let Some((pod, line)) = merged.try_next().await? {
        if prefix {
            writeln!(out, "[{pod}] {line}")?;
        } else {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    Ok(())
}
