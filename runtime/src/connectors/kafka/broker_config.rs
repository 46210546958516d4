//! Broker configuration the exactly-once sink validates its own settings against.

use kafka_protocol::{
    messages::{DescribeConfigsRequest, describe_configs_request::DescribeConfigsResource},
    protocol::StrBytes,
};

use super::{Error, metadata, security::Cluster};

/// The broker setting that caps a producer's `transaction.timeout.ms`.
pub const TRANSACTION_MAX_TIMEOUT_MS: &str = "transaction.max.timeout.ms";
/// DescribeConfigs resource type of a broker.
const RESOURCE_BROKER: i8 = 4;
/// Newest DescribeConfigs version whose fields we read.
const DESCRIBE_CONFIGS_VERSION_CAP: i16 = 4;

/// Reads the broker's `transaction.max.timeout.ms` (from one broker of the cluster, asked
/// directly as Kafka requires for broker resources). `Ok(None)` when the broker does not
/// report it.
pub async fn transaction_max_timeout_ms(cluster: &Cluster) -> Result<Option<i64>, Error> {
    let brokers = metadata::brokers(cluster).await?;
    let broker = brokers
        .first()
        .ok_or_else(|| Error::Protocol { step: "Metadata", message: "the cluster reported no brokers".into() })?;
    let mut connection = cluster.connect_to(&broker.addr).await?;
    let version = connection.version::<DescribeConfigsRequest>("DescribeConfigs", DESCRIBE_CONFIGS_VERSION_CAP)?;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_BROKER)
            .with_resource_name(StrBytes::from_string(broker.node_id.to_string()))
            // All keys: tansu 0.6 cannot decode a non-null key list (StringWithoutLength).
            .with_configuration_keys(None),
    ]);
    let response = connection.call(&request, version, "DescribeConfigs").await?;
    for result in &response.results {
        Error::check("DescribeConfigs", result.error_code, result.error_message.as_ref().map(|m| m.to_string()))?;
        if let Some(config) = result.configs.iter().find(|c| c.name.as_str() == TRANSACTION_MAX_TIMEOUT_MS) {
            let Some(value) = config.value.as_ref() else {
                return Ok(None);
            };
            return value.as_str().parse().map(Some).map_err(|_| Error::Protocol {
                step: "DescribeConfigs",
                message: format!("{TRANSACTION_MAX_TIMEOUT_MS} is not a number: {}", value.as_str()),
            });
        }
    }
    Ok(None)
}
