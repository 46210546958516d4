//! The transaction coordinators' view of transactions: ListTransactions (API 66) and
//! DescribeTransactions (API 65), so a verifier can name the transaction that holds a
//! partition's last stable offset back (transactional id, producer id/epoch, state,
//! partitions) instead of only reporting that one does.

use std::fmt;

use kafka_protocol::{
    messages::{DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId},
    protocol::StrBytes,
};

use super::{Error, metadata, security::Cluster, txn::find_coordinator};

/// ListTransactions v1 adds the duration filter; v2 (a name pattern) is not needed.
const LIST_VERSION_CAP: i16 = 1;
/// DescribeTransactions has one version.
const DESCRIBE_VERSION_CAP: i16 = 0;

/// States of a transaction that has not ended: it keeps read_committed readers from
/// reading past its first record.
pub const OPEN_STATES: [&str; 4] = ["Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence"];

/// One transactional id as its coordinator describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// Kafka's state name (`Ongoing`, `CompleteCommit`, ...).
    pub state: String,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// The transaction timeout, ms.
    pub timeout_ms: i32,
    /// When the current transaction started (ms since the epoch), -1 if none.
    pub start_time_ms: i64,
    /// The partitions of the current transaction, as (topic, partition).
    pub partitions: Vec<(String, i32)>,
}

impl TxnDescription {
    /// Whether the transaction has not ended.
    pub fn is_open(&self) -> bool {
        OPEN_STATES.contains(&self.state.as_str())
    }

    /// The partitions of `topic` in the transaction.
    pub fn partitions_of(&self, topic: &str) -> Vec<i32> {
        self.partitions.iter().filter(|(t, _)| t == topic).map(|(_, p)| *p).collect()
    }
}

impl fmt::Display for TxnDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let partitions: Vec<String> = self.partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect();
        write!(
            f,
            "transaction {} ({}, producer {} epoch {}, started at {} ms) on partitions [{}]",
            self.transactional_id,
            self.state,
            self.producer_id,
            self.producer_epoch,
            self.start_time_ms,
            partitions.join(", ")
        )
    }
}

/// Transactional ids known to the cluster's coordinators, as (id, producer id, state); only
/// those in `states` unless it is empty.
pub async fn list_transactions(cluster: &Cluster, states: &[&str]) -> Result<Vec<(String, i64, String)>, Error> {
    let request = ListTransactionsRequest::default()
        .with_state_filters(states.iter().map(|s| StrBytes::from_string((*s).to_owned())).collect())
        .with_duration_filter(-1);
    let mut listed = Vec::new();
    for broker in metadata::brokers(cluster).await? {
        let mut connection = cluster.connect_to(&broker.addr).await?;
        let version = connection.version::<ListTransactionsRequest>("ListTransactions", LIST_VERSION_CAP)?;
        let response = connection.call(&request, version, "ListTransactions").await?;
        Error::check("ListTransactions", response.error_code, None)?;
        listed.extend(
            response
                .transaction_states
                .into_iter()
                .map(|t| (t.transactional_id.0.to_string(), t.producer_id.0, t.transaction_state.to_string())),
        );
    }
    listed.sort();
    listed.dedup();
    Ok(listed)
}

/// Describes `transactional_id` at its coordinator.
pub async fn describe_transaction(cluster: &Cluster, transactional_id: &str) -> Result<TxnDescription, Error> {
    let coordinator = find_coordinator(cluster, transactional_id).await?;
    let mut connection = cluster.connect_to(&coordinator).await?;
    let version = connection.version::<DescribeTransactionsRequest>("DescribeTransactions", DESCRIBE_VERSION_CAP)?;
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(transactional_id.to_owned()))]);
    let response = connection.call(&request, version, "DescribeTransactions").await?;
    let state = response.transaction_states.into_iter().next().ok_or_else(|| Error::Protocol {
        step: "DescribeTransactions",
        message: format!("no answer for {transactional_id}"),
    })?;
    Error::check("DescribeTransactions", state.error_code, None)?;
    Ok(TxnDescription {
        transactional_id: state.transactional_id.0.to_string(),
        state: state.transaction_state.to_string(),
        producer_id: state.producer_id.0,
        producer_epoch: state.producer_epoch,
        timeout_ms: state.transaction_timeout_ms,
        start_time_ms: state.transaction_start_time_ms,
        partitions: state
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect(),
    })
}

/// Every transaction not yet ended that includes a partition of `topic`.
pub async fn open_transactions_on(cluster: &Cluster, topic: &str) -> Result<Vec<TxnDescription>, Error> {
    let mut open = Vec::new();
    for (id, _, _) in list_transactions(cluster, &OPEN_STATES).await? {
        let described = describe_transaction(cluster, &id).await?;
        // It may have ended between the two calls.
        if described.is_open() && !described.partitions_of(topic).is_empty() {
            open.push(described);
        }
    }
    Ok(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_names_id_producer_state_and_partitions() {
        let d = TxnDescription {
            transactional_id: "sluice-j-out-2-1".into(),
            state: "Ongoing".into(),
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            start_time_ms: 1_000,
            partitions: vec![("win".into(), 0), ("win".into(), 2), ("other".into(), 1)],
        };
        assert!(d.is_open());
        assert_eq!(d.partitions_of("win"), vec![0, 2]);
        assert_eq!(
            d.to_string(),
            "transaction sluice-j-out-2-1 (Ongoing, producer 7 epoch 3, started at 1000 ms) on partitions [win-0, win-2, other-1]"
        );
        assert!(!TxnDescription { state: "CompleteCommit".into(), ..d }.is_open());
    }
}
