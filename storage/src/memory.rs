//! An in-memory store for protocol tests. Not for production: it forgets everything on exit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Error, ObjectMeta, ObjectStore, PutOutcome};

/// A map from key to bytes behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bytes>> {
        // A poisoned lock only means another test thread panicked; the map itself is intact.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn describe(&self) -> String {
        "memory://".to_string()
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        self.objects().insert(key.to_string(), bytes);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, Error> {
        let mut objects = self.objects();
        if objects.contains_key(key) {
            return Ok(PutOutcome::AlreadyExists);
        }
        objects.insert(key.to_string(), bytes);
        Ok(PutOutcome::Created)
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        self.objects().get(key).cloned().ok_or_else(|| Error::NotFound { store: self.describe(), key: key.to_string() })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta { key: k.clone(), size: v.len() as u64 })
            .collect())
    }

    async fn delete(&self, keys: &[String]) -> Result<(), Error> {
        let mut objects = self.objects();
        for key in keys {
            objects.remove(key);
        }
        Ok(())
    }
}
