//! Savepoint triggers and locations: parses the `sluice.dev/savepoint` annotation, decides
//! whether a trigger value is new, names savepoint directories, and maps a savepoint URI to
//! keys of the job's checkpoint store. It never writes status itself.

use sluice_crds::ANNOTATION_SAVEPOINT;
use sluice_crds::contract::manifest::Manifest;
use sluice_crds::savepoints::SavepointsStatus;
use sluice_storage::layout::{self, savepoint_manifest_key, savepoint_uri};
use sluice_storage::{Error as StorageError, ObjectStore};

use crate::build::labels;

/// A trigger the user asked for and the operator has not acted on yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewTrigger {
    /// A new value of the annotation.
    Annotation(String),
    /// A new `spec.savepointTriggerNonce`.
    Nonce(i64),
}

/// The annotation's value, trimmed; an empty value is no trigger.
pub fn annotation_value(annotations: &std::collections::BTreeMap<String, String>) -> Option<String> {
    annotations.get(ANNOTATION_SAVEPOINT).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The triggers whose values differ from the ones last acted on (annotation first). A value
/// triggers once: after it is recorded in status it is no longer new.
pub fn new_triggers(annotation: Option<&str>, nonce: Option<i64>, seen: Option<&SavepointsStatus>) -> Vec<NewTrigger> {
    let mut out = Vec::new();
    if let Some(a) = annotation
        && seen.and_then(|s| s.observed_annotation.as_deref()) != Some(a)
    {
        out.push(NewTrigger::Annotation(a.to_string()));
    }
    if let Some(n) = nonce
        && seen.and_then(|s| s.observed_nonce) != Some(n)
    {
        out.push(NewTrigger::Nonce(n));
    }
    out
}

/// Directory of a triggered savepoint taken at `now_ms` under the job's storage URI, named
/// after the object (`uid`) too, so a recreated job never finds its predecessor's.
pub fn trigger_location(storage_uri: &str, uid: Option<&str>, now_ms: i64) -> String {
    match uid.map(labels::object_id).filter(|u| !u.is_empty()) {
        Some(u) => savepoint_uri(storage_uri, &format!("sp-{u}-{now_ms}")),
        None => savepoint_uri(storage_uri, &format!("sp-{now_ms}")),
    }
}

/// Directory the runtime of run `run_id` writes its stop-with-savepoint to (it names it
/// after its run id, so the operator knows it before asking).
pub fn stop_location(storage_uri: &str, run_id: &str) -> String {
    savepoint_uri(storage_uri, &layout::stop_savepoint_name(run_id))
}

/// The run a stop-with-savepoint directory was named after.
pub use sluice_storage::layout::stopped_run;

/// What storage holds at a savepoint directory the status refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// No `_manifest.json` (yet).
    Absent,
    /// A complete savepoint of this job, written by a run of this object.
    Ours,
    /// A manifest that is not this object's savepoint (another job, or a run of an earlier
    /// object of the same name): never treated as complete, never restored from.
    Foreign(String),
}

/// Checks the savepoint under `prefix`: present, readable, of job `job`, and written by a run
/// of the object with `uid` (for a stop-with-savepoint directory: by exactly the run it is
/// named after). Runtimes that record no run id in the manifest pass on the name and job.
pub async fn identify(
    store: &dyn ObjectStore,
    prefix: &str,
    job: &str,
    uid: Option<&str>,
) -> Result<Found, StorageError> {
    let bytes = match store.get(&savepoint_manifest_key(prefix)).await {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(Found::Absent),
        Err(e) => return Err(e),
    };
    Ok(judge(&bytes, prefix, job, uid))
}

fn judge(bytes: &[u8], prefix: &str, job: &str, uid: Option<&str>) -> Found {
    let manifest = match Manifest::decode(bytes) {
        Ok(m) => m,
        Err(e) => return Found::Foreign(format!("its manifest is unreadable: {e}")),
    };
    if manifest.job != job {
        return Found::Foreign(format!("it is a savepoint of job {:?}, not {job:?}", manifest.job));
    }
    match (manifest.run_id, stopped_run(prefix)) {
        (Some(run), Some(stopped)) if run != stopped => {
            Found::Foreign(format!("it was written by run {run}, not by the stopped run {stopped}"))
        }
        (Some(run), _) if !labels::run_of_object(&run, uid) => {
            Found::Foreign(format!("it was written by run {run} of an earlier object named {job:?}"))
        }
        _ => Found::Ours,
    }
}

/// The store key prefix (no trailing `/`) of a savepoint directory, when it lies under the
/// job's storage URI; `None` for savepoints elsewhere (never disposed of by the operator).
pub use sluice_storage::layout::savepoint_key_prefix as key_prefix;

/// Whether the savepoint under `prefix` is complete (its `_manifest.json` exists).
pub async fn exists(store: &dyn ObjectStore, prefix: &str) -> Result<bool, StorageError> {
    match store.get(&savepoint_manifest_key(prefix)).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes every object of the savepoint under `prefix`, its manifest first: a savepoint without
/// a manifest is never restored from, so a disposal cut short leaves nothing that looks
/// complete. Returns how many objects were deleted.
pub async fn dispose(store: &dyn ObjectStore, prefix: &str) -> Result<usize, StorageError> {
    let manifest = savepoint_manifest_key(prefix);
    store.delete(std::slice::from_ref(&manifest)).await?;
    let keys: Vec<String> = store.list(&format!("{prefix}/")).await?.into_iter().map(|o| o.key).collect();
    store.delete(&keys).await?;
    Ok(keys.len() + 1)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sluice_storage::memory::MemoryStore;

    use super::*;

    #[test]
    fn a_value_triggers_once_and_a_new_value_triggers_again() {
        let none = new_triggers(Some("1"), None, None);
        assert_eq!(none, vec![NewTrigger::Annotation("1".into())]);
        let seen = SavepointsStatus { observed_annotation: Some("1".into()), ..Default::default() };
        assert!(new_triggers(Some("1"), None, Some(&seen)).is_empty());
        assert_eq!(
            new_triggers(Some("2"), Some(4), Some(&seen)),
            vec![NewTrigger::Annotation("2".into()), NewTrigger::Nonce(4)]
        );
        let annotations = [(ANNOTATION_SAVEPOINT.to_string(), "  ".to_string())].into_iter().collect();
        assert_eq!(annotation_value(&annotations), None, "an empty value is no trigger");
    }

    #[test]
    fn only_savepoints_under_the_job_storage_map_to_keys() {
        let root = "s3://bucket/demo/";
        assert_eq!(key_prefix(root, "s3://bucket/demo/savepoints/sp-1").as_deref(), Some("savepoints/sp-1"));
        assert_eq!(key_prefix(root, "s3://bucket/demo/savepoints/sp-1/").as_deref(), Some("savepoints/sp-1"));
        assert_eq!(key_prefix(root, "s3://bucket/other/savepoints/sp-1"), None);
        assert_eq!(key_prefix(root, "s3://bucket/demo/manifests/chk-1.json"), None);
        assert_eq!(key_prefix(root, "s3://bucket/demo/savepoints/"), None);
        assert_eq!(stop_location(root, "demo-3-0f3c9a7e"), "s3://bucket/demo/savepoints/stop-demo-3-0f3c9a7e");
        assert_eq!(stopped_run("s3://b/d/savepoints/stop-demo-3-0f3c9a7e/"), Some("demo-3-0f3c9a7e"));
        assert_eq!(trigger_location(root, Some("0f3c9a7e-11aa"), 5), "s3://bucket/demo/savepoints/sp-0f3c9a7e-5");
    }

    fn encoded(job: &str, run: Option<&str>) -> Bytes {
        let m = Manifest {
            version: sluice_crds::contract::manifest::MANIFEST_VERSION,
            job: job.into(),
            checkpoint_id: sluice_crds::CheckpointId(4),
            kind: sluice_crds::contract::manifest::SnapshotKind::Savepoint,
            triggered_at_ms: 1,
            completed_at_ms: 2,
            max_parallelism: 128,
            tasks: vec![],
            run_id: run.map(str::to_string),
            records: None,
        };
        Bytes::from(m.encode())
    }

    #[tokio::test]
    async fn a_savepoint_is_ours_only_when_written_by_a_run_of_this_object() {
        let uid = Some("0f3c9a7e-11aa-4bcd");
        let store = MemoryStore::new();
        let put = |k: &str, b: Bytes| {
            let k = savepoint_manifest_key(k);
            let store = &store;
            async move { store.put(&k, b).await.expect("put") }
        };
        put("savepoints/stop-demo-1-0f3c9a7e", encoded("demo", Some("demo-1-0f3c9a7e"))).await;
        put("savepoints/stop-demo-2-0f3c9a7e", encoded("demo", Some("demo-1-0f3c9a7e"))).await;
        put("savepoints/sp-old", encoded("demo", Some("demo-1-99999999"))).await;
        put("savepoints/sp-other", encoded("other", None)).await;
        put("savepoints/sp-legacy", encoded("demo", None)).await;
        store.put("savepoints/sp-torn/_manifest.json", Bytes::from_static(b"{")).await.expect("put");
        let id = |p: &'static str| {
            let store = &store;
            async move { identify(store, p, "demo", uid).await.expect("reads") }
        };
        assert_eq!(id("savepoints/stop-demo-1-0f3c9a7e").await, Found::Ours);
        assert_eq!(id("savepoints/stop-demo-3-0f3c9a7e").await, Found::Absent);
        assert_eq!(id("savepoints/sp-legacy").await, Found::Ours, "no run id recorded: name and job decide");
        for foreign in
            ["savepoints/stop-demo-2-0f3c9a7e", "savepoints/sp-old", "savepoints/sp-other", "savepoints/sp-torn"]
        {
            assert!(matches!(id(foreign).await, Found::Foreign(_)), "{foreign}");
        }
    }

    #[tokio::test]
    async fn dispose_removes_every_file_of_one_savepoint_only() {
        let store = MemoryStore::new();
        for key in ["savepoints/sp-1/_manifest.json", "savepoints/sp-1/state/a", "savepoints/sp-10/_manifest.json"] {
            store.put(key, Bytes::from_static(b"x")).await.expect("put");
        }
        assert!(exists(&store, "savepoints/sp-1").await.expect("reads"));
        assert_eq!(dispose(&store, "savepoints/sp-1").await.expect("disposes"), 2);
        assert!(!exists(&store, "savepoints/sp-1").await.expect("reads"));
        assert!(exists(&store, "savepoints/sp-10").await.expect("reads"), "a sibling with a longer name stays");
    }
}
