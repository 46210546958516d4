//! Checkpoint storage access: opens the job's object store (list/read/delete), once per
//! reconcile ([`StoreSession`]). It makes no decisions; [`crate::recovery`] does.
//!
//! Backed by `sluice_storage` (with its `s3` feature). A store that cannot be opened fails and
//! the job reports `StorageUnavailable`; one this operator cannot open at all
//! ([`Error::Unsupported`]) is left to the runtime.

use std::path::PathBuf;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use sluice_crds::checkpointing::CheckpointStorage;
use sluice_storage::{self as rstorage, SharedStore};

/// Why checkpoint storage could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the credentials Secret failed.
    #[error("reading storage credentials Secret {secret:?}: {message}")]
    Credentials {
        /// Secret name.
        secret: String,
        /// What went wrong.
        message: String,
    },
    /// Opening the store failed.
    #[error("opening checkpoint storage: {0}")]
    Open(#[source] rstorage::Error),
    /// The storage URI or options describe no store this operator can open (a scheme it was
    /// built without, options it cannot use): the runtime, which may, picks the restore point.
    #[error("this operator cannot open the checkpoint storage: {0}")]
    Unsupported(String),
    /// Listing manifests failed.
    #[error("listing checkpoint manifests: {0}")]
    List(#[source] rstorage::Error),
    /// Reading a manifest failed.
    #[error("reading a checkpoint manifest: {0}")]
    Read(#[source] rstorage::Error),
    /// Checkpoint manifests exist but none reads back intact: only the runtime's restore rule
    /// may decide what happens (it refuses, naming them).
    #[error("{count} checkpoint manifests, none reads back intact (newest: {newest})")]
    Unverified {
        /// Manifests found.
        count: usize,
        /// Why the newest did not read back.
        newest: String,
    },
}

impl Error {
    /// Whether trying again later may help (every storage error is retried by requeueing;
    /// this decides the log level and the condition wording).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Credentials { .. } => true,
            Error::Open(e) | Error::List(e) | Error::Read(e) => e.is_retryable(),
            Error::Unverified { .. } | Error::Unsupported(_) => false,
        }
    }
}

/// Opens the object store a job's checkpointing block names.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// The store for `storage`, with credentials from the job's namespace.
    async fn open(&self, namespace: &str, storage: &CheckpointStorage) -> Result<SharedStore, Error>;
}

/// Opens stores for real: credentials come from the named Secret, written to a private
/// directory the storage backend reads (`credentialsDir`).
pub struct KubeStores {
    client: kube::Client,
    credentials_root: PathBuf,
}

impl KubeStores {
    /// Stores whose credentials are copied under `credentials_root`.
    pub fn new(client: kube::Client, credentials_root: PathBuf) -> Self {
        KubeStores { client, credentials_root }
    }

    async fn credentials_dir(&self, namespace: &str, secret: &str) -> Result<PathBuf, Error> {
        let err = |message: String| Error::Credentials { secret: secret.to_string(), message };
        let s = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get(secret)
            .await
            .map_err(|e| err(e.to_string()))?;
        let data = s.data.unwrap_or_default();
        let dir = self.credentials_root.join(namespace).join(secret);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| err(e.to_string()))?;
        for key in ["accessKeyId", "secretAccessKey"] {
            let value = data.get(key).ok_or_else(|| err(format!("key {key:?} missing")))?;
            tokio::fs::write(dir.join(key), &value.0).await.map_err(|e| err(e.to_string()))?;
        }
        Ok(dir)
    }
}

#[async_trait]
impl StoreFactory for KubeStores {
    async fn open(&self, namespace: &str, storage: &CheckpointStorage) -> Result<SharedStore, Error> {
        let mut spec = storage.to_job_config();
        if let Some(secret) = &storage.credentials_secret {
            spec.credentials_dir = Some(self.credentials_dir(namespace, secret).await?.to_string_lossy().into_owned());
        }
        rstorage::open(&spec).await.map_err(|e| match e {
            // A configuration the storage crate refuses before reaching any server.
            rstorage::Error::Config(m) => Error::Unsupported(m),
            e => Error::Open(e),
        })
    }
}

/// Always returns the same store (tests, and single-store setups).
pub struct FixedStore(pub SharedStore);

#[async_trait]
impl StoreFactory for FixedStore {
    async fn open(&self, _namespace: &str, _storage: &CheckpointStorage) -> Result<SharedStore, Error> {
        Ok(self.0.clone())
    }
}

/// One reconcile's access to a job's checkpoint store: opened on first use and reused after,
/// so observing (restore point, savepoints) and applying (disposals) open storage — and read
/// its credentials Secret — once. A failed open is not remembered: the next use tries again.
pub struct StoreSession<'a> {
    factory: &'a dyn StoreFactory,
    namespace: String,
    opened: tokio::sync::Mutex<Option<(CheckpointStorage, SharedStore)>>,
}

impl<'a> StoreSession<'a> {
    /// A session for stores of jobs in `namespace`.
    pub fn new(factory: &'a dyn StoreFactory, namespace: &str) -> Self {
        StoreSession { factory, namespace: namespace.to_string(), opened: tokio::sync::Mutex::new(None) }
    }

    /// The store `storage` names, opened once per session.
    pub async fn open(&self, storage: &CheckpointStorage) -> Result<SharedStore, Error> {
        let mut opened = self.opened.lock().await;
        if let Some((s, store)) = opened.as_ref()
            && s == storage
        {
            return Ok(store.clone());
        }
        let store = self.factory.open(&self.namespace, storage).await?;
        *opened = Some((storage.clone(), store.clone()));
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sluice_storage::memory::MemoryStore;

    use super::*;

    /// Counts the stores it opens.
    struct Counting(AtomicUsize);

    #[async_trait]
    impl StoreFactory for Counting {
        async fn open(&self, _namespace: &str, _storage: &CheckpointStorage) -> Result<SharedStore, Error> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(MemoryStore::new()))
        }
    }

    fn storage(uri: &str) -> CheckpointStorage {
        CheckpointStorage { uri: uri.into(), endpoint: None, region: None, path_style: None, credentials_secret: None }
    }

    #[tokio::test]
    async fn a_session_opens_a_store_once() {
        let factory = Counting(AtomicUsize::new(0));
        let session = StoreSession::new(&factory, "ns");
        let a = session.open(&storage("s3://b/j")).await.expect("opens");
        let b = session.open(&storage("s3://b/j")).await.expect("opens");
        assert!(Arc::ptr_eq(&a, &b), "the same store");
        assert_eq!(factory.0.load(Ordering::SeqCst), 1);
        session.open(&storage("s3://b/other")).await.expect("opens");
        assert_eq!(factory.0.load(Ordering::SeqCst), 2, "other storage is opened on its own");
        let next = StoreSession::new(&factory, "ns");
        next.open(&storage("s3://b/j")).await.expect("opens");
        assert_eq!(factory.0.load(Ordering::SeqCst), 3, "a new reconcile opens again");
    }
}
