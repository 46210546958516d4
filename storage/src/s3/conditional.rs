//! Create-if-absent writes: `If-None-Match: *` where the server honours it, a documented
//! best-effort otherwise, and the start-up probe that decides between the two.

use bytes::Bytes;

use super::super::PutOutcome;
use super::{Error, S3Store};

/// Prefix (under the store root) of the keys the probe writes and removes.
pub const PROBE_PREFIX: &str = "_probe/";

/// How [`S3Store`]'s `put_if_absent` makes sure only one writer creates a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionalWrites {
    /// The server answers `If-None-Match: *` on an existing key with 412: atomic across writers.
    Supported,
    /// The server ignores or rejects the header. `put_if_absent` then does HEAD → PUT → GET and
    /// reports `Created` only if the object read back is the one it wrote. This catches most
    /// races but not all: two writers whose PUTs both land before either reads back may both
    /// see their own bytes at different instants. Use a server with conditional writes (MinIO,
    /// AWS S3) in production.
    Unsupported,
}

/// Writes a probe key twice with `If-None-Match: *`: a 412 the second time means support. The
/// probe also proves the credentials and the bucket (auth errors surface here, at start-up).
pub(crate) async fn probe(store: &S3Store) -> Result<ConditionalWrites, Error> {
    let key = format!("{PROBE_PREFIX}{}", uuid::Uuid::new_v4().simple());
    let body = Bytes::from_static(b"sluice conditional-write probe");
    let retry = &store.options().retry;
    let first = retry.run("probe", || store.put_once("probe", &key, body.clone(), true)).await;
    let mode = match first {
        Ok(PutOutcome::Created) => {
            match retry.run("probe", || store.put_once("probe", &key, body.clone(), true)).await? {
                PutOutcome::AlreadyExists => ConditionalWrites::Supported,
                PutOutcome::Created => ConditionalWrites::Unsupported,
            }
        }
        // A fresh random key cannot exist: the server answers 412 to everything.
        Ok(PutOutcome::AlreadyExists) => ConditionalWrites::Unsupported,
        // Rejecting the header (e.g. 501 NotImplemented) while plain writes work: unsupported.
        Err(Error::Backend { retryable: false, message, .. }) => {
            retry.run("probe", || store.put_once("probe", &key, body.clone(), false)).await?;
            tracing::debug!(store = %store.describe, "conditional probe write refused: {message}");
            ConditionalWrites::Unsupported
        }
        Err(e) => return Err(e),
    };
    if let Err(e) = super::delete::delete_batched(store, std::slice::from_ref(&key)).await {
        tracing::warn!(store = %store.describe, key, "could not remove the conditional-write probe object: {e}");
    }
    Ok(mode)
}

/// Creates `key` only if absent, in the mode the probe chose.
pub(crate) async fn put_if_absent(store: &S3Store, key: &str, bytes: Bytes) -> Result<PutOutcome, Error> {
    match store.conditional {
        ConditionalWrites::Supported => conditional_put(store, key, bytes).await,
        ConditionalWrites::Unsupported => best_effort_put(store, key, bytes).await,
    }
}

/// `If-None-Match: *`, retried. If an earlier attempt failed after possibly reaching the server
/// (timeout, lost connection), a later 412 may be our own write: then the object is read back
/// and counts as ours when its bytes are exactly the ones we wrote.
async fn conditional_put(store: &S3Store, key: &str, bytes: Bytes) -> Result<PutOutcome, Error> {
    let mut attempts = 0u32;
    let outcome = store
        .options()
        .retry
        .run("put_if_absent", || {
            attempts += 1;
            store.put_once("put_if_absent", key, bytes.clone(), true)
        })
        .await?;
    // `run` retries only after retryable failures, so more than one attempt means an earlier
    // one may have been written.
    if outcome == PutOutcome::AlreadyExists && attempts > 1 && reads_back_as(store, key, &bytes).await? {
        tracing::info!(store = %store.describe, key, "a retried create-if-absent found its own earlier write");
        return Ok(PutOutcome::Created);
    }
    Ok(outcome)
}

/// HEAD → PUT → GET for servers without conditional writes (see [`ConditionalWrites::Unsupported`]).
async fn best_effort_put(store: &S3Store, key: &str, bytes: Bytes) -> Result<PutOutcome, Error> {
    if store.exists(key).await? {
        return Ok(PutOutcome::AlreadyExists);
    }
    store.options().retry.run("put_if_absent", || store.put_once("put_if_absent", key, bytes.clone(), false)).await?;
    if reads_back_as(store, key, &bytes).await? { Ok(PutOutcome::Created) } else { Ok(PutOutcome::AlreadyExists) }
}

async fn reads_back_as(store: &S3Store, key: &str, bytes: &Bytes) -> Result<bool, Error> {
    match store.options().retry.run("get", || store.get_once(key)).await {
        Ok(found) => Ok(found == *bytes),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
