//! The Kafka source's consumer lag on `/metrics` of a real runtime process, against the test
//! broker: a topic of known size read slowly (rate-limited) reports a lag per partition that
//! accounts for every record not yet read, and reports zero once everything is read.
//! Needs `scripts/services/kafka.sh start` (fails with instructions otherwise).

#![cfg(feature = "kafka")]

mod common;
mod exposition;

use std::time::{Duration, Instant};

use common::{free_port, http};
use exposition::Scrape;
use sluice_runtime::verify::kafka as verify;

const PARTITIONS: i32 = 3;
const COUNT: u64 = 3_000;
/// Most records a source subtask takes in one poll (`record::BATCH_SIZE`): read, maybe not
/// counted in `records_out` yet when a lag report was made.
const BATCH: f64 = 1024.0;

fn scrape(addr: &str) -> Scrape {
    let (code, text) = http(addr, "GET", "/metrics", None).expect("GET /metrics");
    assert_eq!(code, 200, "{text}");
    exposition::parse(&text).unwrap_or_else(|e| panic!("unparsable scrape: {e}\n{text}"))
}

fn lags(s: &Scrape, topic: &str) -> Vec<f64> {
    (0..PARTITIONS)
        .filter_map(|p| {
            let want = [("node", "in"), ("topic", topic), ("partition", &*p.to_string())];
            s.select("sluice_runtime_kafka_consumer_lag_records", &want).next().map(|x| x.value)
        })
        .collect()
}

#[test]
fn kafka_consumer_lag_counts_the_unread_records_per_partition() {
    let brokers = common::kafka_brokers();
    let topic = format!("lag-{}", uuid::Uuid::new_v4().simple());
    verify::create_topic(&brokers, &topic, PARTITIONS).expect("topic");
    verify::produce(&brokers, &topic, COUNT, 97, 1_700_000_000_000).expect("produce");
    let dir = tempfile::tempdir().expect("tempdir");
    let job = dir.path().join("job.yaml");
    let yaml = format!(
        r#"name: {topic}
pipeline:
  parallelism: 2
  nodes:
    - id: in
      kafkaSource: {{bootstrapServers: "{brokers}", topic: {topic}, ratePerSecond: 400}}
    - id: out
      discard: {{}}
  edges:
    - {{from: in, to: out}}
"#
    );
    std::fs::write(&job, yaml).expect("write job");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice-runtime"))
            .args(["run", &job.display().to_string(), "--control-addr", &addr])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let start = Instant::now();
    let mut while_reading = None;
    let done = loop {
        assert!(start.elapsed() < Duration::from_secs(90), "lag never reached zero");
        assert!(child.0.try_wait().expect("try_wait").is_none(), "the job ended");
        std::thread::sleep(Duration::from_millis(200));
        let Ok((200, _)) = http(&addr, "GET", "/readyz", None) else { continue };
        let s = scrape(&addr);
        let lag = lags(&s, &topic);
        if lag.len() < PARTITIONS as usize {
            continue;
        }
        let read = s.sum("sluice_runtime_records_out_total", &[("node", "in")]);
        // A report is the end offset minus the position at its time: every record not read
        // then, and at most a poll more than the records counted read by now.
        let unread = COUNT as f64 - read;
        let total: f64 = lag.iter().sum();
        assert!(lag.iter().all(|&l| l >= 0.0), "{lag:?}");
        assert!(total <= COUNT as f64, "lag {total} of {COUNT}");
        assert!(total >= unread - BATCH * 2.0, "lag {total} with {unread} records unread");
        if unread > BATCH * 2.0 && while_reading.is_none() {
            while_reading = Some(total);
        }
        if read == COUNT as f64 && total == 0.0 {
            break s;
        }
    };
    drop(child);
    let while_reading = while_reading.expect("a scrape while more than two polls of records were unread");
    assert!(while_reading > 0.0);
    assert_eq!(done.select("sluice_runtime_kafka_consumer_lag_records", &[("topic", &*topic)]).count(), 3);
}

/// The runtime process, killed when the test ends (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
