//! Names and labels of the job's child objects.

use std::collections::BTreeMap;

use sluice_crds::{LABEL_ATTEMPT, LABEL_JOB};

/// Name of the pod `index` of `attempt`.
pub fn pod_name(job: &str, attempt: u32, index: u32) -> String {
    format!("{job}-{attempt}-{index}")
}

/// Name of the ConfigMap holding the job document.
pub fn config_map_name(job: &str) -> String {
    format!("{job}-config")
}

/// Name of the headless Service (the pods' DNS subdomain).
pub fn service_name(job: &str) -> String {
    job.to_string()
}

/// The `--run-id` of an attempt: `<job>-<attempt>-<object>`, where `<object>` is the first 8
/// hex digits of the StreamJob's `metadata.uid`. A job deleted and recreated under the same name
/// counts attempts from 1 again but gets a new uid, so no run id (and no `stop-<run id>`
/// savepoint directory, no state file, no sink file named after it) is ever reused by
/// another object. Within one object the attempt number is the per-launch id: an attempt is
/// stopped at most once.
pub fn run_id(job: &str, attempt: u32, uid: Option<&str>) -> String {
    match uid.map(object_id).filter(|u| !u.is_empty()) {
        Some(u) => format!("{job}-{attempt}-{u}"),
        None => format!("{job}-{attempt}"),
    }
}

/// The short object id of a `metadata.uid` that run ids end with.
pub fn object_id(uid: &str) -> String {
    uid.chars().filter(char::is_ascii_alphanumeric).take(8).collect::<String>().to_ascii_lowercase()
}

/// Labels every child object carries.
pub fn common(job: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "sluice-runtime".to_string()),
        ("app.kubernetes.io/instance".to_string(), job.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "sluice-operator".to_string()),
        (LABEL_JOB.to_string(), job.to_string()),
    ])
}

/// Labels of a pod of `attempt`.
pub fn pod(job: &str, attempt: u32) -> BTreeMap<String, String> {
    let mut l = common(job);
    l.insert(LABEL_ATTEMPT.to_string(), attempt.to_string());
    l
}

/// Whether `run_id` is a run of the object with `uid` (its run ids end with its object id).
pub fn run_of_object(run_id: &str, uid: Option<&str>) -> bool {
    match uid.map(object_id).filter(|u| !u.is_empty()) {
        Some(u) => run_id.ends_with(&format!("-{u}")),
        None => true,
    }
}

/// Selector of every pod of the job.
pub fn selector(job: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_JOB.to_string(), job.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_differ_between_objects_of_the_same_name() {
        let a = run_id("demo", 1, Some("0f3c9a7e-11aa-4bcd-9e00-5a5a5a5a5a5a"));
        let b = run_id("demo", 1, Some("7d21be04-22bb-4bcd-9e00-5a5a5a5a5a5a"));
        assert_eq!(a, "demo-1-0f3c9a7e");
        assert_ne!(a, b, "a recreated job gets new run ids");
        assert!(run_of_object(&a, Some("0f3c9a7e-11aa-4bcd-9e00-5a5a5a5a5a5a")));
        assert!(!run_of_object(&a, Some("7d21be04-22bb-4bcd-9e00-5a5a5a5a5a5a")));
        assert!(!run_of_object("demo-1", Some("7d21be04-22bb")), "a run id without object id is foreign");
        assert_eq!(run_id("demo", 2, None), "demo-2");
    }
}
