//! Reading and publishing checkpoint manifests: the listing and reading that decide "the newest
//! manifest that reads back", shared by the runtime's restore and the operator's status.
//!
//! The runtime verifies more on top (every state file, and the fallback rule); the operator
//! reports what [`newest_readable`] finds and leaves the choice of restore point to the runtime.

use bytes::Bytes;
use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::{Manifest, ManifestError};

use crate::{Error, ObjectStore, PutOutcome, layout};

/// Completed checkpoint ids in storage (those with a manifest), ascending.
pub async fn list_ids(store: &dyn ObjectStore) -> Result<Vec<CheckpointId>, Error> {
    let mut ids: Vec<CheckpointId> =
        store.list(layout::MANIFESTS_PREFIX).await?.iter().filter_map(|o| layout::parse_manifest_key(&o.key)).collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The order in which to try restoring: newest completed checkpoint first. A caller falls back
/// to the next one when a manifest or one of its files fails verification.
pub fn latest_restorable(mut ids: Vec<CheckpointId>) -> Vec<CheckpointId> {
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Storage failed (or there is no object at the key).
    #[error(transparent)]
    Storage(#[from] Error),
    /// The object is there but does not decode and verify.
    #[error(transparent)]
    Corrupt(#[from] ManifestError),
}

/// Reads and verifies the manifest at `key` (a checkpoint's or a savepoint's).
pub async fn read(store: &dyn ObjectStore, key: &str) -> Result<Manifest, ReadError> {
    let bytes = store.get(key).await?;
    Ok(Manifest::decode(&bytes)?)
}

/// Publishes `manifest` at its checkpoint key if nothing is there yet (create-if-absent: of two
/// attempts publishing the same id exactly one gets [`PutOutcome::Created`]).
pub async fn publish(store: &dyn ObjectStore, manifest: &Manifest) -> Result<PutOutcome, Error> {
    store.put_if_absent(&layout::manifest_key(manifest.checkpoint_id), Bytes::from(manifest.encode())).await
}

/// One completed checkpoint, with its manifest read back or why it did not read back.
#[derive(Debug)]
pub struct Candidate {
    /// The checkpoint.
    pub id: CheckpointId,
    /// Its manifest's key.
    pub key: String,
    /// The manifest, or why it does not decode and verify.
    pub manifest: Result<Manifest, ManifestError>,
}

/// The completed checkpoints of a store, newest first, each read as it is reached.
#[derive(Debug)]
pub struct Candidates {
    ids: std::vec::IntoIter<CheckpointId>,
    count: usize,
    newest: Option<CheckpointId>,
}

impl Candidates {
    /// Lists the manifests of `store`.
    pub async fn list(store: &dyn ObjectStore) -> Result<Candidates, Error> {
        let ids = latest_restorable(list_ids(store).await?);
        Ok(Candidates { count: ids.len(), newest: ids.first().copied(), ids: ids.into_iter() })
    }

    /// How many manifests the listing found.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The newest id listed.
    pub fn newest(&self) -> Option<CheckpointId> {
        self.newest
    }

    /// Reads the next older candidate; `None` when all were read. A storage failure is returned
    /// as such (the next call goes on with the next older one); a manifest deleted since the
    /// listing is a [`Error::NotFound`].
    pub async fn next(&mut self, store: &dyn ObjectStore) -> Result<Option<Candidate>, Error> {
        let Some(id) = self.ids.next() else { return Ok(None) };
        let key = layout::manifest_key(id);
        let bytes = store.get(&key).await?;
        Ok(Some(Candidate { id, key, manifest: Manifest::decode(&bytes) }))
    }
}

/// What [`newest_readable`] found.
#[derive(Debug)]
pub enum Newest {
    /// No manifest at all: a fresh location.
    Empty,
    /// The newest manifest that reads back.
    Readable(Manifest),
    /// Manifests exist, none reads back: never "no checkpoint".
    Unreadable {
        /// Manifests listed.
        count: usize,
        /// Why the newest did not read back.
        newest: String,
    },
}

/// Why [`newest_readable`] could not look.
#[derive(Debug, thiserror::Error)]
pub enum NewestError {
    /// Listing the manifests failed.
    #[error("listing checkpoint manifests: {0}")]
    List(#[source] Error),
    /// Reading a listed manifest failed (other than its absence).
    #[error("reading a checkpoint manifest: {0}")]
    Read(#[source] Error),
}

/// The newest checkpoint whose manifest reads back, falling back past ones that do not (and
/// past ones deleted by retention between listing and reading).
pub async fn newest_readable(store: &dyn ObjectStore) -> Result<Newest, NewestError> {
    let mut candidates = Candidates::list(store).await.map_err(NewestError::List)?;
    let mut newest_problem: Option<String> = None;
    loop {
        let candidate = match candidates.next(store).await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            // Deleted by retention between list and get: try the next one.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(NewestError::Read(e)),
        };
        match candidate.manifest {
            Ok(m) => return Ok(Newest::Readable(m)),
            Err(e) => {
                tracing::warn!(checkpoint = candidate.id.0, error = %e, "skipping unreadable checkpoint manifest");
                newest_problem.get_or_insert_with(|| format!("checkpoint {}: {e}", candidate.id.0));
            }
        }
    }
    Ok(match newest_problem {
        Some(newest) => Newest::Unreadable { count: candidates.count(), newest },
        None => Newest::Empty,
    })
}

#[cfg(test)]
mod tests {
    use sluice_crds::contract::manifest::{MANIFEST_VERSION, SnapshotKind};

    use super::*;
    use crate::memory::MemoryStore;

    fn manifest(id: u64) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            job: "j".into(),
            checkpoint_id: CheckpointId(id),
            kind: SnapshotKind::Checkpoint,
            triggered_at_ms: 100,
            completed_at_ms: 150,
            max_parallelism: 128,
            tasks: vec![],
            run_id: None,
            records: None,
        }
    }

    #[test]
    fn latest_restorable_orders_newest_first() {
        let order = latest_restorable(vec![CheckpointId(3), CheckpointId(9), CheckpointId(5), CheckpointId(9)]);
        assert_eq!(order, vec![CheckpointId(9), CheckpointId(5), CheckpointId(3)]);
    }

    #[tokio::test]
    async fn publish_is_create_if_absent_and_reads_back() {
        let store = MemoryStore::new();
        assert_eq!(publish(&store, &manifest(4)).await.expect("publish"), PutOutcome::Created);
        let mut other = manifest(4);
        other.job = "other".into();
        assert_eq!(publish(&store, &other).await.expect("publish"), PutOutcome::AlreadyExists);
        let back = read(&store, &layout::manifest_key(CheckpointId(4))).await.expect("reads");
        assert_eq!(back, manifest(4));
        assert!(matches!(read(&store, "manifests/none").await, Err(ReadError::Storage(e)) if e.is_not_found()));
        store.put("manifests/torn", Bytes::from_static(b"{")).await.expect("put");
        assert!(matches!(read(&store, "manifests/torn").await, Err(ReadError::Corrupt(_))));
    }

    #[tokio::test]
    async fn the_newest_manifest_that_reads_back_wins() {
        let store = MemoryStore::new();
        assert!(matches!(newest_readable(&store).await.expect("reads"), Newest::Empty));
        for id in [3, 7] {
            publish(&store, &manifest(id)).await.expect("publish");
        }
        store.put(&layout::manifest_key(CheckpointId(9)), Bytes::from_static(b"{\"torn")).await.expect("put");
        store.put("manifests/not-a-checkpoint.json", Bytes::from_static(b"x")).await.expect("put");
        match newest_readable(&store).await.expect("reads") {
            Newest::Readable(m) => assert_eq!(m.checkpoint_id, CheckpointId(7)),
            other => panic!("expected checkpoint 7, got {other:?}"),
        }
        let mut candidates = Candidates::list(&store).await.expect("lists");
        assert_eq!((candidates.count(), candidates.newest()), (3, Some(CheckpointId(9))));
        let first = candidates.next(&store).await.expect("reads").expect("one");
        assert!(first.manifest.is_err());
        for id in [7, 3] {
            assert_eq!(candidates.next(&store).await.expect("reads").expect("one").id, CheckpointId(id));
        }
        assert!(candidates.next(&store).await.expect("reads").is_none());
    }

    #[tokio::test]
    async fn manifests_of_which_none_reads_back_are_not_an_empty_location() {
        let store = MemoryStore::new();
        for id in [3, 9] {
            store.put(&layout::manifest_key(CheckpointId(id)), Bytes::from_static(b"{\"torn")).await.expect("put");
        }
        match newest_readable(&store).await.expect("reads") {
            Newest::Unreadable { count: 2, newest } => assert!(newest.starts_with("checkpoint 9:"), "{newest}"),
            other => panic!("expected Unreadable, got {other:?}"),
        }
    }
}
