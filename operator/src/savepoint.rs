//! Savepoint triggers and locations: parses the `sluice.dev/savepoint` annotation, decides
//! whether a trigger value is new, names savepoint directories, and maps a savepoint URI to
//! keys of the job's checkpoint store. It never writes status itself.

use sluice_crds::ANNOTATION_SAVEPOINT;
use sluice_crds::contract::manifest::SAVEPOINT_MANIFEST;
use sluice_crds::savepoints::SavepointsStatus;
use sluice_runtime::checkpoint::savepoint::default_location;
use sluice_runtime::storage::ObjectStore;

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

/// Directory of a triggered savepoint taken at `now_ms` under the job's storage URI.
pub fn trigger_location(storage_uri: &str, now_ms: i64) -> String {
    default_location(storage_uri, &format!("sp-{now_ms}"))
}

/// Directory the runtime writes a stop-with-savepoint of `attempt` to (it names it after the
/// run id, so the operator knows it before asking).
pub fn stop_location(storage_uri: &str, job: &str, attempt: u32) -> String {
    default_location(storage_uri, &format!("stop-{}", labels::run_id(job, attempt)))
}

/// The store key prefix (no trailing `/`) of a savepoint directory, when it lies under the
/// job's storage URI; `None` for savepoints elsewhere (never disposed of by the operator).
pub fn key_prefix(storage_uri: &str, path: &str) -> Option<String> {
    let root = format!("{}/", storage_uri.trim_end_matches('/'));
    let rest = path.strip_prefix(&root)?.trim_matches('/');
    (rest.starts_with("savepoints/") && rest.len() > "savepoints/".len() && !rest.contains(".."))
        .then(|| rest.to_string())
}

/// Whether the savepoint under `prefix` is complete (its `_manifest.json` exists).
pub async fn exists(store: &dyn ObjectStore, prefix: &str) -> Result<bool, sluice_runtime::storage::Error> {
    match store.get(&format!("{prefix}/{SAVEPOINT_MANIFEST}")).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes every object of the savepoint under `prefix`, its manifest first: a savepoint without
/// a manifest is never restored from, so a disposal cut short leaves nothing that looks
/// complete. Returns how many objects were deleted.
pub async fn dispose(store: &dyn ObjectStore, prefix: &str) -> Result<usize, sluice_runtime::storage::Error> {
    let manifest = format!("{prefix}/{SAVEPOINT_MANIFEST}");
    store.delete(std::slice::from_ref(&manifest)).await?;
    let keys: Vec<String> = store.list(&format!("{prefix}/")).await?.into_iter().map(|o| o.key).collect();
    store.delete(&keys).await?;
    Ok(keys.len() + 1)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use sluice_runtime::storage::memory::MemoryStore;

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
        assert_eq!(stop_location(root, "demo", 3), "s3://bucket/demo/savepoints/stop-demo-3");
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
