//! The EndTxn (API 26) route tansu 0.6 does not register: commit or abort a transaction
//! through the storage engine's `txn_end`, which writes the control markers and moves the
//! last stable offset.
//!
//! tansu's `txn_end` answers OK to a second EndTxn for an already ended transaction whatever
//! its outcome, so "commit" after "abort" of the same transaction (same producer id and
//! epoch) would look like success. Kafka's coordinator answers INVALID_TXN_STATE there and
//! OK only to a repeat of the same outcome; [`EndedTxns`] keeps the outcome of each
//! transactional id's last ended transaction to give that answer. A new transaction
//! (AddPartitionsToTxn) clears it, since librdkafka reuses the epoch across transactions.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use rama::{Context, Service};
use tansu_sans_io::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, ErrorCode};
use tansu_storage::{Error, Storage, TxnAddPartitionService};
use tracing::{debug, warn};

use crate::txns::{Coordinator, record_added};

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ended {
    producer_id: i64,
    producer_epoch: i16,
    committed: bool,
}

/// Outcome of the last ended transaction per transactional id.
#[derive(Clone, Debug, Default)]
pub struct EndedTxns(Arc<Mutex<HashMap<String, Ended>>>);

impl EndedTxns {
    fn conflicting(&self, req: &EndTxnRequest) -> bool {
        let ended = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        ended.get(&req.transactional_id).is_some_and(|ended| {
            ended.producer_id == req.producer_id
                && ended.producer_epoch == req.producer_epoch
                && ended.committed != req.committed
        })
    }

    fn record(&self, req: &EndTxnRequest) {
        let mut ended = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome =
            Ended { producer_id: req.producer_id, producer_epoch: req.producer_epoch, committed: req.committed };
        let _ = ended.insert(req.transactional_id.clone(), outcome);
    }

    fn forget(&self, transactional_id: &str) {
        let mut ended = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = ended.remove(transactional_id);
    }
}

/// Serves `EndTxnRequest` by calling `Storage::txn_end`. Storage errors that carry a Kafka
/// error code (fenced producer, unknown transactional id, ...) become that code in the
/// response instead of dropping the connection.
#[derive(Clone, Debug, Default)]
pub struct EndTxnService {
    /// Shared with [`AddPartitionsService`].
    pub ended: EndedTxns,
    /// Serialises transaction steps and records the outcome.
    pub coordinator: Coordinator,
}

impl<G> Service<G, EndTxnRequest> for EndTxnService
where
    G: Storage,
{
    type Response = EndTxnResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: EndTxnRequest) -> Result<EndTxnResponse, Error> {
        let _serial = self.coordinator.serial().await;
        let code = if self.ended.conflicting(&req) {
            ErrorCode::InvalidTxnState
        } else {
            let outcome = ctx
                .state()
                .txn_end(req.transactional_id.as_str(), req.producer_id, req.producer_epoch, req.committed)
                .await;
            match outcome {
                Ok(code) => code,
                Err(Error::Api(code)) => code,
                Err(other) => {
                    warn!(error = ?other, transactional_id = %req.transactional_id, "txn_end failed");
                    ErrorCode::UnknownServerError
                }
            }
        };
        if code == ErrorCode::None {
            self.ended.record(&req);
            self.coordinator.ended(&req);
        }
        debug!(
            transactional_id = %req.transactional_id,
            producer_id = req.producer_id,
            producer_epoch = req.producer_epoch,
            committed = req.committed,
            ?code,
            "end txn"
        );
        Ok(EndTxnResponse::default().throttle_time_ms(0).error_code(code.into()))
    }
}

/// tansu's AddPartitionsToTxn; a transaction starting clears the previous outcome.
#[derive(Clone, Debug, Default)]
pub struct AddPartitionsService {
    /// Shared with [`EndTxnService`].
    pub ended: EndedTxns,
    /// Serialises transaction steps and records the partitions added.
    pub coordinator: Coordinator,
}

impl<G> Service<G, AddPartitionsToTxnRequest> for AddPartitionsService
where
    G: Storage,
{
    type Response = AddPartitionsToTxnResponse;
    type Error = Error;

    async fn serve(
        &self,
        ctx: Context<G>,
        req: AddPartitionsToTxnRequest,
    ) -> Result<AddPartitionsToTxnResponse, Error> {
        let _serial = self.coordinator.serial().await;
        let mut ids: Vec<String> = req.v_3_and_below_transactional_id.clone().into_iter().collect();
        ids.extend(req.transactions.iter().flatten().map(|txn| txn.transactional_id.clone()));
        let response = TxnAddPartitionService.serve(ctx, req.clone()).await?;
        record_added(&self.coordinator, &req, &response);
        for id in ids {
            self.ended.forget(&id);
        }
        Ok(response)
    }
}
