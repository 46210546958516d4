//! The exchange's throughput against a raw loopback TCP copy, in the same run (an ignored test:
//! `cargo test --release --workspace --lib engine::net::bench -- --ignored --nocapture`).
//!
//! Three record shapes, each sent as batches of 1024 on one channel between two exchanges of
//! this process over loopback (the receiving side decodes every record and drops it): small
//! (int key, timestamp, int value), wide (a 200-byte string value) and a Nexmark bid event (the
//! map `ops/nexmark` makes: two levels, twelve field names, three strings). Each is also sent
//! through an in-process channel of the same capacity: what the engine does without a network
//! (a batch moves, nothing is encoded), the ceiling of records per second for that shape; and
//! through the codec alone on one thread (encode; decode and drop), what a record costs the
//! two tasks without I/O, wake-ups or credit.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tests::{ch, mesh, recv};
use super::*;
use crate::engine::message::Message;
use crate::record::Record;
use crate::value::{Fields, Value};

/// Bytes per second of one loopback connection carrying large writes.
async fn raw_tcp(total: usize) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let reader = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0;
        loop {
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                return got;
            }
            got += n;
        }
    });
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let chunk = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        s.write_all(&chunk).await.expect("write");
        sent += chunk.len();
    }
    s.shutdown().await.expect("shutdown");
    let got = reader.await.expect("reader");
    assert_eq!(got, sent);
    got as f64 / start.elapsed().as_secs_f64()
}

/// One shape's figures.
struct Run {
    bytes_per_sec: f64,
    records_per_sec: f64,
    /// Seconds the sender waited for credit.
    credit_wait: f64,
    secs: f64,
}

/// Sends `batches` copies of `template` on `tx` then the end; counts what `rx` gets.
async fn pump(
    mut tx: Box<dyn MessageSender>,
    mut rx: Box<dyn MessageReceiver>,
    template: Vec<Record>,
    batches: usize,
) -> (u64, f64) {
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for _ in 0..batches {
            tx.send(Message::Batch(template.clone())).await.expect("send");
        }
        tx.send(Message::End).await.expect("end");
    });
    let mut records = 0u64;
    while let Some(m) = recv(&mut rx).await {
        match m {
            Message::Batch(b) => records += b.len() as u64,
            Message::End => break,
            _ => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    sender.await.expect("sender");
    (records, secs)
}

/// One exchange channel between two workers carrying `batches` batches of `template`.
async fn exchange(batches: usize, template: &[Record]) -> Run {
    let (xs, ms) = mesh(2, 16, &["bench"], |c| (c.from as usize, c.to as usize)).await;
    let tx = xs[0].sender(ch(0, 0, 1)).expect("sender");
    let rx = xs[1].receiver(ch(0, 0, 1)).expect("receiver");
    for x in &xs {
        x.ready().await.expect("connected");
    }
    let (records, secs) = pump(tx, rx, template.to_vec(), batches).await;
    assert_eq!(records, (batches * template.len()) as u64);
    let peer = ms[0].peer(1);
    let bytes = peer.bytes_sent.get() as f64;
    let credit_wait = peer.credit_wait.get();
    for x in xs {
        x.shutdown().await;
    }
    Run { bytes_per_sec: bytes / secs, records_per_sec: records as f64 / secs, credit_wait, secs }
}

/// The same over an in-process channel: records per second.
async fn in_process(batches: usize, template: &[Record]) -> f64 {
    let x = LocalExchange::with_capacity(16);
    let tx = x.sender(ch(0, 0, 1)).expect("sender");
    let rx = x.receiver(ch(0, 0, 1)).expect("receiver");
    let (records, secs) = pump(tx, rx, template.to_vec(), batches).await;
    records as f64 / secs
}

/// The codec alone on this thread: records per second encoded, and decoded then dropped (what
/// a record costs the sending and the receiving task, without I/O, wake-ups or credit).
fn codec_alone(template: &[Record], rounds: usize) -> (f64, f64) {
    let mut buf = Vec::new();
    let start = Instant::now();
    for _ in 0..rounds {
        buf.clear();
        codec::encode_batch(&mut buf, template).expect("encodes");
    }
    let encode = (rounds * template.len()) as f64 / start.elapsed().as_secs_f64();
    let mut decoder = codec::BatchDecoder::default();
    let start = Instant::now();
    for _ in 0..rounds {
        let batch = decoder.decode_batch(&buf).expect("decodes");
        assert_eq!(batch.len(), template.len());
    }
    let decode = (rounds * template.len()) as f64 / start.elapsed().as_secs_f64();
    (encode, decode)
}

fn small(i: i64) -> Record {
    Record { key: Value::Int(i % 1000), ts: 1_700_000_000_000 + i, value: Value::Int(i) }
}

fn wide(i: i64) -> Record {
    Record { key: Value::Int(i % 1000), ts: 1_700_000_000_000 + i, value: Value::str(&"x".repeat(200)) }
}

/// A Nexmark bid event as `ops/nexmark/record.rs` makes it (field names shared, as there).
fn bids() -> Vec<Record> {
    let names: Vec<Arc<str>> =
        ["event_type", "dateTime", "person", "auction", "bid", "bidder", "price", "channel", "url", "extra"]
            .iter()
            .map(|n| Arc::from(*n))
            .collect();
    let map = |fields: Vec<(usize, Value)>| -> Value {
        Value::Map(Arc::new(fields.into_iter().map(|(i, v)| (names[i].clone(), v)).collect::<Fields>()))
    };
    (0..1024i64)
        .map(|i| {
            let t = 1_700_000_000_000 + i;
            let bid = map(vec![
                (3, Value::Int(1000 + i % 97)),
                (5, Value::Int(2000 + i % 1013)),
                (6, Value::Int(100 + i * 37 % 10_000)),
                (7, Value::str(["Google", "Facebook", "Baidu", "Apple"][(i % 4) as usize])),
                (8, Value::str(&format!("https://www.nexmark.com/item.htm?query=1&channel_id={}", i % 1000))),
                (1, Value::Int(t)),
                (9, Value::str("")),
            ]);
            let value = map(vec![(0, Value::Int(2)), (1, Value::Int(t)), (2, Value::Null), (3, Value::Null), (4, bid)]);
            Record { key: Value::Int(1000 + i % 97), ts: t, value }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
async fn bench_exchange_against_raw_tcp() {
    let raw = raw_tcp(2 << 30).await;
    let shapes: [(&str, Vec<Record>, usize); 3] = [
        ("small", (0..1024).map(small).collect(), 10_000),
        ("wide", (0..1024).map(wide).collect(), 4_000),
        ("bid", bids(), 4_000),
    ];
    let mut runs = Vec::new();
    for (name, template, batches) in &shapes {
        let net = exchange(*batches, template).await;
        let local = in_process(*batches, template).await;
        let codec = codec_alone(template, batches / 4);
        runs.push((name, net, local, codec));
    }
    let raw_again = raw_tcp(2 << 30).await;
    let ceiling = raw.max(raw_again);
    let mb = |b: f64| b / 1e6;
    println!("RESULT rawTcpMBps={:.0} rawTcpAgainMBps={:.0}", mb(raw), mb(raw_again));
    for (name, net, local, (encode, decode)) in runs {
        println!(
            "RESULT {name}: exchangeMBps={:.1} exchangeRecPerSec={:.0} ratioToRawTcp={:.3} bytesPerRecord={:.1} \
             inProcessRecPerSec={:.0} ratioToInProcess={:.3} creditWaitSecs={:.3} of {:.3} \
             codecAloneEncodeRecPerSec={encode:.0} codecAloneDecodeDropRecPerSec={decode:.0}",
            mb(net.bytes_per_sec),
            net.records_per_sec,
            net.bytes_per_sec / ceiling,
            net.bytes_per_sec / net.records_per_sec,
            local,
            net.records_per_sec / local,
            net.credit_wait,
            net.secs,
        );
    }
}
