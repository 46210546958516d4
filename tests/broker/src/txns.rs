//! The transaction coordinator's bookkeeping around tansu's storage:
//!
//! 1. **One transaction step at a time.** tansu 0.6 ends a transaction in three separate
//!    storage updates: mark it prepared, write the COMMIT/ABORT markers, then settle every
//!    prepared transaction overlapping it. Two EndTxn (or fencing InitProducerId) requests
//!    running at once break that: one settles the other between its first two steps, the
//!    other's markers then land in a *settled* transaction's offset ranges, and tansu never
//!    settles another transaction on those partitions — the last stable offset stops there
//!    for good (an exactly-once sink at parallelism > 1 commits all subtasks at the same
//!    moment). A transactional Produce likewise checks the epoch and then records its range
//!    in two updates, so a killed producer's last in-flight batch could land in a
//!    transaction that fencing has already ended. [`Coordinator::serial`] runs
//!    InitProducerId, AddPartitionsToTxn, EndTxn and transactional Produce one at a time.
//! 2. **ListTransactions (66) and DescribeTransactions (65)**, which tansu lacks: the state
//!    of every transactional id as its requests moved it (Kafka's state names), so a
//!    verifier can name the transaction that keeps a partition's last stable offset behind.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use rama::{Context, Service};
use tansu_sans_io::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, ErrorCode, InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProduceRequest, ProduceResponse, describe_transactions_response,
    list_transactions_response,
};
use tansu_storage::{Error, InitProducerIdService, ProduceService, Storage};

/// Kafka's transaction states, as ListTransactions and DescribeTransactions name them.
const STATES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

/// Where a transactional id stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Initialised, no transaction begun (or the last one ended and a new epoch began).
    Empty,
    /// Partitions added, not ended.
    Ongoing,
    /// Ended by a commit.
    CompleteCommit,
    /// Ended by an abort (EndTxn, or fencing by a newer InitProducerId).
    CompleteAbort,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::Ongoing => "Ongoing",
            State::CompleteCommit => "CompleteCommit",
            State::CompleteAbort => "CompleteAbort",
        }
    }
}

/// One transactional id.
#[derive(Clone, Debug)]
struct Txn {
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    state: State,
    /// Start of the current (or last) transaction, ms since the epoch; -1 before the first.
    started_ms: i64,
    /// Partitions of the current transaction.
    partitions: BTreeMap<String, BTreeSet<i32>>,
}

#[derive(Debug, Default)]
struct Inner {
    serial: tokio::sync::Mutex<()>,
    txns: Mutex<BTreeMap<String, Txn>>,
}

/// Shared by every connection's routes.
#[derive(Clone, Debug, Default)]
pub struct Coordinator(Arc<Inner>);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Coordinator {
    /// Held while a request that moves transaction state runs (see the module docs).
    pub async fn serial(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.0.serial.lock().await
    }

    fn txns(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Txn>> {
        self.0.txns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// InitProducerId answered: tansu aborted the open transaction (if any) and began `epoch`.
    fn initialised(&self, id: &str, producer_id: i64, producer_epoch: i16, timeout_ms: i32) {
        let _ = self.txns().insert(
            id.to_owned(),
            Txn {
                producer_id,
                producer_epoch,
                timeout_ms,
                state: State::Empty,
                started_ms: -1,
                partitions: BTreeMap::new(),
            },
        );
    }

    /// AddPartitionsToTxn accepted `partitions` for `id` at `producer_id`/`producer_epoch`.
    fn added(&self, id: &str, producer_id: i64, producer_epoch: i16, partitions: &[(String, i32)]) {
        let mut txns = self.txns();
        let Some(txn) = txns.get_mut(id).filter(|t| t.producer_id == producer_id && t.producer_epoch == producer_epoch)
        else {
            return;
        };
        if txn.state != State::Ongoing {
            txn.state = State::Ongoing;
            txn.started_ms = now_ms();
            txn.partitions.clear();
        }
        for (topic, partition) in partitions {
            let _ = txn.partitions.entry(topic.clone()).or_default().insert(*partition);
        }
    }

    /// EndTxn succeeded.
    pub fn ended(&self, req: &EndTxnRequest) {
        let mut txns = self.txns();
        if let Some(txn) = txns
            .get_mut(&req.transactional_id)
            .filter(|t| t.producer_id == req.producer_id && t.producer_epoch == req.producer_epoch)
        {
            txn.state = if req.committed { State::CompleteCommit } else { State::CompleteAbort };
            txn.partitions.clear();
        }
    }
}

/// tansu's InitProducerId, serialised and recorded.
#[derive(Clone, Debug, Default)]
pub struct InitProducerService {
    /// Shared state.
    pub coordinator: Coordinator,
}

impl<G: Storage> Service<G, InitProducerIdRequest> for InitProducerService {
    type Response = InitProducerIdResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: InitProducerIdRequest) -> Result<InitProducerIdResponse, Error> {
        let _serial = self.coordinator.serial().await;
        let id = req.transactional_id.clone();
        let timeout_ms = req.transaction_timeout_ms;
        let response = InitProducerIdService.serve(ctx, req).await?;
        if let Some(id) = id
            && response.error_code == i16::from(ErrorCode::None)
        {
            self.coordinator.initialised(&id, response.producer_id, response.producer_epoch, timeout_ms);
        }
        Ok(response)
    }
}

/// tansu's Produce; transactional requests serialised.
#[derive(Clone, Debug, Default)]
pub struct SerialProduceService {
    /// Shared state.
    pub coordinator: Coordinator,
}

impl<G: Storage> Service<G, ProduceRequest> for SerialProduceService {
    type Response = ProduceResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: ProduceRequest) -> Result<ProduceResponse, Error> {
        if req.transactional_id.is_none() {
            return ProduceService.serve(ctx, req).await;
        }
        let _serial = self.coordinator.serial().await;
        ProduceService.serve(ctx, req).await
    }
}

/// Records what an AddPartitionsToTxn (v0–v3) answer accepted.
pub fn record_added(coordinator: &Coordinator, req: &AddPartitionsToTxnRequest, response: &AddPartitionsToTxnResponse) {
    let (Some(id), Some(producer_id), Some(producer_epoch)) = (
        req.v_3_and_below_transactional_id.as_deref(),
        req.v_3_and_below_producer_id,
        req.v_3_and_below_producer_epoch,
    ) else {
        return;
    };
    let mut accepted = Vec::new();
    for topic in response.results_by_topic_v_3_and_below.iter().flatten() {
        for partition in topic.results_by_partition.iter().flatten() {
            if partition.partition_error_code == i16::from(ErrorCode::None) {
                accepted.push((topic.name.clone(), partition.partition_index));
            }
        }
    }
    coordinator.added(id, producer_id, producer_epoch, &accepted);
}

/// ListTransactions (API 66).
#[derive(Clone, Debug, Default)]
pub struct ListTransactionsService {
    /// Shared state.
    pub coordinator: Coordinator,
}

impl<G: Storage> Service<G, ListTransactionsRequest> for ListTransactionsService {
    type Response = ListTransactionsResponse;
    type Error = Error;

    async fn serve(&self, _ctx: Context<G>, req: ListTransactionsRequest) -> Result<ListTransactionsResponse, Error> {
        let states = req.state_filters.unwrap_or_default();
        let unknown: Vec<String> = states.iter().filter(|s| !STATES.contains(&s.as_str())).cloned().collect();
        let producers = req.producer_id_filters.unwrap_or_default();
        let duration = req.duration_filter.unwrap_or(-1);
        let now = now_ms();
        let listed = self
            .coordinator
            .txns()
            .iter()
            .filter(|(_, t)| states.is_empty() || states.iter().any(|s| s == t.state.name()))
            .filter(|(_, t)| producers.is_empty() || producers.contains(&t.producer_id))
            .filter(|(_, t)| duration < 0 || (t.started_ms >= 0 && now - t.started_ms > duration))
            .map(|(id, t)| {
                list_transactions_response::TransactionState::default()
                    .transactional_id(id.clone())
                    .producer_id(t.producer_id)
                    .transaction_state(t.state.name().to_owned())
            })
            .collect();
        Ok(ListTransactionsResponse::default()
            .throttle_time_ms(0)
            .error_code(ErrorCode::None.into())
            .unknown_state_filters(Some(unknown))
            .transaction_states(Some(listed)))
    }
}

/// DescribeTransactions (API 65).
#[derive(Clone, Debug, Default)]
pub struct DescribeTransactionsService {
    /// Shared state.
    pub coordinator: Coordinator,
}

impl<G: Storage> Service<G, DescribeTransactionsRequest> for DescribeTransactionsService {
    type Response = DescribeTransactionsResponse;
    type Error = Error;

    async fn serve(
        &self,
        _ctx: Context<G>,
        req: DescribeTransactionsRequest,
    ) -> Result<DescribeTransactionsResponse, Error> {
        let txns = self.coordinator.txns();
        let described = req
            .transactional_ids
            .unwrap_or_default()
            .into_iter()
            .map(|id| match txns.get(&id) {
                None => describe_transactions_response::TransactionState::default()
                    .error_code(ErrorCode::TransactionalIdNotFound.into())
                    .transactional_id(id)
                    .transaction_state(String::new())
                    .transaction_timeout_ms(0)
                    .transaction_start_time_ms(-1)
                    .producer_id(-1)
                    .producer_epoch(-1)
                    .topics(Some(Vec::new())),
                Some(t) => describe_transactions_response::TransactionState::default()
                    .error_code(ErrorCode::None.into())
                    .transactional_id(id)
                    .transaction_state(t.state.name().to_owned())
                    .transaction_timeout_ms(t.timeout_ms)
                    .transaction_start_time_ms(t.started_ms)
                    .producer_id(t.producer_id)
                    .producer_epoch(t.producer_epoch)
                    .topics(Some(
                        t.partitions
                            .iter()
                            .map(|(topic, partitions)| {
                                describe_transactions_response::TopicData::default()
                                    .topic(topic.clone())
                                    .partitions(Some(partitions.iter().copied().collect()))
                            })
                            .collect(),
                    )),
            })
            .collect();
        Ok(DescribeTransactionsResponse::default().throttle_time_ms(0).transaction_states(Some(described)))
    }
}
