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

/// The kind of a checkpoint-storage error: rejected credentials, an unusable URI, a missing
/// object or a request the store refuses for good are bad input; the rest may pass.
pub fn storage_kind(e: &storage::Error) -> ErrorKind {
    match e {
        storage::Error::Auth { .. } | storage::Error::Config(_) | storage::Error::NotFound { .. } => {
            ErrorKind::BadInput
        }
        storage::Error::Backend { retryable: false, .. } => ErrorKind::BadInput,
        storage::Error::Backend { .. } | storage::Error::Io { .. } => ErrorKind::Retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
