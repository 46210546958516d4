//! Runs the raw-protocol calls (async, on tokio) from the synchronous operator methods of the
//! Kafka connectors. Those methods execute on task threads that sit inside their own
//! single-threaded runtime, so a call is handed to the job's I/O runtime (the one that uploads
//! snapshots: `OpContext::io`, as `TaskEnv::io`) and waited for on the task thread. Without
//! one (tools, tests) a call runs on a runtime of its own on a thread of its own.

use std::future::Future;

use tokio::runtime::Handle;

use super::Error;

/// Runs `fut` to completion on `io` (or, with `None`, on a runtime of its own) and waits for
/// it on this thread. Callable from inside another runtime (it never nests `block_on`), but
/// not from one of `io`'s own worker threads.
pub fn block_on<T: Send + 'static>(
    io: Option<&Handle>,
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, Error> {
    match io {
        Some(io) => {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            io.spawn(async move {
                let _ = tx.send(fut.await);
            });
            // The runtime drops the call when it shuts down (the job is ending).
            rx.recv().map_err(|_| Error::NotRun { reason: "the job's I/O runtime dropped it".into() })
        }
        None => std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Error::NotRun { reason: format!("cannot start a runtime for it: {e}") })?;
                Ok(rt.block_on(fut))
            })
            .join()
            .unwrap_or_else(|_| Err(Error::NotRun { reason: "it panicked".into() }))
        }),
    }
}

/// [`super::partition_ends`] of `topic`/`partition` in `cluster`, run on `io` (see [`block_on`])
/// and waited for on this thread.
pub fn partition_ends_blocking(
    io: Option<&Handle>,
    cluster: &super::security::Cluster,
    topic: &str,
    partition: i32,
) -> Result<super::PartitionEnds, Error> {
    let (cluster, topic) = (cluster.clone(), topic.to_owned());
    block_on(io, async move { super::partition_ends(&cluster, &topic, partition).await })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_runs_on_the_given_runtime_from_a_thread_inside_another_one() {
        let io = tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("io").build().expect("io");
        let task = tokio::runtime::Builder::new_current_thread().build().expect("task runtime");
        let handle = io.handle().clone();
        // As a task thread does: inside its own runtime, blocking on the I/O runtime's answer.
        let ran_on = task.block_on(async move {
            block_on(Some(&handle), async { std::thread::current().name().map(str::to_owned) }).expect("ran")
        });
        assert_eq!(ran_on.as_deref(), Some("io"));
        let apart = task.block_on(async { block_on(None, async { 7 }) }).expect("ran apart");
        assert_eq!(apart, 7);
    }

    #[test]
    fn a_call_the_runtime_drops_is_an_error_not_a_hang() {
        let io = tokio::runtime::Builder::new_current_thread().build().expect("io");
        let handle = io.handle().clone();
        drop(io);
        let err = block_on(Some(&handle), async { 1 }).expect_err("the runtime is gone");
        assert!(matches!(err, Error::NotRun { .. }) && err.is_retryable(), "{err}");
    }
}
