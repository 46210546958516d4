//! The operator's errors. Each says whether retrying helps; the controller maps that to a
//! requeue delay and a metric label.

use std::time::Duration;

/// A failed reconcile step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the StreamJob from the API server failed.
    #[error("reading StreamJob {job}: {source}")]
    ReadJob {
        /// StreamJob name.
        job: String,
        /// API error.
        source: kube::Error,
    },
    /// Listing the job's pods failed.
    #[error("listing pods of {job}: {source}")]
    ListPods {
        /// StreamJob name.
        job: String,
        /// API error.
        source: kube::Error,
    },
    /// Applying a child object failed.
    #[error("applying {kind} {name}: {source}")]
    Apply {
        /// Object kind.
        kind: &'static str,
        /// Object name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// Deleting a pod failed.
    #[error("deleting pod {name}: {source}")]
    DeletePod {
        /// Pod name.
        name: String,
        /// API error.
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("writing status of {job}: {source}")]
    WriteStatus {
        /// StreamJob name.
        job: String,
        /// API error.
        source: kube::Error,
    },
    /// The finalizer helper failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Pods are still terminating; the finalizer stays until they are gone.
    #[error("{0} pods still terminating")]
    PodsTerminating(usize),
    /// The object has no namespace (StreamJobs are namespaced; the API server never sends this).
    #[error("StreamJob without a namespace")]
    NoNamespace,
}

impl Error {
    /// Whether the same reconcile may succeed later. API errors other than 4xx client errors
    /// (except 409/429) are retryable; so is waiting for pods.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::ReadJob { source, .. }
            | Error::ListPods { source, .. }
            | Error::Apply { source, .. }
            | Error::DeletePod { source, .. }
            | Error::WriteStatus { source, .. } => retryable_api(source),
            Error::Finalizer(_) | Error::PodsTerminating(_) => true,
            Error::NoNamespace => false,
        }
    }

    /// Delay before the controller retries.
    pub fn requeue_after(&self) -> Duration {
        match self {
            Error::PodsTerminating(_) => Duration::from_secs(2),
            _ if self.is_retryable() => Duration::from_secs(10),
            _ => Duration::from_secs(300),
        }
    }

    /// Short label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadJob { .. } => "read_job",
            Error::ListPods { .. } => "list_pods",
            Error::Apply { .. } => "apply",
            Error::DeletePod { .. } => "delete_pod",
            Error::WriteStatus { .. } => "write_status",
            Error::Finalizer(_) => "finalizer",
            Error::PodsTerminating(_) => "pods_terminating",
            Error::NoNamespace => "no_namespace",
        }
    }
}

fn retryable_api(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 409 || s.code == 429,
        _ => true,
    }
}
