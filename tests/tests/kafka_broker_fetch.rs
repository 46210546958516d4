//! Fetch behaviour the Kafka source relies on when it restores an offset from a checkpoint:
//! a consumer positioned in the middle of a record batch gets the rest of that batch.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord, Producer as _},
};
use sluice_tests::kafka::{TIMEOUT, brokers, create_topic, read_from, unique, values};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_starting_mid_batch_reads_the_rest_of_the_batch() {
    let topic = unique("mid-batch");
    create_topic(&topic, 1).await.expect("create topic");
    // One batch: queue all records before the producer may send (long linger), then flush.
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", brokers()).set("linger.ms", "5000").create().expect("producer");
    let sent = values("batched", 10);
    let deliveries: Vec<_> = sent
        .iter()
        .map(|v| producer.send_result(FutureRecord::to(&topic).partition(0).key(v).payload(v)).expect("queue"))
        .collect();
    producer.flush(TIMEOUT).expect("flush");
    for delivery in deliveries {
        delivery.await.expect("delivery").expect("delivered");
    }

    let read = read_from(&topic, 0, 5).expect("read");
    let got: Vec<String> = read.iter().map(|r| r.value.clone()).collect();
    assert_eq!(got, sent[5..].to_vec());
}
