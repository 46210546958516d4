//! Two ways the exactly-once sink can learn the producer id/epoch of its transaction
//! (librdkafka has no getter): the header of the transaction's first record batch
//! (`first_batch_identity`, raw protocol) and librdkafka's statistics (`eos` block). They
//! must agree. Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Statistics,
    producer::{FutureProducer, Producer as _},
};
use sluice_runtime::connectors::kafka::{ProducerIdentity, first_batch_identity};
use sluice_tests::kafka::{TIMEOUT, brokers, cluster, create_topic, send_all, unique, values};

/// Keeps the last `eos` identity librdkafka reported.
#[derive(Clone, Default)]
struct EosStats(Arc<Mutex<Option<ProducerIdentity>>>);

impl ClientContext for EosStats {
    fn stats(&self, statistics: Statistics) {
        if let Some(eos) = statistics.eos
            && eos.producer_id >= 0
            && let Ok(producer_epoch) = i16::try_from(eos.producer_epoch)
        {
            *self.0.lock().expect("stats lock") =
                Some(ProducerIdentity { producer_id: eos.producer_id, producer_epoch });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_header_identity_matches_librdkafka_statistics() {
    let topic = unique("identity");
    create_topic(&topic, 1).await.expect("create topic");
    let stats = EosStats::default();
    let producer: FutureProducer<EosStats> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("transactional.id", unique("txn"))
        .set("statistics.interval.ms", "100")
        .create_with_context(stats.clone())
        .expect("producer");
    producer.init_transactions(TIMEOUT).expect("init");
    producer.begin_transaction().expect("begin");
    let delivered = send_all(&producer, &topic, 1, &values("v", 3)).await.expect("send");

    let from_batch = first_batch_identity(&cluster(), &topic, 0, delivered[0].1).await.expect("batch header");
    let deadline = Instant::now() + TIMEOUT;
    let from_stats = loop {
        if let Some(identity) = *stats.0.lock().expect("stats lock") {
            break identity;
        }
        assert!(Instant::now() < deadline, "librdkafka reported no eos producer id within {TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(from_batch, from_stats);
    producer.commit_transaction(TIMEOUT).expect("commit");
}
