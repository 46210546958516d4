//! What a failure means for the run. Every error type on the checkpoint, sink and control paths
//! says its [`ErrorKind`] (a `kind()` method), and the kind alone decides what happens next:
//!
//! | kind | exit status | then |
//! |---|---|---|
//! | [`ErrorKind::Retryable`] | 1 | the operator restarts the job from its latest checkpoint |
//! | [`ErrorKind::BadInput`] | 1 | the same, but it fails again until a person fixes the input |
//! | [`ErrorKind::DataLossRisk`] | [`EXIT_DATA_LOSS`] (3) | the operator stops and waits for a person |

use sluice_crds::contract::control::EXIT_DATA_LOSS;

use crate::storage;

/// What kind of failure an error is, and so whether a new attempt can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transient or internal (a broker or store unreachable, a checkpoint that failed, a
    /// value that would not serialise): nothing committed is at stake, and a new attempt —
    /// restarting from the latest checkpoint — may succeed.
    Retryable,
    /// The job document, an input record or the state being restored is wrong: a new attempt
    /// as is fails the same way; a person must fix the input.
    BadInput,
    /// Going on may lose or duplicate committed output (a completed checkpoint's transaction
    /// cannot be committed, or restore would replay committed output): the run stops for a
    /// person to decide.
    DataLossRisk,
}

impl ErrorKind {
    /// The process exit status for a run that failed with this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::DataLossRisk => EXIT_DATA_LOSS,
            ErrorKind::Retryable | ErrorKind::BadInput => 1,
        }
    }

    /// Whether a new attempt, unchanged, may succeed.
    pub fn is_retryable(self) -> bool {
        self == ErrorKind::Retryable
    }
}

/// The kind of a checkpoint-storage error. The storage crate alone decides whether one may pass
/// ([`storage::Error::is_retryable`]: a missing object, rejected credentials, an unusable URI or
/// path, or a request the store refuses for good may not); what cannot pass is bad input.
pub fn storage_kind(e: &storage::Error) -> ErrorKind {
    if e.is_retryable() { ErrorKind::Retryable } else { ErrorKind::BadInput }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::restore::RestoreError;
    use crate::checkpoint::{CheckpointError, JobFailure};
    use crate::engine::message::TaskId;
    use crate::engine::task::TaskError;
    use crate::job::JobError;
    use crate::ops::OpError;
    use sluice_crds::CheckpointId;
    use sluice_crds::contract::control::DataLossKind;

    fn in_task(source: OpError) -> JobError {
        JobError::Task(TaskError::Op { task: TaskId { chain: 0, subtask: 0 }, source })
    }

    fn commit_failed() -> OpError {
        OpError::Commit { node: "out".into(), checkpoint: 7, message: "the broker aborted it".into() }
    }

    #[test]
    fn a_run_stops_for_a_person_only_on_an_uncommittable_transaction_or_a_refused_restore() {
        use DataLossKind::{RestoreRefused, UncommittableTransaction};
        use ErrorKind::{BadInput, DataLossRisk, Retryable};
        let refused = RestoreError::FallbackRefused {
            newest: CheckpointId(9),
            fallback: CheckpointId(8),
            sinks: "out".into(),
            reason: "crc".into(),
        };
        let corrupt = RestoreError::Corrupt { key: "manifests/9".into(), reason: "crc".into() };
        let serialise = OpError::Serialize { node: "out".into(), what: "a committable", message: "keys".into() };
        let malformed = OpError::Malformed { node: "in".into(), location: "0:1".into(), message: "json".into() };
        let too_many = JobFailure::TooManyFailures {
            failures: 3,
            tolerable: 2,
            checkpoint: CheckpointId(4),
            reason: "storage down".into(),
        };
        let cases: Vec<(JobError, ErrorKind, Option<DataLossKind>)> = vec![
            (in_task(commit_failed()), DataLossRisk, Some(UncommittableTransaction)),
            (
                JobError::SinkRecovery { node: "out".into(), source: commit_failed() },
                DataLossRisk,
                Some(UncommittableTransaction),
            ),
            (JobError::Restore(refused), DataLossRisk, Some(RestoreRefused)),
            (JobError::Restore(corrupt), BadInput, None),
            (in_task(serialise), Retryable, None),
            (in_task(malformed), BadInput, None),
            (JobError::Checkpointing(CheckpointError::Coordinator(too_many)), Retryable, None),
            (JobError::Storage(storage::Error::Config("s4://x".into())), BadInput, None),
        ];
        for (err, kind, data_loss) in cases {
            assert_eq!(err.kind(), kind, "{err}");
            assert_eq!(err.data_loss_kind(), data_loss, "{err}");
            assert_eq!(err.is_data_loss(), kind == DataLossRisk, "{err}");
            assert_eq!(kind.exit_code(), if kind == DataLossRisk { 3 } else { 1 }, "{err}");
        }
    }

    #[test]
    fn a_node_without_a_single_operator_is_a_configuration_error_not_a_restore_error() {
        use sluice_crds::contract::pipeline::{ErrorPolicy, Node};
        let node: Node = serde_json::from_value(serde_json::json!({"id": "x"})).expect("node");
        let ctx = crate::ops::OpContext {
            node: "x".into(),
            subtask: 0,
            parallelism: 1,
            max_parallelism: 128,
            key_groups: crate::graph::KeyGroupRange { start: 0, end: 127 },
            run_id: "r".into(),
            job: "job".into(),
            checkpointing: true,
            max_concurrent_checkpoints: 1,
            io: None,
        };
        let faults = crate::fault::Faults::none();
        let Err(err) =
            crate::nodes::instantiate(&node, &crate::ops::reads::Reads::Whole, ctx, ErrorPolicy::Fail, &faults)
        else {
            panic!("a node with no operator must not build")
        };
        assert!(matches!(err, OpError::Config { .. }), "{err}");
        assert!(!err.to_string().contains("restore"), "{err}");
        assert_eq!(JobError::Config(err).kind(), ErrorKind::BadInput);
    }

    /// The sink's recovery checks `transactionTimeout` against the checkpoint cycle (the broker
    /// at port 1 answers nothing: only the cycle is checked).
    #[cfg(feature = "kafka")]
    #[tokio::test]
    async fn a_transaction_timeout_the_checkpoint_cycle_outlives_is_a_configuration_error() {
        use crate::connectors::two_phase::RecoveryContext;
        let yaml = r#"
name: t
checkpointing: {interval: 10s, timeout: 10s, storage: {uri: "file:///tmp/unused"}}
pipeline:
  nodes:
    - {id: in, generator: {count: 1}}
    - {id: out, kafkaSink: {bootstrapServers: "127.0.0.1:1", topic: t, transactionTimeout: 5m}}
  edges:
    - {from: in, to: out}
"#;
        let job = sluice_crds::JobConfig::from_yaml(yaml).expect("valid");
        let mut spec = job.pipeline.nodes[1].kafka_sink.clone().expect("kafka sink");
        spec.transaction_timeout = std::time::Duration::from_secs(1);
        let recovery = crate::connectors::kafka::recovery::for_sink("out", &spec, &job).expect("exactly-once");
        let faults = crate::fault::Faults::none();
        let ctx = RecoveryContext { store: None, checkpoint: None, parallelism: 1, faults: &faults };
        let err = recovery.recover(&ctx, &[]).await.expect_err("the timeout is too short");
        assert!(err.to_string().contains("kafkaSink.transactionTimeout"), "{err}");
        assert!(matches!(err, OpError::Config { .. }), "{err}");
        assert_eq!(JobError::SinkRecovery { node: "out".into(), source: err }.kind(), ErrorKind::BadInput);
    }

    #[test]
    fn only_a_data_loss_risk_exits_with_the_data_loss_status() {
        assert_eq!(ErrorKind::DataLossRisk.exit_code(), 3);
        assert_eq!(ErrorKind::Retryable.exit_code(), 1);
        assert_eq!(ErrorKind::BadInput.exit_code(), 1);
        assert!(ErrorKind::Retryable.is_retryable());
        assert!(!ErrorKind::BadInput.is_retryable() && !ErrorKind::DataLossRisk.is_retryable());
    }

    #[test]
    fn storage_errors_are_bad_input_only_when_retrying_cannot_help() {
        let backend = |retryable| storage::Error::Backend {
            store: "s3://b".into(),
            op: "get",
            key: "k".into(),
            message: "m".into(),
            retryable,
        };
        assert_eq!(storage_kind(&backend(true)), ErrorKind::Retryable);
        assert_eq!(storage_kind(&backend(false)), ErrorKind::BadInput);
        assert_eq!(storage_kind(&storage::Error::Config("x".into())), ErrorKind::BadInput);
        let io = storage::Error::Io {
            store: "file:///x".into(),
            op: "put",
            key: "k".into(),
            source: std::io::Error::other("disk"),
        };
        assert_eq!(storage_kind(&io), ErrorKind::Retryable);
    }

    /// One classification: the run restarts on a storage error exactly when the storage crate
    /// says trying again may help, for every variant and the local I/O kinds that differ.
    #[test]
    fn the_run_retries_a_storage_error_exactly_when_the_storage_crate_says_it_may_pass() {
        use std::io::ErrorKind as K;
        let io =
            |kind: K| storage::Error::Io { store: "file:///x".into(), op: "put", key: "k".into(), source: kind.into() };
        let backend = |retryable| storage::Error::Backend {
            store: "s3://b".into(),
            op: "put",
            key: "k".into(),
            message: "m".into(),
            retryable,
        };
        let mut errors = vec![
            storage::Error::NotFound { store: "s".into(), key: "k".into() },
            storage::Error::Auth { store: "s".into(), message: "m".into() },
            storage::Error::Config("x".into()),
            backend(true),
            backend(false),
        ];
        for kind in
            [K::StorageFull, K::Other, K::TimedOut, K::PermissionDenied, K::ReadOnlyFilesystem, K::NotADirectory]
        {
            errors.push(io(kind));
        }
        for e in &errors {
            assert_eq!(storage_kind(e).is_retryable(), e.is_retryable(), "{e}");
        }
        // Both sides of the line are present, so the agreement means something.
        assert!(errors.iter().any(|e| e.is_retryable()) && errors.iter().any(|e| !e.is_retryable()));
        assert_eq!(storage_kind(&io(K::StorageFull)), ErrorKind::Retryable);
        assert_eq!(storage_kind(&io(K::PermissionDenied)), ErrorKind::BadInput);
    }
}
