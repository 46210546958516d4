//! The storage layout of a job: every key Sluice writes or reads under a job's storage root is
//! built (and, where it is read back, parsed) here and nowhere else.
//!
//! ```text
//! manifests/chk-<id:020>.json                  one per completed checkpoint, create-if-absent;
//!                                              also the start-up claim (`checkpoint::claim`)
//! state/chk-<id>/<node>-<subtask>-<run>.state  keyed-state files (shared by later incremental
//!                                              checkpoints)
//! savepoints/<name>/_manifest.json             a savepoint's manifest; its state files beside
//!                                              it under the same relative paths (`state/…`)
//! savepoints/stop-<run>/                       the stop-with-savepoint of run <run>
//! sinks/completed-through.json                 the completion note
//! sinks/<node>/<file>                          a sink's recovery notes
//! ```
//!
//! A local store writes through temp files `.sluice-tmp-<writer>-<unique>` next to their target.
//! Storage URIs (`file:///dir`, `s3://bucket/prefix`) name a root; a manifest's URI is the root
//! plus its key.

use sluice_crds::CheckpointId;

/// Directory of checkpoint manifests.
pub const MANIFESTS_PREFIX: &str = "manifests/";
/// Directory of keyed-state files.
pub const STATE_PREFIX: &str = "state/";
/// Directory of savepoints (each in its own directory).
pub const SAVEPOINTS_PREFIX: &str = "savepoints/";
/// Directory of sink notes and the completion note.
pub const SINKS_PREFIX: &str = "sinks/";
/// File name of a savepoint's manifest inside its directory.
pub const SAVEPOINT_MANIFEST: &str = "_manifest.json";
/// Key of the completion note (see the runtime's `checkpoint::completed`). Under `sinks/`, so
/// a location that has the note but no manifest counts as one whose sinks may have committed.
pub const COMPLETION_NOTE: &str = "sinks/completed-through.json";
/// Name prefix of a local store's temp files; listings never return them.
pub const TEMP_PREFIX: &str = ".sluice-tmp-";
/// Name prefix of a stop-with-savepoint directory (followed by the run id).
const STOP_PREFIX: &str = "stop-";
/// Name prefix of a checkpoint's manifest file and state directory.
const CHECKPOINT_PREFIX: &str = "chk-";

/// The top-level directories of a job's layout.
const JOB_PREFIXES: [&str; 4] = [MANIFESTS_PREFIX, STATE_PREFIX, SAVEPOINTS_PREFIX, SINKS_PREFIX];

/// Whether `key` lies under one of the top-level directories of a job's storage layout
/// (`manifests/`, `state/`, `savepoints/`, `sinks/`): where a sweep may remove another writer's
/// unfinished write at any age, because only attempts of this job write there.
pub fn in_job_layout(key: &str) -> bool {
    JOB_PREFIXES.iter().any(|d| key.starts_with(d))
}

/// Key of the manifest of checkpoint `id`. The id is zero-padded, so keys sort by id.
pub fn manifest_key(id: CheckpointId) -> String {
    format!("{MANIFESTS_PREFIX}{CHECKPOINT_PREFIX}{:020}.json", id.0)
}

/// The checkpoint id of a manifest key (or of its file name); `None` for any other key.
pub fn parse_manifest_key(key: &str) -> Option<CheckpointId> {
    let name = key.rsplit('/').next()?;
    let digits = name.strip_prefix(CHECKPOINT_PREFIX)?.strip_suffix(".json")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(CheckpointId)
}

/// Key of the keyed-state file one subtask of `node` wrote for `checkpoint` in run `run_id`.
pub fn state_key(checkpoint: CheckpointId, node: &str, subtask: u32, run_id: &str) -> String {
    format!("{}{node}-{subtask}-{run_id}.state", checkpoint_state_prefix(checkpoint))
}

/// Prefix of every state file of one checkpoint.
pub fn checkpoint_state_prefix(checkpoint: CheckpointId) -> String {
    format!("{STATE_PREFIX}{CHECKPOINT_PREFIX}{}/", checkpoint.0)
}

/// The checkpoint a key under `state/` was written for; `None` for keys outside `state/chk-N/`.
pub fn parse_state_key(key: &str) -> Option<CheckpointId> {
    let rest = key.strip_prefix(STATE_PREFIX)?.strip_prefix(CHECKPOINT_PREFIX)?;
    let (digits, _) = rest.split_once('/')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(CheckpointId)
}

/// Key of the sink note `file` of sink node `node`.
pub fn sink_note_key(node: &str, file: &str) -> String {
    format!("{SINKS_PREFIX}{node}/{file}")
}

/// The node and file name of a sink note key; `None` for other keys (the completion note too).
pub fn parse_sink_note_key(key: &str) -> Option<(&str, &str)> {
    let (node, file) = key.strip_prefix(SINKS_PREFIX)?.split_once('/')?;
    (!node.is_empty() && !file.is_empty() && !file.contains('/')).then_some((node, file))
}

/// Key prefix (no trailing `/`) of savepoint `name` under the job's root.
pub fn savepoint_dir(name: &str) -> String {
    format!("{SAVEPOINTS_PREFIX}{name}")
}

/// Key of the manifest of the savepoint in directory `dir` (a key prefix; empty for a store
/// opened at the savepoint itself).
pub fn savepoint_manifest_key(dir: &str) -> String {
    match dir.trim_end_matches('/') {
        "" => SAVEPOINT_MANIFEST.to_string(),
        d => format!("{d}/{SAVEPOINT_MANIFEST}"),
    }
}

/// Whether `key` is the manifest of a savepoint directory under `savepoints/`.
pub fn is_savepoint_manifest(key: &str) -> bool {
    key.starts_with(SAVEPOINTS_PREFIX) && key.ends_with(&format!("/{SAVEPOINT_MANIFEST}"))
}

/// Name of the savepoint directory a stop-with-savepoint of run `run_id` writes.
pub fn stop_savepoint_name(run_id: &str) -> String {
    format!("{STOP_PREFIX}{run_id}")
}

/// The run a stop-with-savepoint directory (a name, key prefix or URI) was named after.
pub fn stopped_run(path: &str) -> Option<&str> {
    path.trim_end_matches('/').rsplit('/').next()?.strip_prefix(STOP_PREFIX)
}

/// URI of `key` under the storage root URI `root`.
pub fn uri(root: &str, key: &str) -> String {
    format!("{}/{key}", root.trim_end_matches('/'))
}

/// URI of checkpoint `id`'s manifest under a storage root URI (what `--restore` takes).
pub fn manifest_uri(root: &str, id: CheckpointId) -> String {
    uri(root, &manifest_key(id))
}

/// URI of savepoint `name`'s directory under a job's storage root URI (the default location).
pub fn savepoint_uri(root: &str, name: &str) -> String {
    uri(root, &savepoint_dir(name))
}

/// The key prefix (no trailing `/`) of a savepoint directory given by URI, when it lies under
/// the job's storage root URI `root`; `None` for savepoints elsewhere, paths that are no
/// savepoint directory, and any path containing `..` (never disposed of by the operator).
pub fn savepoint_key_prefix(root: &str, path: &str) -> Option<String> {
    let root = format!("{}/", root.trim_end_matches('/'));
    let rest = path.strip_prefix(&root)?.trim_matches('/');
    (rest.starts_with(SAVEPOINTS_PREFIX) && rest.len() > SAVEPOINTS_PREFIX.len() && !rest.contains(".."))
        .then(|| rest.to_string())
}

/// What a `--restore <uri>` names: a checkpoint manifest in a job's root, or a savepoint
/// directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreTarget {
    /// The root URI to open the store at.
    pub root: String,
    /// The manifest's key in that store.
    pub key: String,
}

impl RestoreTarget {
    /// Parses a restore URI: `<root>/manifests/<file>` is a checkpoint of the job at `<root>`;
    /// anything else is a savepoint directory holding `_manifest.json`.
    pub fn parse(uri: &str) -> RestoreTarget {
        match uri.rsplit_once(&format!("/{MANIFESTS_PREFIX}")) {
            Some((root, name)) => RestoreTarget { root: root.to_string(), key: format!("{MANIFESTS_PREFIX}{name}") },
            None => RestoreTarget { root: uri.trim_end_matches('/').to_string(), key: SAVEPOINT_MANIFEST.to_string() },
        }
    }

    /// Whether it is a checkpoint of the job whose storage root URI is `storage_root`.
    pub fn is_checkpoint_of(&self, storage_root: &str) -> bool {
        self.key.starts_with(MANIFESTS_PREFIX) && storage_root.trim_end_matches('/') == self.root.trim_end_matches('/')
    }
}

/// Name of a temp file written by `writer` (a per-process token without `-`), made unique by
/// `unique`.
pub fn temp_file_name(writer: &str, unique: &str) -> String {
    format!("{TEMP_PREFIX}{writer}-{unique}")
}

/// Whether the file `name` is a temp file.
pub fn is_temp_file(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// Whether the file `name` is a temp file written by `writer`.
pub fn is_temp_file_of(name: &str, writer: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX).and_then(|rest| rest.strip_prefix(writer)).is_some_and(|rest| rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Node ids, run ids, savepoint names as the operator and runtime make them (no `/`, and
    /// no `..`: [`savepoint_key_prefix`] refuses any path containing it).
    fn name() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9_-]{0,20}"
    }

    fn root() -> impl Strategy<Value = String> {
        prop_oneof![
            "s3://[a-z]{3,8}(/[a-z0-9-]{1,8}){0,3}/?",
            "file:///[a-z]{1,8}(/[a-z0-9-]{1,8}){0,3}/?",
            "/[a-z]{1,8}(/[a-z0-9-]{1,8}){0,2}",
        ]
    }

    proptest! {
        #[test]
        fn manifest_keys_round_trip_and_sort_by_id(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(parse_manifest_key(&manifest_key(CheckpointId(a))), Some(CheckpointId(a)));
            prop_assert_eq!(manifest_key(CheckpointId(a)) < manifest_key(CheckpointId(b)), a < b);
            prop_assert!(in_job_layout(&manifest_key(CheckpointId(a))));
            prop_assert_eq!(parse_state_key(&manifest_key(CheckpointId(a))), None);
        }

        #[test]
        fn state_keys_round_trip(id in any::<u64>(), node in name(), subtask in any::<u32>(), run in name()) {
            let key = state_key(CheckpointId(id), &node, subtask, &run);
            prop_assert_eq!(parse_state_key(&key), Some(CheckpointId(id)));
            prop_assert!(key.starts_with(&checkpoint_state_prefix(CheckpointId(id))));
            prop_assert_eq!(parse_manifest_key(&key), None);
            prop_assert!(in_job_layout(&key));
        }

        #[test]
        fn sink_note_keys_round_trip(node in name(), file in name()) {
            let key = sink_note_key(&node, &file);
            prop_assert_eq!(parse_sink_note_key(&key), Some((node.as_str(), file.as_str())));
            prop_assert!(in_job_layout(&key));
        }

        #[test]
        fn savepoint_locations_round_trip(root in root(), run in name(), name in name()) {
            let stop = savepoint_uri(&root, &stop_savepoint_name(&run));
            prop_assert_eq!(stopped_run(&stop), Some(run.as_str()));
            let with_slash = format!("{stop}/");
            prop_assert_eq!(stopped_run(&with_slash), Some(run.as_str()));
            prop_assert_eq!(savepoint_key_prefix(&root, &stop), Some(savepoint_dir(&stop_savepoint_name(&run))));
            let dir = savepoint_key_prefix(&root, &savepoint_uri(&root, &name));
            prop_assert_eq!(dir, Some(savepoint_dir(&name)));
            let manifest = savepoint_manifest_key(&savepoint_dir(&name));
            prop_assert!(is_savepoint_manifest(&manifest));
            prop_assert!(in_job_layout(&manifest));
            // A savepoint restored by URI: the store opens at the directory, the manifest inside.
            let target = RestoreTarget::parse(&savepoint_uri(&root, &name));
            prop_assert_eq!(target.key, savepoint_manifest_key(""));
            prop_assert_eq!(target.root, savepoint_uri(&root, &name));
        }

        #[test]
        fn manifest_uris_round_trip(root in root(), id in any::<u64>()) {
            let target = RestoreTarget::parse(&manifest_uri(&root, CheckpointId(id)));
            prop_assert_eq!(&target.key, &manifest_key(CheckpointId(id)));
            prop_assert_eq!(&target.root, root.trim_end_matches('/'));
            prop_assert!(target.is_checkpoint_of(&root));
            let other_root = format!("{root}x");
            prop_assert!(!target.is_checkpoint_of(&other_root));
            prop_assert_eq!(parse_manifest_key(&target.key), Some(CheckpointId(id)));
        }

        #[test]
        fn temp_files_name_their_writer(writer in "[0-9a-f]{12}", other in "[0-9a-f]{12}", unique in "[0-9a-f]{1,32}") {
            let file = temp_file_name(&writer, &unique);
            prop_assert!(is_temp_file(&file));
            prop_assert!(is_temp_file_of(&file, &writer));
            prop_assert_eq!(is_temp_file_of(&file, &other), other == writer);
        }
    }

    #[test]
    fn the_layout_as_written_down() {
        assert_eq!(manifest_key(CheckpointId(7)), "manifests/chk-00000000000000000007.json");
        assert_eq!(state_key(CheckpointId(7), "sum", 1, "r"), "state/chk-7/sum-1-r.state");
        assert_eq!(sink_note_key("out", "x.json"), "sinks/out/x.json");
        assert_eq!(savepoint_uri("s3://b/job/", "stop-r1"), "s3://b/job/savepoints/stop-r1");
        assert_eq!(savepoint_manifest_key("savepoints/sp-1/"), "savepoints/sp-1/_manifest.json");
        assert_eq!(manifest_uri("s3://b/job/", CheckpointId(7)), "s3://b/job/manifests/chk-00000000000000000007.json");
        assert_eq!(temp_file_name("abc", "1"), ".sluice-tmp-abc-1");
    }

    #[test]
    fn keys_outside_the_layout_do_not_parse() {
        assert_eq!(parse_manifest_key("manifests/chk-12.json"), None);
        assert_eq!(parse_manifest_key("manifests/chk-0000000000000000001x.json"), None);
        assert_eq!(parse_manifest_key("manifests/chk-+0000000000000000001.json"), None);
        assert_eq!(parse_state_key("state/chk-/x"), None);
        assert_eq!(parse_state_key("state/chk-3"), None);
        assert_eq!(parse_state_key("savepoints/sp/state/chk-3/x"), None);
        assert_eq!(parse_sink_note_key(COMPLETION_NOTE), None);
        assert_eq!(stopped_run("s3://b/j/savepoints/sp-1"), None);
        assert!(!in_job_layout("other-tool/x"));
        assert!(!is_savepoint_manifest("savepoints/_manifest.jsonx"));
        assert!(!is_temp_file_of(".sluice-tmp-abcdef", "abc"), "a longer writer token is another writer");
        let root = "s3://bucket/demo/";
        assert_eq!(savepoint_key_prefix(root, "s3://bucket/other/savepoints/sp-1"), None);
        assert_eq!(savepoint_key_prefix(root, "s3://bucket/demo/manifests/chk-1.json"), None);
        assert_eq!(savepoint_key_prefix(root, "s3://bucket/demo/savepoints/"), None);
        assert_eq!(savepoint_key_prefix(root, "s3://bucket/demo/savepoints/../state"), None);
    }
}
