//! Exchanges on loopback sockets in one process.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sluice_crds::CheckpointId;
use tokio::io::AsyncWriteExt;

use super::frame::{self, Hello, VERSION};
use super::*;
use crate::engine::message::{Barrier, BarrierKind, Message};
use crate::record::Record;
use crate::value::Value;

/// Test failures come from a guard of this length, never from a measured time.
const GUARD: Duration = Duration::from_secs(60);

pub(super) fn ch(edge: usize, from: u32, to: u32) -> ChannelId {
    ChannelId { edge, from, to }
}

/// `n` exchanges on loopback, every one located by `locate`, not yet connected.
pub(super) async fn mesh(
    n: usize,
    credits: u32,
    attempts: &[&str],
    locate: fn(ChannelId) -> (usize, usize),
) -> (Vec<NetExchange>, Vec<NetMetrics>) {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().expect("addr")).collect();
    let mut xs = Vec::new();
    let mut ms = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let mut c = NetConfig::new(i, addrs.clone(), attempts[i.min(attempts.len() - 1)]);
        c.credits = credits;
        c.connect_timeout = Duration::from_secs(3);
        let m = NetMetrics::default();
        xs.push(NetExchange::with_listener(c, l, Box::new(locate), &m).expect("start"));
        ms.push(m);
    }
    (xs, ms)
}

pub(super) async fn recv(rx: &mut Box<dyn MessageReceiver>) -> Option<Message> {
    tokio::time::timeout(GUARD, poll_fn(|cx| rx.poll_recv(cx))).await.expect("a message within the guard")
}

fn copy(m: &Message) -> Message {
    match m {
        Message::Batch(b) => Message::Batch(b.clone()),
        Message::Watermark(w) => Message::Watermark(*w),
        Message::Barrier(b) => Message::Barrier(*b),
        Message::End => Message::End,
    }
}

fn same(a: &Message, b: &Message) -> bool {
    match (a, b) {
        (Message::Batch(x), Message::Batch(y)) => x == y,
        (Message::Watermark(x), Message::Watermark(y)) => x == y,
        (Message::Barrier(x), Message::Barrier(y)) => x == y,
        (Message::End, Message::End) => true,
        _ => false,
    }
}

/// What a channel's sender sends: batches of random sizes with watermarks and barriers in
/// between, then the end. Records carry the channel and a sequence number, so a message of
/// another channel, a duplicate or a gap shows.
fn script(rng: &mut StdRng, c: ChannelId) -> Vec<Message> {
    let mut seq = 0i64;
    let mut out = Vec::new();
    for step in 0..rng.random_range(5..60) {
        match rng.random_range(0..10) {
            0 => out.push(Message::Watermark(seq)),
            1 => out.push(Message::Barrier(Barrier { id: CheckpointId(step), kind: BarrierKind::Checkpoint })),
            _ => {
                let n = rng.random_range(0..1500);
                let key = Value::Int(((c.edge as i64) << 40) | (i64::from(c.from) << 20) | i64::from(c.to));
                out.push(Message::Batch(
                    (0..n)
                        .map(|_| {
                            seq += 1;
                            let value = if seq % 3 == 0 { Value::str(&format!("v{seq}")) } else { Value::Int(seq) };
                            Record { key: key.clone(), ts: seq, value }
                        })
                        .collect(),
                ));
            }
        }
    }
    out.push(Message::End);
    out
}

/// Split-located channels: upstream subtask `from` runs on worker `from % 3`, downstream `to` on
/// `to % 3` (so some channels are in process).
fn by_three(c: ChannelId) -> (usize, usize) {
    (c.from as usize % 3, c.to as usize % 3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_every_channel_arrives_once_and_in_order() {
    let seed: u64 = rand::rng().random();
    let mut rng = StdRng::seed_from_u64(seed);
    let (xs, ms) = mesh(3, 3, &["job/1"], by_three).await;
    let mut expected = Vec::new();
    let mut sends = tokio::task::JoinSet::new();
    let mut recvs = tokio::task::JoinSet::new();
    for edge in 0..3 {
        for from in 0..4 {
            for to in 0..4 {
                let c = ch(edge, from, to);
                let (up, down) = by_three(c);
                let msgs = script(&mut rng, c);
                expected.push((c, msgs.iter().map(copy).collect::<Vec<_>>()));
                let mut tx = xs[up].sender(c).expect("sender");
                let mut rx = xs[down].receiver(c).expect("receiver");
                sends.spawn(async move {
                    for m in msgs {
                        tx.send(m).await.expect("send");
                    }
                });
                recvs.spawn(async move {
                    let mut got = Vec::new();
                    while let Some(m) = recv(&mut rx).await {
                        let end = matches!(m, Message::End);
                        got.push(m);
                        if end {
                            break;
                        }
                    }
                    (c, got)
                });
            }
        }
    }
    for x in &xs {
        x.ready().await.expect("connected");
    }
    while let Some(r) = sends.join_next().await {
        r.expect("sender task");
    }
    let mut received = Vec::new();
    while let Some(r) = recvs.join_next().await {
        received.push(r.expect("receiver task"));
    }
    received.sort_by_key(|(c, _)| *c);
    expected.sort_by_key(|(c, _)| *c);
    assert_eq!(received.len(), expected.len());
    for ((c, got), (ec, want)) in received.iter().zip(&expected) {
        assert_eq!(c, ec);
        assert_eq!(got.len(), want.len(), "seed {seed}: channel {c}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(same(g, w), "seed {seed}: channel {c}, message {i}: got {g:?}, sent {w:?}");
        }
    }
    // Batches crossed the wire (two thirds of the channels are remote) and were counted.
    let batches: u64 = ms.iter().flat_map(|m| (0..3).map(move |p| m.peer(p).batches_received.get())).sum();
    let sent: u64 = ms.iter().flat_map(|m| (0..3).map(move |p| m.peer(p).batches_sent.get())).sum();
    assert!(batches > 0);
    assert_eq!(batches, sent);
    assert!(xs.iter().all(|x| x.failure().is_none() && x.unpaired_local().is_empty()));
    for x in xs {
        x.shutdown().await;
    }
}

fn zero_to_one(c: ChannelId) -> (usize, usize) {
    (c.from as usize, c.to as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_without_credit_stalls_only_its_own_sender() {
    const CREDITS: u32 = 4;
    let (xs, ms) = mesh(2, CREDITS, &["a"], zero_to_one).await;
    let (stalled, flowing) = (ch(0, 0, 1), ch(1, 0, 1));
    let mut stalled_tx = xs[0].sender(stalled).expect("sender");
    let mut stalled_rx = xs[1].receiver(stalled).expect("receiver");
    let mut flowing_tx = xs[0].sender(flowing).expect("sender");
    let mut flowing_rx = xs[1].receiver(flowing).expect("receiver");
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let stalled_sender = tokio::spawn(async move {
        for i in 0..100 {
            stalled_tx.send(Message::Watermark(i)).await.expect("send");
            counter.fetch_add(1, Ordering::SeqCst);
        }
        stalled_tx.send(Message::End).await.expect("send end");
    });
    let flowing_sender = tokio::spawn(async move {
        for i in 0..2000 {
            let batch = (0..64).map(|j| Record { key: Value::Int(j), ts: i, value: Value::Int(i) }).collect();
            flowing_tx.send(Message::Batch(batch)).await.expect("send");
        }
        flowing_tx.send(Message::End).await.expect("send end");
    });
    // The other channel of the same connection flows to its end while the stalled one is
    // never read; the stalled sender never gets more messages out than its credit.
    let mut n = 0;
    while let Some(m) = recv(&mut flowing_rx).await {
        assert!(sent.load(Ordering::SeqCst) <= CREDITS as usize, "more in flight than credited");
        match m {
            Message::Batch(b) => {
                assert_eq!(b[0].ts, n);
                n += 1;
            }
            Message::End => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n, 2000);
    tokio::time::timeout(GUARD, flowing_sender).await.expect("flowing sender done").expect("task");
    // It used its whole credit and waits for more.
    tokio::time::timeout(GUARD, async {
        while sent.load(Ordering::SeqCst) < CREDITS as usize {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the stalled sender used its credit");
    assert_eq!(sent.load(Ordering::SeqCst), CREDITS as usize);
    assert!(!stalled_sender.is_finished());
    // Reading again releases it; its messages come in order.
    for i in 0..100 {
        assert!(matches!(recv(&mut stalled_rx).await, Some(Message::Watermark(w)) if w == i));
    }
    assert!(matches!(recv(&mut stalled_rx).await, Some(Message::End)));
    tokio::time::timeout(GUARD, stalled_sender).await.expect("stalled sender done").expect("task");
    assert!(ms[0].peer(1).credit_wait.get() > 0.0, "the wait for credit is counted");
    for x in xs {
        x.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_peer_fails_its_channels_with_an_error_naming_it() {
    let (mut xs, ms) = mesh(2, 4, &["a"], |c| (c.from as usize, c.to as usize)).await;
    let mut rx = xs[1].receiver(ch(0, 0, 1)).expect("receiver");
    let mut back_tx = xs[1].sender(ch(1, 1, 0)).expect("sender");
    let _back_rx = xs[0].receiver(ch(1, 1, 0)).expect("receiver");
    let mut tx = xs[0].sender(ch(0, 0, 1)).expect("sender");
    for x in &xs {
        x.ready().await.expect("connected");
    }
    tx.send(Message::Watermark(1)).await.expect("send");
    assert!(matches!(recv(&mut rx).await, Some(Message::Watermark(1))));
    assert!(rx.failure().is_none());
    // Worker 0 goes away mid-stream (its exchange dropped: its sockets close).
    let zero = xs.remove(0);
    drop(zero);
    drop(tx);
    assert!(recv(&mut rx).await.is_none(), "the channel closes");
    let failure = rx.failure().expect("a failure, not an end of stream");
    assert!(failure.0.contains("worker 0 (127.0.0.1:"), "{failure}");
    assert!(failure.0.contains("edge 0 (0 -> 1)"), "{failure}");
    // The surviving worker's sender towards it is closed, and the loss is counted.
    let mut closed = false;
    for _ in 0..1000 {
        if back_tx.send(Message::Watermark(2)).await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a sender to a lost peer gets Closed");
    assert!(xs[0].failure().is_some_and(|f| f.contains("worker 0")));
    assert_eq!(ms[1].peer(0).lost.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_attempt_is_refused_by_name() {
    let (xs, _) = mesh(2, 4, &["job/1", "job/2"], zero_to_one).await;
    let err = tokio::time::timeout(GUARD, xs[0].ready()).await.expect("answer").expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("worker 1") && text.contains("job/1") && text.contains("job/2"), "{text}");
    // The other never got a connection of its own attempt.
    let err = tokio::time::timeout(GUARD, xs[1].ready()).await.expect("answer").expect_err("nobody came");
    assert!(err.to_string().contains("worker 0"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_is_an_error_after_retries() {
    let spare = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = spare.local_addr().expect("addr");
    drop(spare);
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut c = NetConfig::new(0, vec![l.local_addr().expect("addr"), dead], "a");
    c.connect_timeout = Duration::from_millis(300);
    let m = NetMetrics::default();
    let x = NetExchange::with_listener(c, l, Box::new(zero_to_one), &m).expect("start");
    let err = tokio::time::timeout(GUARD, x.ready()).await.expect("answer").expect_err("unreachable");
    assert!(err.to_string().contains(&format!("worker 1 ({dead})")), "{err}");
    assert!(m.peer(1).connect_failures.get() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_without_credit_fails_the_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let m = NetMetrics::default();
    let one = NetExchange::with_listener(NetConfig::new(1, vec![addr, addr], "a"), l, Box::new(zero_to_one), &m)
        .expect("start");
    let mut rx = one.receiver(ch(0, 0, 1)).expect("receiver");
    // A rogue worker 0: a proper handshake, then more messages on a channel than its credit.
    let mut s = tokio::net::TcpStream::connect(one.local_addr()).await.expect("connect");
    let mut buf = Vec::new();
    frame::encode_hello(&mut buf, &Hello { version: VERSION, from: 0, to: 1, count: 2, attempt: "a".into() });
    for i in 0..17 {
        frame::encode_message(&mut buf, ch(0, 0, 1), &Message::Watermark(i)).expect("encode");
    }
    s.write_all(&buf).await.expect("write");
    // Nothing is read (and no credit returned) until the connection failed.
    tokio::time::timeout(GUARD, async {
        while one.failure().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the connection fails");
    for i in 0..16 {
        assert!(matches!(recv(&mut rx).await, Some(Message::Watermark(w)) if w == i));
    }
    assert!(recv(&mut rx).await.is_none());
    let failure = rx.failure().expect("failed");
    assert!(failure.0.contains("without credit") && failure.0.contains("worker 0"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_does_not_decode_fails_the_connection_and_ends_its_channel_with_the_error() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let m = NetMetrics::default();
    let one = NetExchange::with_listener(NetConfig::new(1, vec![addr, addr], "a"), l, Box::new(zero_to_one), &m)
        .expect("start");
    let mut rx = one.receiver(ch(0, 0, 1)).expect("receiver");
    // A rogue worker 0: a proper handshake, a good batch, then a data frame whose one record
    // has a value tag that does not exist. The reader routes data frames without decoding
    // their records: the receiving end finds it out.
    let mut s = tokio::net::TcpStream::connect(one.local_addr()).await.expect("connect");
    let mut buf = Vec::new();
    frame::encode_hello(&mut buf, &Hello { version: VERSION, from: 0, to: 1, count: 2, attempt: "a".into() });
    let good = vec![Record { key: Value::Int(1), ts: -5, value: Value::str("") }];
    frame::encode_message(&mut buf, ch(0, 0, 1), &Message::Batch(good.clone())).expect("encode");
    // DATA · channel (0, 0 -> 1) · 1 record: key Int(1), ts 0, value tag 99.
    let bad: &[u8] = &[1, 0, 0, 1, 1, 3, 2, 0, 99];
    buf.extend_from_slice(&(bad.len() as u32).to_le_bytes());
    buf.extend_from_slice(bad);
    s.write_all(&buf).await.expect("write");
    assert!(matches!(recv(&mut rx).await, Some(Message::Batch(b)) if b == good));
    assert!(recv(&mut rx).await.is_none(), "the channel ends");
    let failure = rx.failure().expect("with an error");
    assert!(
        failure.0.contains("worker 0") && failure.0.contains("protocol error") && failure.0.contains("tag 99"),
        "{failure}"
    );
    assert!(one.failure().is_some_and(|f| f.contains("protocol error")));
}
