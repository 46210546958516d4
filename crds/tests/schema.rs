//! The StreamJob CRD: the checked-in YAML matches the types, every example is accepted, and
//! every invalid fixture is rejected with its message — by the OpenAPI schema (through the
//! `jsonschema` crate) or by the CEL rules (evaluated with kube's `kube-cel`, built on `cel`).

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use serde_json::Value;
use sluice_crds::StreamJob;
use sluice_crds::contract::validate::validate_pipeline_at;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The CRD's openAPIV3Schema as JSON.
fn openapi_schema() -> Value {
    let crd = StreamJob::crd();
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema");
    serde_json::to_value(schema).expect("schema is JSON")
}

/// Turns the OpenAPI v3 dialect into JSON Schema the way the apiserver reads it: `nullable`
/// admits null, and below `spec` unknown fields are rejected (kubectl's default strict field
/// validation) unless `x-kubernetes-preserve-unknown-fields` says otherwise.
fn to_json_schema(v: &Value, strict: bool) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, val) in map {
                let child_strict = strict || k == "spec";
                let converted = match k.as_str() {
                    "properties" => Value::Object(
                        val.as_object()
                            .expect("properties is a map")
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s, strict || name == "spec")))
                            .collect(),
                    ),
                    _ => to_json_schema(val, child_strict && k != "spec"),
                };
                out.insert(k.clone(), converted);
            }
            if out.get("nullable") == Some(&Value::Bool(true))
                && let Some(t) = out.get("type").cloned()
            {
                out.insert("type".into(), serde_json::json!([t, "null"]));
            }
            let preserve = out.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if strict && out.contains_key("properties") && !preserve && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| to_json_schema(i, strict)).collect()),
        other => other.clone(),
    }
}

/// Every message the schema and the CEL rules produce for `object`, as `path: message`.
fn rejections(object: &Value) -> Vec<String> {
    let openapi = openapi_schema();
    let json_schema = to_json_schema(&openapi, false);
    let validator = jsonschema::validator_for(&json_schema).expect("schema compiles");
    let mut out: Vec<String> = validator.iter_errors(object).map(|e| format!("{}: {}", e.instance_path(), e)).collect();
    if let Err(errors) = kube::core::cel::Validator::new().validate_with_defaults(&openapi, object, None) {
        out.extend(errors.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)));
    }
    out
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("valid YAML");
            serde_json::to_value(v).expect("YAML maps to JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn checked_in_crd_matches_the_types() {
    let checked_in = std::fs::read_to_string(repo_root().join("crds/streamjob.yaml")).expect("crds/streamjob.yaml");
    assert!(
        checked_in == sluice_crds::stream_job::crd_yaml(),
        "crds/streamjob.yaml is stale: run `cargo run -p sluice-crds --bin crdgen > crds/streamjob.yaml`"
    );
}

#[test]
fn every_example_streamjob_parses_and_validates() {
    let mut seen = 0;
    for file in yaml_files(&repo_root().join("manifests/examples")) {
        for doc in yaml_docs(&file) {
            if doc["kind"] != "StreamJob" {
                continue;
            }
            seen += 1;
            let problems = rejections(&doc);
            assert!(problems.is_empty(), "{}: {problems:#?}", file.display());
            let job: StreamJob = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if let Err(e) = validate_pipeline_at(&job.spec.pipeline, "spec.pipeline") {
                panic!("{}: {e}", file.display());
            }
        }
    }
    assert!(seen >= 2, "expected the StreamJob examples in manifests/examples, found {seen}");
}

#[test]
fn every_invalid_fixture_is_rejected_with_its_message() {
    let files = yaml_files(&repo_root().join("crds/tests/fixtures/invalid"));
    assert!(files.len() >= 15, "invalid fixtures missing");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let expected = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: first line must be `# expect: <message>`", file.display()));
        let doc = yaml_docs(&file).pop().expect("one document");
        let problems = rejections(&doc);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{}: expected a rejection containing {expected:?}, got {problems:#?}",
            file.display()
        );
    }
}

#[test]
fn a_rule_that_does_not_hold_is_reported_with_the_field_path() {
    let mut doc = windowed_counts();
    doc["spec"]["checkpointing"]["storage"]["uri"] = Value::String("ftp://x".into());
    doc["spec"]["checkpointing"]["storage"].as_object_mut().expect("map").remove("credentialsSecret");
    let problems = rejections(&doc);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].starts_with("spec.checkpointing.storage: "), "{problems:#?}");
}

/// The CEL messages of an update from `old` to `new` (transition rules see `oldSelf`).
fn update_rejections(old: &Value, new: &Value) -> Vec<String> {
    match kube::core::cel::Validator::new().validate_with_defaults(&openapi_schema(), new, Some(old)) {
        Ok(()) => vec![],
        Err(errors) => errors.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect(),
    }
}

fn windowed_counts() -> Value {
    yaml_docs(&repo_root().join("manifests/examples/streamjob-windowed-counts.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "StreamJob")
        .expect("the example has a StreamJob")
}

#[test]
fn changing_the_storage_uri_is_refused_unless_the_same_update_names_the_state_to_restore() {
    let old = windowed_counts();
    let mut moved = old.clone();
    moved["spec"]["checkpointing"]["storage"]["uri"] = Value::String("s3://sluice-checkpoints/elsewhere".into());
    let problems = update_rejections(&old, &moved);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("spec.checkpointing.storage.uri cannot change"), "{problems:#?}");
    assert!(rejections(&moved).is_empty(), "a new job may use any storage: {:#?}", rejections(&moved));

    let mut carried = moved.clone();
    carried["spec"]["initialSavepointPath"] =
        Value::String("s3://sluice-checkpoints/windowed-counts/manifests/chk-00000000000000000009.json".into());
    assert!(update_rejections(&old, &carried).is_empty(), "{:#?}", update_rejections(&old, &carried));

    // The same restore path as before is no decision about the new storage.
    let mut old_with_path = old.clone();
    old_with_path["spec"]["initialSavepointPath"] = carried["spec"]["initialSavepointPath"].clone();
    assert_eq!(update_rejections(&old_with_path, &carried).len(), 1);

    let mut other_change = old.clone();
    other_change["spec"]["parallelism"] = Value::from(1);
    assert!(update_rejections(&old, &other_change).is_empty(), "other updates pass");
}

#[test]
fn the_longest_accepted_name_still_gives_valid_pod_hostnames() {
    use sluice_crds::stream_job::MAX_NAME_LEN;
    let longest_suffix = format!("-{}-{}", u32::MAX, 999_999);
    assert!(MAX_NAME_LEN + longest_suffix.len() <= 63, "pod hostnames are DNS labels of at most 63 characters");
    let mut job = windowed_counts();
    job["metadata"]["name"] = Value::String(format!("w{}", "x".repeat(MAX_NAME_LEN - 1)));
    assert!(rejections(&job).is_empty(), "{:#?}", rejections(&job));
    job["metadata"]["name"] = Value::String(format!("w{}", "x".repeat(MAX_NAME_LEN)));
    let problems = rejections(&job);
    assert!(problems.iter().any(|p| p.contains(&format!("at most {MAX_NAME_LEN} characters"))), "{problems:#?}");
}

#[test]
fn workers_are_bounded_by_max_workers_in_the_schema() {
    use sluice_crds::workers::MAX_WORKERS;
    let mut job = windowed_counts();
    job["spec"]["workers"] = Value::from(MAX_WORKERS);
    assert!(rejections(&job).is_empty(), "{:#?}", rejections(&job));
    job["spec"]["workers"] = Value::from(MAX_WORKERS + 1);
    let problems = rejections(&job);
    assert!(problems.iter().any(|p| p.contains(&format!("maximum of {MAX_WORKERS}"))), "{problems:#?}");
    job["spec"]["workers"] = Value::from(0);
    assert!(!rejections(&job).is_empty(), "at least one worker");
}
