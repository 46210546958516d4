//! The test broker under concurrent transactions on one topic, as an exactly-once sink at
//! parallelism > 1 drives it: several transactional producers commit at the same moment
//! (every subtask commits when a checkpoint completes), then restart (a newer
//! `init_transactions` bumps every epoch). Afterwards no transaction may be open and every
//! partition's last stable offset must reach its high watermark.
//!
//! tansu 0.6 ends a transaction in three unsynchronised steps (mark it prepared, write the
//! markers, then settle every prepared transaction that overlaps it); a concurrent commit
//! could settle a transaction between the first two steps, its own markers then re-opened
//! its offset range under a "committed" state, and no later transaction on that partition
//! could ever settle: read_committed readers stopped there for good.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

use std::time::Duration;

use rdkafka::producer::Producer as _;
use sluice_runtime::connectors::kafka::{PartitionEnds, partition_ends};
use sluice_tests::kafka::{
    Isolation, TIMEOUT, cluster, create_topic, payloads, read_all, send_all, transactional_producer, unique, values,
};

const PARTITIONS: i32 = 3;
const PRODUCERS: usize = 3;
const ROUNDS: usize = 25;
const PER_TXN: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_then_a_restart_leave_no_partition_behind() {
    let topic = unique("concurrent");
    create_topic(&topic, PARTITIONS).await.expect("create topic");
    let ids: Vec<String> = (0..PRODUCERS).map(|i| unique(&format!("txn{i}"))).collect();
    let producers: Vec<_> = ids.iter().map(|id| transactional_producer(id).expect("producer")).collect();
    let mut expected = Vec::new();
    for round in 0..ROUNDS {
        for (i, producer) in producers.iter().enumerate() {
            let sent = values(&format!("r{round}-p{i}"), PER_TXN);
            producer.begin_transaction().expect("begin");
            send_all(producer, &topic, PARTITIONS, &sent).await.expect("send");
            producer.flush(TIMEOUT).expect("flush");
            expected.extend(sent);
        }
        // Every producer commits at once, as the subtasks of a sink do on checkpoint completion.
        std::thread::scope(|s| {
            for producer in &producers {
                s.spawn(move || producer.commit_transaction(TIMEOUT).expect("commit"));
            }
        });
    }
    drop(producers);
    // A restart: each id initialised again (epoch bump), as a recovery's fencing does.
    let restarted: Vec<_> = ids.iter().map(|id| transactional_producer(id).expect("restart")).collect();
    drop(restarted);

    let bootstrap = cluster();
    for partition in 0..PARTITIONS {
        let mut ends = partition_ends(&bootstrap, &topic, partition).await.expect("partition ends");
        for _ in 0..20 {
            if ends.last_stable_offset == ends.high_watermark {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            ends = partition_ends(&bootstrap, &topic, partition).await.expect("partition ends");
        }
        let PartitionEnds { high_watermark, last_stable_offset } = ends;
        assert_eq!(
            last_stable_offset, high_watermark,
            "partition {partition}: the last stable offset stays behind (no transaction is open)"
        );
    }
    let read = read_all(&topic, PARTITIONS, Isolation::ReadCommitted).expect("read committed");
    expected.sort();
    assert_eq!(payloads(&read), expected);
}
