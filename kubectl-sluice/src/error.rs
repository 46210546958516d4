//! What can go wrong, each variant naming the step and the object, so `main` prints it as is.

/// An error of a plugin command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The StreamJob does not exist (the user's to fix: wrong name or namespace).
    #[error("streamjob {name} not found in namespace {namespace}")]
    NotFound {
        /// The job's name.
        name: String,
        /// The namespace looked in.
        namespace: String,
    },
    /// A request to the API server failed.
    #[error("{step} streamjob {name} in namespace {namespace}: {source}")]
    Api {
        /// What the plugin was doing (`reading`, `patching`, `listing the pods of`).
        step: &'static str,
        /// The job's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Every conditional write lost a race with another writer.
    #[error(
        "streamjob {name} in namespace {namespace} changed under every one of {attempts} writes (409 Conflict); try again"
    )]
    Conflicts {
        /// The job's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// Writes tried.
        attempts: u32,
    },
    /// The operator reports the requested savepoint failed.
    #[error("savepoint {nonce} of streamjob {name} failed: {reason}")]
    SavepointFailed {
        /// The job's name.
        name: String,
        /// The annotation value that asked for it.
        nonce: String,
        /// The operator's reason (`status.savepoints.last.error`).
        reason: String,
    },
    /// The annotation was changed again before the operator acted on this plugin's value.
    #[error(
        "savepoint {nonce} of streamjob {name} will not be taken: the annotation sluice.dev/savepoint was changed to {by:?} before the operator acted on it"
    )]
    SavepointSuperseded {
        /// The job's name.
        name: String,
        /// The value this plugin set.
        nonce: String,
        /// The value found instead.
        by: String,
    },
    /// The operator acted on the trigger, but the status no longer says how it ended.
    #[error(
        "savepoint {nonce} of streamjob {name}: the operator acted on it, but its outcome is no longer in the status (a newer savepoint replaced it); see `kubectl describe sj {name}` for its Events"
    )]
    SavepointOutcomeLost {
        /// The job's name.
        name: String,
        /// The value this plugin set.
        nonce: String,
    },
    /// `--wait` ran out of time.
    #[error("timed out after {waited} waiting for savepoint {nonce} of streamjob {name} (last seen: {seen})")]
    WaitTimeout {
        /// The job's name.
        name: String,
        /// The value this plugin set.
        nonce: String,
        /// How long it waited.
        waited: humantime::Duration,
        /// The savepoint's state when time ran out.
        seen: String,
    },
    /// The job went away while the plugin waited for it.
    #[error("streamjob {name} in namespace {namespace} was deleted while waiting for savepoint {nonce}")]
    JobGone {
        /// The job's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The value this plugin set.
        nonce: String,
    },
    /// The job was deleted and created again under the same name while the plugin waited.
    #[error("streamjob {name} was deleted and created again while waiting for savepoint {nonce}")]
    JobReplaced {
        /// The job's name.
        name: String,
        /// The value this plugin set.
        nonce: String,
    },
    /// No runtime pod of the current attempt exists.
    #[error("streamjob {name} in namespace {namespace} has no runtime pod of attempt {attempt} (phase {phase})")]
    NoPods {
        /// The job's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The attempt looked for.
        attempt: u32,
        /// The job's phase, which usually says why.
        phase: String,
    },
    /// Reading a pod's log failed.
    #[error("reading the log of pod {pod}: {source}")]
    Logs {
        /// The pod.
        pod: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Encoding `-o json|yaml` output failed.
    #[error("encoding the output: {0}")]
    Encode(String),
    /// Writing to the output failed (e.g. a closed pipe).
    #[error("writing the output: {0}")]
    Write(#[from] std::io::Error),
}

impl Error {
    /// Whether running the same command again may succeed without anyone changing anything
    /// (a conflict storm, a timeout, a transient API error); the rest need a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflicts { .. } | Error::WaitTimeout { .. } => true,
            Error::Api { source, .. } => match source.as_ref() {
                kube::Error::Api(s) => s.code == 429 || s.code >= 500,
                _ => true,
            },
            Error::Logs { .. } => true,
            _ => false,
        }
    }
}
