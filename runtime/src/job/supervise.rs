//! A running job's supervision: wait for its tasks and its checkpoint driver, name the first
//! real cause of a failure, and hand back a cancel's reply once every task has ended.

use std::time::Duration;

use sluice_crds::JobConfig;
use tokio::task::JoinSet;

use super::JobError;
use crate::checkpoint::CheckpointError;
use crate::checkpoint::coordinator::CoordinatorConfig;
use crate::checkpoint::driver::{Driver, DriverExit, StopReply};
use crate::engine::task::TaskError;

/// How a run's tasks and driver ended.
pub(super) struct Ending {
    /// The run's result.
    pub result: Result<(), JobError>,
    /// A stop without savepoint that ended the run: to be answered once the run is wrapped up.
    pub cancel: Option<StopReply>,
}

/// The coordinator's settings for `job` (checkpoints off: no interval, no timeout to speak of).
pub(super) fn coordinator_config(job: &JobConfig) -> CoordinatorConfig {
    match &job.checkpointing {
        Some(c) => CoordinatorConfig {
            interval_ms: Some(c.interval.as_millis() as u64),
            timeout_ms: c.timeout.as_millis() as u64,
            min_pause_ms: c.min_pause.as_millis() as u64,
            max_concurrent: c.max_concurrent as usize,
            tolerable_failures: c.tolerable_failures,
        },
        None => CoordinatorConfig {
            interval_ms: None,
            timeout_ms: u64::MAX / 4,
            min_pause_ms: 0,
            max_concurrent: 1,
            tolerable_failures: 0,
        },
    }
}

/// Runs the driver beside the tasks until every task ended (or one failed, or the driver
/// stopped the job).
pub(super) async fn supervise(mut tasks: JoinSet<Result<(), TaskError>>, driver: Driver) -> Ending {
    let mut driver = tokio::spawn(driver.run());
    let mut driver_done = false;
    let mut cancel = None;
    let result = loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    let cause = first_cause_task(e, &mut tasks).await;
                    // A task that lost its coordinator reports the coordinator's reason instead.
                    if matches!(cause, TaskError::Coordinator { .. }) && !driver_done {
                        driver_done = true;
                        if let Ok(Ok(Err(reason))) = tokio::time::timeout(Duration::from_secs(5), &mut driver).await {
                            break Err(CheckpointError::from(reason).into());
                        }
                    }
                    break Err(cause.into());
                }
                Some(Err(source)) => break Err(CheckpointError::Panicked { what: "task", source }.into()),
            },
            r = &mut driver, if !driver_done => {
                driver_done = true;
                match r {
                    Ok(Ok(DriverExit::Done)) => {}
                    // Every task has ended on the cancel: their results still count.
                    Ok(Ok(DriverExit::Cancel(reply))) => cancel = Some(reply),
                    Ok(Err(reason)) => break Err(CheckpointError::from(reason).into()),
                    Err(source) => break Err(CheckpointError::Panicked { what: "coordinator", source }.into()),
                }
            }
        }
    };
    tasks.abort_all();
    if result.is_ok() && !driver_done {
        // Every task finished: let the coordinator finish savepoint copies (bounded wait).
        match tokio::time::timeout(Duration::from_secs(60), &mut driver).await {
            Ok(Ok(Ok(DriverExit::Cancel(reply)))) => cancel = Some(reply),
            Ok(_) => {}
            Err(_) => tracing::warn!("coordinator did not finish within 60 s after the tasks"),
        }
    }
    driver.abort();
    Ending { result, cancel }
}

/// The first failure among `first` and the tasks that fail within 2 s of it that is not a
/// symptom of another (`first` when there is none).
pub(super) async fn first_cause_task(first: TaskError, tasks: &mut JoinSet<Result<(), TaskError>>) -> TaskError {
    if !first.is_symptom() {
        return first;
    }
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            j = tasks.join_next() => match j {
                Some(Ok(Err(e))) if !e.is_symptom() => return e,
                Some(_) => {}
                None => return first,
            },
            _ = &mut deadline => return first,
        }
    }
}
