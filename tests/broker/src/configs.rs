//! DescribeConfigs with broker-level transaction settings: tansu answers broker resources
//! with an empty config list, so clients cannot read `transaction.max.timeout.ms`. This
//! route reports the value the test broker was started with; topic resources still go to
//! tansu's own service.

use rama::{Context, Service};
use tansu_sans_io::{
    ConfigResource, ConfigSource, ConfigType, DescribeConfigsRequest, DescribeConfigsResponse, ErrorCode,
    describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
};
use tansu_storage::{DescribeConfigsService, Error, Storage};

/// The broker config key clients read to bound `transaction.timeout.ms`.
pub const TRANSACTION_MAX_TIMEOUT_MS: &str = "transaction.max.timeout.ms";

/// DescribeConfigs that adds the broker's `transaction.max.timeout.ms`.
#[derive(Clone, Copy, Debug)]
pub struct BrokerConfigsService {
    /// Value reported for `transaction.max.timeout.ms`.
    pub transaction_max_timeout_ms: i64,
}

impl<G> Service<G, DescribeConfigsRequest> for BrokerConfigsService
where
    G: Storage,
{
    type Response = DescribeConfigsResponse;
    type Error = Error;

    async fn serve(&self, ctx: Context<G>, req: DescribeConfigsRequest) -> Result<DescribeConfigsResponse, Error> {
        let mut results = Vec::new();
        for resource in req.resources.clone().unwrap_or_default() {
            if ConfigResource::from(resource.resource_type) == ConfigResource::Broker {
                results.push(self.broker_result(&resource.resource_name));
            } else {
                let single = DescribeConfigsRequest::default()
                    .resources(Some(vec![resource]))
                    .include_synonyms(req.include_synonyms)
                    .include_documentation(req.include_documentation);
                let response = DescribeConfigsService.serve(ctx.clone(), single).await?;
                results.extend(response.results.unwrap_or_default());
            }
        }
        Ok(DescribeConfigsResponse::default().throttle_time_ms(0).results(Some(results)))
    }
}

impl BrokerConfigsService {
    fn broker_result(&self, name: &str) -> DescribeConfigsResult {
        let config = DescribeConfigsResourceResult::default()
            .name(TRANSACTION_MAX_TIMEOUT_MS.into())
            .value(Some(self.transaction_max_timeout_ms.to_string()))
            .read_only(true)
            .is_default(None)
            .config_source(Some(ConfigSource::StaticBrokerConfig.into()))
            .is_sensitive(false)
            .synonyms(Some(Vec::new()))
            .config_type(Some(ConfigType::Int.into()))
            .documentation(Some(String::new()));
        DescribeConfigsResult::default()
            .error_code(ErrorCode::None.into())
            .error_message(Some(ErrorCode::None.to_string()))
            .resource_type(i8::from(ConfigResource::Broker))
            .resource_name(name.into())
            .configs(Some(vec![config]))
    }
}
