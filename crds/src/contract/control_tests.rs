//! Wire-format tests of the control contract.

use super::*;

#[test]
fn a_data_loss_kind_survives_the_termination_message() {
    for kind in [DataLossKind::UncommittableTransaction, DataLossKind::RestoreRefused] {
        assert_eq!(DataLossKind::of_message(&kind.termination_message("checkpoint 7 (x)")), kind);
    }
    assert_eq!(DataLossKind::of_message("DataLossRisk: t of 9"), DataLossKind::UncommittableTransaction);
    assert_eq!(DataLossKind::of_message("DataLossRisk(Else): x"), DataLossKind::UncommittableTransaction);
}

#[test]
fn job_status_wire_format_is_camel_case_with_version() {
    let s = JobStatus {
        version: CONTROL_VERSION,
        run_id: "demo-2".into(),
        state: JobState::Running,
        restored_from: None,
        latest: Some(CheckpointInfo {
            id: CheckpointId(4),
            path: "s3://b/demo/manifests/chk-00000000000000000004.json".into(),
            completed_at_ms: 1,
            size_bytes: 2,
            duration_ms: 3,
        }),
        in_progress: Some(CheckpointId(5)),
        completed: 4,
        failed: 0,
        consecutive_failures: 0,
        last_failure: None,
    };
    let v = serde_json::to_value(&s).expect("serializes");
    assert_eq!(v["version"], 1);
    assert_eq!(v["runId"], "demo-2");
    assert_eq!(v["state"], "running");
    assert_eq!(v["latest"]["completedAtMs"], 1);
    assert_eq!(v["inProgress"], 5);
    assert_eq!(serde_json::from_value::<JobStatus>(v).expect("parses back"), s);
}

#[test]
fn requests_default_their_version() {
    let r: StopRequest = serde_json::from_str(r#"{"savepoint": true}"#).expect("parses");
    assert_eq!(r, StopRequest { version: CONTROL_VERSION, savepoint: true });
    assert_eq!(savepoint_path("sp-1"), "/v1/savepoints/sp-1");
}

#[test]
fn request_bodies_refuse_unknown_fields_naming_them() {
    let e = serde_json::from_str::<StopRequest>(r#"{"savepont": true}"#).expect_err("typo refused");
    assert!(e.to_string().contains("unknown field `savepont`"), "{e}");
    let e = serde_json::from_str::<SavepointRequest>(r#"{"path": "file:///x"}"#).expect_err("refused");
    assert!(e.to_string().contains("unknown field `path`"), "{e}");
    let ok: SavepointRequest = serde_json::from_str(r#"{"version": 1, "location": "file:///x"}"#).expect("ok");
    assert_eq!(ok.location.as_deref(), Some("file:///x"));
}

#[test]
fn history_wire_format() {
    let h = History {
        version: CONTROL_VERSION,
        run_id: "r".into(),
        checkpoints: vec![CheckpointRecord {
            id: CheckpointId(3),
            kind: CheckpointKind::StopSavepoint,
            status: CheckpointOutcome::InProgress,
            triggered_at_ms: 5,
            duration_ms: None,
            size_bytes: None,
            location: None,
            error: None,
        }],
        savepoints: vec![SavepointRecord {
            id: "sp-r-1".into(),
            state: SavepointState::Pending,
            location: None,
            error: None,
            requested_at_ms: 6,
            duration_ms: None,
        }],
    };
    let v = serde_json::to_value(&h).expect("serializes");
    assert_eq!(
        v,
        serde_json::json!({"version": 1, "runId": "r",
            "checkpoints": [{"id": 3, "kind": "stopSavepoint", "status": "inProgress", "triggeredAtMs": 5}],
            "savepoints": [{"id": "sp-r-1", "state": "pending", "requestedAtMs": 6}]})
    );
    assert_eq!(serde_json::from_value::<History>(v).expect("parses back"), h);
}

#[test]
fn stop_documents_name_the_kind() {
    let r = StopResponse { version: CONTROL_VERSION, stopped: StopKind::Cancel, savepoint: None };
    assert_eq!(serde_json::to_value(&r).expect("serializes"), serde_json::json!({"version": 1, "stopped": "cancel"}));
    let old: StopResponse = serde_json::from_str(r#"{"savepoint": "file:///sp"}"#).expect("parses");
    assert_eq!(old.stopped, StopKind::Savepoint, "a response without the field is a savepoint stop");
    let e = ErrorResponse { version: 1, error: "busy".into(), stop_in_progress: Some(StopKind::Savepoint) };
    assert_eq!(serde_json::to_value(&e).expect("serializes")["stopInProgress"], "savepoint");
}
