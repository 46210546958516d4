//! The exchange's throughput against a raw loopback TCP copy, in the same run (an ignored test:
//! `cargo test --release -p sluice-runtime --lib engine::net::bench -- --ignored --nocapture`).

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tests::{ch, mesh, recv};
use super::*;
use crate::engine::message::Message;
use crate::record::Record;
use crate::value::Value;

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

/// Wire bytes per second and records per second of one exchange channel carrying batches of
/// 1024 records made by `record`.
async fn exchange(batches: usize, record: fn(i64) -> Record) -> (f64, f64) {
    let (xs, ms) = mesh(2, 16, &["bench"], |c| (c.from as usize, c.to as usize)).await;
    let mut tx = xs[0].sender(ch(0, 0, 1)).expect("sender");
    let mut rx = xs[1].receiver(ch(0, 0, 1)).expect("receiver");
    for x in &xs {
        x.ready().await.expect("connected");
    }
    let template: Vec<Record> = (0..1024).map(record).collect();
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
    assert_eq!(records, batches as u64 * 1024);
    let bytes = ms[0].peer(1).bytes_sent.get() as f64;
    for x in xs {
        x.shutdown().await;
    }
    (bytes / secs, records as f64 / secs)
}

fn small(i: i64) -> Record {
    Record { key: Value::Int(i % 1000), ts: 1_700_000_000_000 + i, value: Value::Int(i) }
}

fn wide(i: i64) -> Record {
    Record { key: Value::Int(i % 1000), ts: 1_700_000_000_000 + i, value: Value::str(&"x".repeat(200)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --release -- --ignored --nocapture"]
async fn bench_exchange_against_raw_tcp() {
    let raw = raw_tcp(2 << 30).await;
    let (small_bps, small_rps) = exchange(10_000, small).await;
    let (wide_bps, wide_rps) = exchange(2_000, wide).await;
    let raw_again = raw_tcp(2 << 30).await;
    let mb = |b: f64| b / 1e6;
    println!(
        "RESULT rawTcpMBps={:.0} rawTcpAgainMBps={:.0} smallMBps={:.1} smallRecPerSec={:.0} smallRatio={:.3} \
         wideMBps={:.1} wideRecPerSec={:.0} wideRatio={:.3}",
        mb(raw),
        mb(raw_again),
        mb(small_bps),
        small_rps,
        small_bps / raw.max(raw_again),
        mb(wide_bps),
        wide_rps,
        wide_bps / raw.max(raw_again),
    );
}
