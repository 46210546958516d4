//! Cluster metadata lookups: which broker leads a partition, which brokers exist.

use kafka_protocol::{
    messages::{MetadataRequest, TopicName, metadata_request::MetadataRequestTopic},
    protocol::StrBytes,
};

use super::{Error, security::Cluster};

/// Newest Metadata version whose fields we read (v9 is the first flexible one; topic ids
/// from v10 on are not needed here).
const METADATA_VERSION_CAP: i16 = 9;

/// A broker of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerNode {
    /// Broker (node) id.
    pub node_id: i32,
    /// `host:port` to connect to.
    pub addr: String,
}

/// Metadata for `topics` (all topics when `None`), asked of a bootstrap broker.
async fn metadata(
    cluster: &Cluster,
    topics: Option<&[&str]>,
) -> Result<kafka_protocol::messages::MetadataResponse, Error> {
    let mut connection = cluster.connect().await?;
    let version = connection.version::<MetadataRequest>("Metadata", METADATA_VERSION_CAP)?;
    let request = MetadataRequest::default()
        .with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|name| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string((*name).to_owned()))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    connection.call(&request, version, "Metadata").await
}

/// The brokers of `cluster`.
pub async fn brokers(cluster: &Cluster) -> Result<Vec<BrokerNode>, Error> {
    let response = metadata(cluster, Some(&[])).await?;
    Ok(response
        .brokers
        .iter()
        .map(|broker| BrokerNode {
            node_id: broker.node_id.0,
            addr: format!("{}:{}", broker.host.as_str(), broker.port),
        })
        .collect())
}

/// The address of the broker leading `topic`/`partition`.
pub async fn partition_leader(cluster: &Cluster, topic: &str, partition: i32) -> Result<String, Error> {
    let response = metadata(cluster, Some(&[topic])).await?;
    let topic_metadata =
        response.topics.iter().find(|t| t.name.as_ref().is_some_and(|name| name.0.as_str() == topic)).ok_or_else(
            || Error::Protocol { step: "Metadata", message: format!("topic {topic} missing from the metadata answer") },
        )?;
    Error::check("Metadata (topic)", topic_metadata.error_code, Some(topic.to_owned()))?;
    let partition_metadata =
        topic_metadata.partitions.iter().find(|p| p.partition_index == partition).ok_or_else(|| Error::Protocol {
            step: "Metadata",
            message: format!("partition {topic}/{partition} missing from the metadata answer"),
        })?;
    Error::check("Metadata (partition)", partition_metadata.error_code, Some(format!("{topic}/{partition}")))?;
    let leader = partition_metadata.leader_id.0;
    response
        .brokers
        .iter()
        .find(|broker| broker.node_id.0 == leader)
        .map(|broker| format!("{}:{}", broker.host.as_str(), broker.port))
        .ok_or_else(|| Error::Broker {
            step: "Metadata (leader)",
            code: 5,
            error: kafka_protocol::ResponseError::try_from_code(5),
            message: Some(format!("no live leader for {topic}/{partition}")),
        })
}
