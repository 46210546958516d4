//! Finishing a transaction with the raw Kafka protocol, from nothing but its transactional
//! id and the producer id/epoch recorded when it was pre-committed. This is the sink's
//! recovery path: librdkafka cannot resume another producer's transaction.
//!
//! Contract (Kafka's transaction coordinator):
//! - `end_transaction(.., Commit)` on a transaction already committed with the same epoch
//!   answers OK, so a retried or repeated commit after a crash is safe.
//! - a transaction the broker already aborted (timeout, fencing by a newer epoch) cannot be
//!   committed: [`Error::TransactionLost`] names the transactional id and producer id/epoch.
//! - Finish recorded transactions *before* anything calls InitProducerId for the same
//!   transactional id (e.g. a new librdkafka producer's `init_transactions`): that bumps the
//!   epoch and aborts an open transaction, after which a commit with the recorded epoch is
//!   refused even if it had gone through.

use std::time::Duration;

use kafka_protocol::{
    ResponseError,
    messages::{EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, ProducerId, TransactionalId},
    protocol::StrBytes,
};
use tracing::{debug, info};

use super::{Error, ProducerIdentity, security::Cluster};

/// FindCoordinator key type of a transaction coordinator.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// FindCoordinator v4+ batches keys; v3 is the newest single-key form.
const FIND_COORDINATOR_VERSION_CAP: i16 = 3;
/// EndTxn v5 belongs to KIP-890 (transactions v2, epoch bump per transaction), which the
/// recorded producer epoch does not model.
const END_TXN_VERSION_CAP: i16 = 4;
/// InitProducerId v5 belongs to KIP-939 (two-phase commit), not used here.
const INIT_PRODUCER_ID_VERSION_CAP: i16 = 4;
/// Attempts for answers that mean "try again shortly" (coordinator moving or loading, a
/// previous EndTxn still writing its markers).
const ATTEMPTS: u32 = 50;
/// Pause between such attempts.
const BACKOFF: Duration = Duration::from_millis(100);

/// How to end a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnOutcome {
    /// Make its records visible to read_committed consumers.
    Commit,
    /// Discard its records.
    Abort,
}

/// The `host:port` of the transaction coordinator for `transactional_id`.
pub async fn find_coordinator(cluster: &Cluster, transactional_id: &str) -> Result<String, Error> {
    let mut connection = cluster.connect().await?;
    let version = connection.version::<FindCoordinatorRequest>("FindCoordinator", FIND_COORDINATOR_VERSION_CAP)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(transactional_id.to_owned()))
        .with_key_type(KEY_TYPE_TRANSACTION);
    let response = connection.call(&request, version, "FindCoordinator").await?;
    Error::check("FindCoordinator", response.error_code, response.error_message.as_ref().map(|m| m.to_string()))?;
    Ok(format!("{}:{}", response.host.as_str(), response.port))
}

/// Commits or aborts the transaction of `identity` (recorded at pre-commit) for
/// `transactional_id`. See the module docs for the idempotency contract.
pub async fn end_transaction(
    cluster: &Cluster,
    transactional_id: &str,
    identity: ProducerIdentity,
    outcome: TxnOutcome,
) -> Result<(), Error> {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(transactional_id.to_owned())))
        .with_producer_id(ProducerId(identity.producer_id))
        .with_producer_epoch(identity.producer_epoch)
        .with_committed(outcome == TxnOutcome::Commit);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let coordinator = find_coordinator(cluster, transactional_id).await?;
        let mut connection = cluster.connect_to(&coordinator).await?;
        let version = connection.version::<EndTxnRequest>("EndTxn", END_TXN_VERSION_CAP)?;
        let code = connection.call(&request, version, "EndTxn").await?.error_code;
        debug!(transactional_id, ?identity, ?outcome, code, attempt, "EndTxn answered");
        match ResponseError::try_from_code(code) {
            None if code == 0 => {
                info!(transactional_id, ?identity, ?outcome, "transaction finished");
                return Ok(());
            }
            Some(
                error @ (ResponseError::ProducerFenced
                | ResponseError::InvalidProducerEpoch
                | ResponseError::InvalidProducerIdMapping
                | ResponseError::UnknownProducerId
                | ResponseError::TransactionalIdNotFound
                | ResponseError::InvalidTxnState),
            ) => {
                return Err(Error::TransactionLost {
                    transactional_id: transactional_id.to_owned(),
                    producer_id: identity.producer_id,
                    producer_epoch: identity.producer_epoch,
                    code,
                    error: Some(error),
                });
            }
            Some(e) if is_transient(e) && attempt < ATTEMPTS => tokio::time::sleep(BACKOFF).await,
            _ => {
                return Err(Error::check("EndTxn", code, None)
                    .err()
                    .unwrap_or(Error::Protocol { step: "EndTxn", message: format!("unexpected error code {code}") }));
            }
        }
    }
}

/// Coordinator answers that mean "try again shortly".
fn is_transient(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::ConcurrentTransactions
            | ResponseError::NotCoordinator
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::CoordinatorNotAvailable
    )
}

/// InitProducerId for `transactional_id`: fences every older producer of the id, aborts
/// its open transaction (if any), and returns the new producer id and epoch. Recovery
/// uses it to clear transactions a killed attempt left open.
pub async fn init_producer_id(
    cluster: &Cluster,
    transactional_id: &str,
    transaction_timeout_ms: i32,
) -> Result<ProducerIdentity, Error> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(transactional_id.to_owned()))))
        .with_transaction_timeout_ms(transaction_timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let coordinator = find_coordinator(cluster, transactional_id).await?;
        let mut connection = cluster.connect_to(&coordinator).await?;
        let version = connection.version::<InitProducerIdRequest>("InitProducerId", INIT_PRODUCER_ID_VERSION_CAP)?;
        let response = connection.call(&request, version, "InitProducerId").await?;
        match ResponseError::try_from_code(response.error_code) {
            None if response.error_code == 0 => {
                return Ok(ProducerIdentity {
                    producer_id: response.producer_id.0,
                    producer_epoch: response.producer_epoch,
                });
            }
            Some(e) if is_transient(e) && attempt < ATTEMPTS => tokio::time::sleep(BACKOFF).await,
            _ => {
                Error::check("InitProducerId", response.error_code, None)?;
            }
        }
    }
}
