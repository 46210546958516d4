//! The route table: tansu-broker's own storage, group-coordinator and SASL routes, with
//! Fetch and DescribeConfigs replaced, InitProducerId, AddPartitionsToTxn and Produce wrapped,
//! and EndTxn, ListTransactions and DescribeTransactions added (see the sibling modules for why).

use rama::{
    Layer as _, Service as _,
    layer::{MapErrLayer, MapStateLayer},
};
use tansu_broker::{
    Error,
    service::{auth, coordinator, storage as routes},
};
use tansu_sans_io::{
    AddPartitionsToTxnRequest, ApiKey as _, DescribeConfigsRequest, DescribeTransactionsRequest, EndTxnRequest,
    FetchRequest, InitProducerIdRequest, ListTransactionsRequest, ProduceRequest,
};
use tansu_service::{FrameRequestLayer, FrameRouteBuilder, FrameRouteService};
use tansu_storage::Storage;

use crate::{
    configs::BrokerConfigsService,
    end_txn::{AddPartitionsService, EndTxnService, EndedTxns},
    fetch::ReadCommittedFetchService,
    txns::{
        Coordinator, DescribeTransactionsService, InitProducerService, ListTransactionsService, SerialProduceService,
    },
};

type Builder = FrameRouteBuilder<(), Error>;
type Route<S> = fn(Builder, S) -> Result<Builder, Error>;

/// Every route of tansu-broker 0.6's `service::storage::services` except Fetch,
/// DescribeConfigs, AddPartitionsToTxn, InitProducerId and Produce, which this broker wraps.
fn tansu_routes<S: Storage>() -> Vec<Route<S>> {
    vec![
        routes::add_offsets_to_txn,
        routes::alter_user_scram_credentials,
        routes::consumer_group_describe,
        routes::create_acls,
        routes::create_topics,
        routes::delete_groups,
        routes::delete_records,
        routes::delete_topics,
        routes::describe_acls,
        routes::describe_cluster,
        routes::describe_groups,
        routes::describe_topic_partitions,
        routes::describe_user_scram_credentials,
        routes::find_coordinator,
        routes::get_telemetry_subscriptions,
        routes::incremental_alter_configs,
        routes::list_groups,
        routes::list_offsets,
        routes::list_partition_reassignments,
        routes::metadata,
        routes::txn_offset_commit_request,
    ]
}

/// Builds the frame router for one connection.
pub fn router<S, C>(
    storage: S,
    groups: C,
    ended: EndedTxns,
    txns: Coordinator,
    transaction_max_timeout_ms: i64,
) -> Result<FrameRouteService<(), Error>, Error>
where
    S: Storage,
    C: tansu_broker::coordinator::group::Coordinator,
{
    let builder = tansu_routes::<S>()
        .into_iter()
        .try_fold(FrameRouteService::<(), Error>::builder(), |builder, route| route(builder, storage.clone()))?;
    let builder = coordinator::services(builder, groups)?;
    let builder = auth::services(builder)?;
    let state = storage.clone();
    let builder = builder.with_route(
        EndTxnRequest::KEY,
        (MapErrLayer::new(Error::from), MapStateLayer::new(move |_| state), FrameRequestLayer::<EndTxnRequest>::new())
            .into_layer(EndTxnService { ended: ended.clone(), coordinator: txns.clone() })
            .boxed(),
    )?;
    let state = storage.clone();
    let builder = builder.with_route(
        AddPartitionsToTxnRequest::KEY,
        (
            MapErrLayer::new(Error::from),
            MapStateLayer::new(move |_| state),
            FrameRequestLayer::<AddPartitionsToTxnRequest>::new(),
        )
            .into_layer(AddPartitionsService { ended, coordinator: txns.clone() })
            .boxed(),
    )?;
    let state = storage.clone();
    let builder = builder.with_route(
        InitProducerIdRequest::KEY,
        (
            MapErrLayer::new(Error::from),
            MapStateLayer::new(move |_| state),
            FrameRequestLayer::<InitProducerIdRequest>::new(),
        )
            .into_layer(InitProducerService { coordinator: txns.clone() })
            .boxed(),
    )?;
    let state = storage.clone();
    let builder = builder.with_route(
        ProduceRequest::KEY,
        (MapErrLayer::new(Error::from), MapStateLayer::new(move |_| state), FrameRequestLayer::<ProduceRequest>::new())
            .into_layer(SerialProduceService { coordinator: txns.clone() })
            .boxed(),
    )?;
    let state = storage.clone();
    let builder = builder.with_route(
        ListTransactionsRequest::KEY,
        (
            MapErrLayer::new(Error::from),
            MapStateLayer::new(move |_| state),
            FrameRequestLayer::<ListTransactionsRequest>::new(),
        )
            .into_layer(ListTransactionsService { coordinator: txns.clone() })
            .boxed(),
    )?;
    let state = storage.clone();
    let builder = builder.with_route(
        DescribeTransactionsRequest::KEY,
        (
            MapErrLayer::new(Error::from),
            MapStateLayer::new(move |_| state),
            FrameRequestLayer::<DescribeTransactionsRequest>::new(),
        )
            .into_layer(DescribeTransactionsService { coordinator: txns })
            .boxed(),
    )?;
    let state = storage.clone();
    let builder = builder.with_route(
        FetchRequest::KEY,
        (MapErrLayer::new(Error::from), MapStateLayer::new(move |_| state), FrameRequestLayer::<FetchRequest>::new())
            .into_layer(ReadCommittedFetchService)
            .boxed(),
    )?;
    let builder = builder.with_route(
        DescribeConfigsRequest::KEY,
        (
            MapErrLayer::new(Error::from),
            MapStateLayer::new(move |_| storage),
            FrameRequestLayer::<DescribeConfigsRequest>::new(),
        )
            .into_layer(BrokerConfigsService { transaction_max_timeout_ms })
            .boxed(),
    )?;
    builder.build().map_err(Into::into)
}
