//! Errors of the raw-protocol Kafka helpers. Each variant names the failed step, carries
//! its context, and says whether retrying can help (`is_retryable`).

use kafka_protocol::ResponseError;

/// A failed raw-protocol Kafka step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TCP connect, read or write failed (broker down, connection reset). Retryable.
    #[error("kafka connection to {addr} failed during {step}: {source}")]
    Io {
        /// Broker address.
        addr: String,
        /// What was being done (`connect`, `send EndTxn`, ...).
        step: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS handshake with a broker failed (certificate not trusted or not for this host,
    /// not a TLS listener). Not retryable.
    #[error("kafka connection to {addr}: {message}")]
    Tls {
        /// Broker address.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// The broker refused the SASL authentication (wrong credentials, mechanism not enabled).
    /// Not retryable.
    #[error("kafka broker {addr} refused SASL {mechanism} authentication: {message}")]
    Authentication {
        /// Broker address.
        addr: String,
        /// The SASL mechanism.
        mechanism: &'static str,
        /// The broker's reason.
        message: String,
    },
    /// A request or response did not encode/decode. A protocol bug: not retryable.
    #[error("kafka protocol error during {step}: {message}")]
    Protocol {
        /// What was being done.
        step: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The broker does not support any version of an API we need. Not retryable.
    #[error("broker {addr} does not support {api} (api key {key})")]
    Unsupported {
        /// Broker address.
        addr: String,
        /// API name.
        api: &'static str,
        /// API key.
        key: i16,
    },
    /// The broker answered a step with an error code.
    #[error("broker answered {step} with {error:?} (code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// What was being done.
        step: &'static str,
        /// The raw error code.
        code: i16,
        /// The decoded error, when the code is known.
        error: Option<ResponseError>,
        /// The broker's message, when it sent one.
        message: Option<String>,
    },
    /// The transaction can no longer be committed: the broker fenced the producer (a newer
    /// epoch exists for the transactional id, e.g. after a transaction timeout or another
    /// InitProducerId) or does not know the producer/transaction. The pre-committed data is
    /// lost for this transactional id; never retryable.
    #[error(
        "transaction {transactional_id} (producer id {producer_id}, epoch {producer_epoch}) cannot be committed: broker answered {error:?} (code {code})"
    )]
    TransactionLost {
        /// The transactional id.
        transactional_id: String,
        /// The recorded producer id.
        producer_id: i64,
        /// The recorded producer epoch.
        producer_epoch: i16,
        /// The raw error code.
        code: i16,
        /// The decoded error.
        error: Option<ResponseError>,
    },
    /// The call never ran to completion: the runtime it was handed to shut down (the job is
    /// ending), or no runtime could start for it. Retryable.
    #[error("kafka protocol call did not run: {reason}")]
    NotRun {
        /// Why.
        reason: String,
    },
    /// No record batch was found where the transaction's first record should be.
    #[error("no record batch at {topic}/{partition} offset {offset}")]
    BatchNotFound {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset of the record whose batch was wanted.
        offset: i64,
    },
    /// The batch found there is not transactional, so it names no transaction.
    #[error("record batch at {topic}/{partition} offset {offset} is not transactional")]
    NotTransactional {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
    },
}

impl Error {
    /// Whether retrying the same step can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { .. } | Error::NotRun { .. } => true,
            Error::Broker { error, .. } => error.is_some_and(|e| e.is_retriable()),
            Error::Protocol { .. }
            | Error::Tls { .. }
            | Error::Authentication { .. }
            | Error::Unsupported { .. }
            | Error::TransactionLost { .. }
            | Error::BatchNotFound { .. }
            | Error::NotTransactional { .. } => false,
        }
    }

    /// The broker's error for `step`, or `None` when `code` is 0.
    pub(crate) fn check(step: &'static str, code: i16, message: Option<String>) -> Result<(), Error> {
        if code == 0 {
            return Ok(());
        }
        Err(Error::Broker { step, code, error: ResponseError::try_from_code(code), message })
    }
}
