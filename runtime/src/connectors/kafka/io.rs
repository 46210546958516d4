//! Runs the raw-protocol calls (async, on tokio) from the synchronous operator methods of the
//! Kafka connectors, which execute on task threads that already sit inside a runtime.

use std::future::Future;
use std::sync::OnceLock;

/// The one small runtime the connectors' protocol calls run on.
fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("kafka-protocol")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// Runs `fut` to completion on the connectors' runtime and waits for it on this thread.
/// Callable from inside another runtime (it never nests `block_on`).
pub fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T, String> {
    let rt = runtime().ok_or("cannot start the Kafka protocol runtime")?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| "the Kafka protocol call was dropped".to_string())
}

/// The first `host:port` of a bootstrap list (the raw-protocol calls discover the rest).
pub fn first_broker(bootstrap: &str) -> String {
    bootstrap.split(',').next().unwrap_or(bootstrap).trim().to_string()
}

/// [`super::partition_ends`] of `topic`/`partition`, waited for on this thread (from the first
/// broker of `bootstrap`).
pub fn partition_ends_blocking(bootstrap: &str, topic: &str, partition: i32) -> Result<super::PartitionEnds, String> {
    let (bootstrap, topic) = (first_broker(bootstrap), topic.to_owned());
    block_on(async move { super::partition_ends(&bootstrap, &topic, partition).await })?.map_err(|e| e.to_string())
}
