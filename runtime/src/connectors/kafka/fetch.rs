//! One-partition Fetch from the partition leader: the building block for reading batch
//! headers and a partition's high watermark / last stable offset.

use kafka_protocol::{
    messages::{
        FetchRequest, TopicName,
        fetch_request::{FetchPartition, FetchTopic},
        fetch_response::PartitionData,
    },
    protocol::StrBytes,
};

use super::{Error, metadata, security::Cluster};

/// Fetch v11: names topics (v13+ needs topic ids) and has isolation levels, last stable
/// offsets and aborted transactions. Not v12: tansu 0.6 sends tagged fields in v12 answers
/// that the version does not define (NodeEndpoints, v16+), which strict decoders reject.
const FETCH_VERSION_CAP: i16 = 11;

/// Which records a fetch may return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Everything up to the high watermark, open transactions included.
    ReadUncommitted,
    /// Up to the last stable offset, i.e. only ended transactions.
    ReadCommitted,
}

/// Fetches `topic`/`partition` from `offset` (at most `max_bytes`, but at least one whole
/// batch when there is one) from the partition's leader.
pub async fn fetch_partition(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    offset: i64,
    isolation: Isolation,
    max_bytes: i32,
) -> Result<PartitionData, Error> {
    let leader = metadata::partition_leader(cluster, topic, partition).await?;
    let mut connection = cluster.connect_to(&leader).await?;
    let version = connection.version::<FetchRequest>("Fetch", FETCH_VERSION_CAP)?;
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_isolation_level(match isolation {
            Isolation::ReadUncommitted => 0,
            Isolation::ReadCommitted => 1,
        })
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_owned()))).with_partitions(vec![
                FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(-1)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(max_bytes),
            ]),
        ]);
    let response = connection.call(&request, version, "Fetch").await?;
    Error::check("Fetch", response.error_code, None)?;
    let data =
        response.responses.into_iter().flat_map(|t| t.partitions).find(|p| p.partition_index == partition).ok_or_else(
            || Error::Protocol { step: "Fetch", message: format!("{topic}/{partition} missing from the fetch answer") },
        )?;
    Error::check("Fetch (partition)", data.error_code, Some(format!("{topic}/{partition}")))?;
    Ok(data)
}

/// A partition's end offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionEnds {
    /// Offset after the last written record (open transactions included).
    pub high_watermark: i64,
    /// First offset of the oldest open transaction, or the high watermark when none is
    /// open: read_committed consumers cannot read past it. A lingering transaction shows
    /// as `last_stable_offset < high_watermark` that never advances.
    pub last_stable_offset: i64,
}

/// Reads `topic`/`partition`'s high watermark and last stable offset (a read_committed
/// fetch from offset 0, so the partition's log must start at 0).
pub async fn partition_ends(cluster: &Cluster, topic: &str, partition: i32) -> Result<PartitionEnds, Error> {
    let data = fetch_partition(cluster, topic, partition, 0, Isolation::ReadCommitted, 1).await?;
    Ok(PartitionEnds { high_watermark: data.high_watermark, last_stable_offset: data.last_stable_offset })
}
