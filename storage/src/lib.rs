//! Where checkpoints live: an object-store interface with create-if-absent writes (local
//! directory, S3 behind the `s3` feature, memory for tests), the job's storage [`layout`] and
//! the reading and publishing of checkpoint [`manifests`].
//!
//! Contract for implementors:
//! - keys are `/`-separated paths relative to the store's root, without a leading `/`;
//! - [`ObjectStore::put`] is atomic: a reader sees the old object, the new one, or none — never a part;
//! - [`ObjectStore::put_if_absent`] is atomic across concurrent writers: of two writers of the same
//!   key exactly one gets [`PutOutcome::Created`];
//! - [`ObjectStore::list`] returns complete objects only (no temp files), sorted by key.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sluice_crds::contract::job_config::StorageSpec;

pub mod layout;
pub mod local;
pub mod manifests;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

/// Result of a create-if-absent write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// This call created the object.
    Created,
    /// An object already existed at the key; nothing was written.
    AlreadyExists,
}

/// An object returned by [`ObjectStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the store root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Failure of a storage operation. [`Error::is_retryable`] says whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No object at the key.
    #[error("{store}: no object at {key:?}")]
    NotFound {
        /// The store, as [`ObjectStore::describe`] names it.
        store: String,
        /// The missing key.
        key: String,
    },
    /// A local file-system operation failed.
    #[error("{store}: {op} {key:?} failed: {source}")]
    Io {
        /// The store.
        store: String,
        /// The operation (`put`, `get`, …).
        op: &'static str,
        /// The key it was about.
        key: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The remote store refused or failed the request.
    #[error("{store}: {op} {key:?} failed: {message}")]
    Backend {
        /// The store.
        store: String,
        /// The operation.
        op: &'static str,
        /// The key it was about.
        key: String,
        /// What the server or client said.
        message: String,
        /// Whether retrying later may succeed (throttling, 5xx, connection errors).
        retryable: bool,
    },
    /// Credentials were rejected: a configuration error, never retried.
    #[error("{store}: authentication failed ({message}); check the access key and secret for this endpoint and bucket")]
    Auth {
        /// The store (endpoint and bucket).
        store: String,
        /// What the server said.
        message: String,
    },
    /// The URI or options do not describe a usable store.
    #[error("storage configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether trying again later — the same operation, or the job from its latest checkpoint —
    /// may succeed. This is the one classification of storage errors: the S3 client's retries,
    /// the operator and the runtime's `ErrorKind` all follow it.
    ///
    /// A missing object, rejected credentials and an unusable configuration are not retryable;
    /// a remote failure is as the backend judged it; a local I/O error as [`io_is_retryable`]
    /// says.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { source, .. } => io_is_retryable(source.kind()),
            Error::Backend { retryable, .. } => *retryable,
            Error::NotFound { .. } | Error::Auth { .. } | Error::Config(_) => false,
        }
    }

    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// Whether a local file-system error may pass on a later attempt.
///
/// Retryable: a full disk or quota (retention, another pod or a person frees space), a device
/// error (`EIO`: the volume may be remounted, or the pod rescheduled onto a healthy one), an
/// interrupted, timed-out or busy call, and any error not named below. Restarting the job from
/// its latest checkpoint is always safe, so an unknown condition gets another attempt.
///
/// Not retryable: the error says the store's path itself is unusable — no permission, a
/// read-only file system, a file where a directory should be (or the reverse), an invalid name,
/// an operation the file system does not support. These fail the same way until a person
/// fixes the volume or the storage URI.
pub fn io_is_retryable(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind as K;
    !matches!(
        kind,
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::NotADirectory
            | K::IsADirectory
            | K::InvalidInput
            | K::InvalidFilename
            | K::Unsupported
    )
}

/// Object storage for checkpoints and savepoints. See the module docs for the contract.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Where this store points, for logs and errors (never contains credentials).
    fn describe(&self) -> String;
    /// Writes an object, replacing any existing one, atomically.
    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), Error>;
    /// Creates an object only if none exists at `key`; atomic across writers.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, Error>;
    /// Reads a whole object.
    async fn get(&self, key: &str) -> Result<Bytes, Error>;
    /// Lists the objects whose keys start with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error>;
    /// Deletes objects; keys that do not exist are ignored.
    async fn delete(&self, keys: &[String]) -> Result<(), Error>;
    /// Removes the remains of writes that never finished (temp files of a local store,
    /// multipart uploads on S3) and provably are no write in flight in this process: those
    /// under the job's layout ([`layout::in_job_layout`]) whatever their age, others only when older
    /// than `older_than`. Returns how many. Stores whose writes leave nothing behind do nothing.
    async fn remove_abandoned_writes(&self, older_than: std::time::Duration) -> Result<usize, Error> {
        let _ = older_than;
        Ok(0)
    }
}

/// A shared handle to a store.
pub type SharedStore = Arc<dyn ObjectStore>;

/// Opens the store a job's checkpointing block names.
pub async fn open(spec: &StorageSpec) -> Result<SharedStore, Error> {
    open_uri(&spec.uri, spec).await
}

#[cfg(feature = "s3")]
async fn open_s3(uri: &str, options: &StorageSpec) -> Result<SharedStore, Error> {
    Ok(Arc::new(s3::S3Store::connect(s3::S3Config::from_spec(uri, options)?).await?))
}

#[cfg(not(feature = "s3"))]
async fn open_s3(uri: &str, options: &StorageSpec) -> Result<SharedStore, Error> {
    let _ = options;
    Err(no_s3(uri))
}

fn no_s3(uri: &str) -> Error {
    Error::Config(format!("{uri}: this build has no S3 support (feature `s3`)"))
}

/// Checks that this build can open `uri` at all (an `s3://` URI needs the `s3` feature), without
/// opening it: what `sluice-runtime validate` asks, and [`open_uri`] asks first.
pub fn check_supported(uri: &str) -> Result<(), Error> {
    if uri.starts_with("s3://") && !cfg!(feature = "s3") {
        return Err(no_s3(uri));
    }
    Ok(())
}

/// Opens a store at `uri`, taking endpoint, region and credentials options from `options`
/// (used for savepoint locations given as full URIs).
pub async fn open_uri(uri: &str, options: &StorageSpec) -> Result<SharedStore, Error> {
    check_supported(uri)?;
    if let Some(path) = uri.strip_prefix("file://") {
        Ok(Arc::new(local::LocalStore::new(path)?))
    } else if uri.starts_with("s3://") {
        open_s3(uri, options).await
    } else if uri.starts_with('/') {
        Ok(Arc::new(local::LocalStore::new(uri)?))
    } else {
        Err(Error::Config(format!("unsupported storage URI {uri:?}: use file:///dir or s3://bucket/prefix")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> Error {
        Error::Io { store: "file:///x".into(), op: "put", key: "k".into(), source: kind.into() }
    }

    /// The decision on local I/O errors: a full or failing disk may pass; a path the process
    /// cannot use as a store does not.
    #[test]
    fn a_full_or_failing_disk_is_retryable_an_unusable_path_is_not() {
        use std::io::ErrorKind as K;
        for kind in [K::StorageFull, K::QuotaExceeded, K::Other, K::Interrupted, K::TimedOut, K::ResourceBusy] {
            assert!(io(kind).is_retryable(), "{kind:?}");
        }
        let eio = Error::Io {
            store: "file:///x".into(),
            op: "put",
            key: "k".into(),
            source: std::io::Error::from_raw_os_error(5),
        };
        assert!(eio.is_retryable(), "EIO");
        for kind in [K::PermissionDenied, K::ReadOnlyFilesystem, K::NotADirectory, K::IsADirectory, K::InvalidInput] {
            assert!(!io(kind).is_retryable(), "{kind:?}");
        }
        assert!(!Error::Config("x".into()).is_retryable());
        assert!(!Error::NotFound { store: "s".into(), key: "k".into() }.is_retryable());
        assert!(!Error::Auth { store: "s".into(), message: "m".into() }.is_retryable());
    }
}
