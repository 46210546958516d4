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

/// The `--run-id` of an attempt.
pub fn run_id(job: &str, attempt: u32) -> String {
    format!("{job}-{attempt}")
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

/// Selector of every pod of the job.
pub fn selector(job: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_JOB.to_string(), job.to_string())])
}
