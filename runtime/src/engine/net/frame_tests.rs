use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::record::Record;
use crate::value::{Fields, Value};

fn ch(edge: usize, from: u32, to: u32) -> ChannelId {
    ChannelId { edge, from, to }
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => Value::Int(match rng.random_range(0..3) {
            0 => rng.random_range(-300..300),
            1 => i64::MIN,
            _ => rng.random(),
        }),
        3 => Value::Float(f64::from_bits(rng.random())),
        4 => {
            let n = rng.random_range(0..20);
            Value::str(&(0..n).map(|_| rng.random_range('a'..='ö')).collect::<String>())
        }
        5 => Value::List(Arc::new((0..rng.random_range(0..4)).map(|_| random_value(rng, depth + 1)).collect())),
        _ => {
            let m: Fields = (0..rng.random_range(0..4))
                .map(|i| (Arc::from(format!("k{i}").as_str()), random_value(rng, depth + 1)))
                .collect();
            Value::Map(Arc::new(m))
        }
    }
}

fn random_message(rng: &mut StdRng) -> Message {
    match rng.random_range(0..6) {
        0 => Message::Watermark(rng.random()),
        1 => Message::Barrier(Barrier {
            id: CheckpointId(rng.random()),
            kind: [BarrierKind::Checkpoint, BarrierKind::Final, BarrierKind::Savepoint, BarrierKind::StopSavepoint]
                [rng.random_range(0..4)],
        }),
        2 => Message::End,
        _ => Message::Batch(
            (0..rng.random_range(0..300))
                .map(|_| Record { key: random_value(rng, 0), ts: rng.random(), value: random_value(rng, 0) })
                .collect(),
        ),
    }
}

/// `Message` has no `PartialEq` (batches are moved, never compared in the engine).
fn same(a: &Message, b: &Message) -> bool {
    match (a, b) {
        (Message::Batch(x), Message::Batch(y)) => x == y,
        (Message::Watermark(x), Message::Watermark(y)) => x == y,
        (Message::Barrier(x), Message::Barrier(y)) => x == y,
        (Message::End, Message::End) => true,
        _ => false,
    }
}

/// Splits a buffer of whole frames into their bodies (an independent reading of the layout).
fn bodies(buf: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    out
}

#[test]
fn random_messages_round_trip_through_one_shared_buffer() {
    let seed: u64 = rand::rng().random();
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..50 {
        let sent: Vec<(ChannelId, Message)> = (0..rng.random_range(1..40))
            .map(|_| {
                let c = ch(rng.random_range(0..1 << 20), rng.random(), rng.random());
                (c, random_message(&mut rng))
            })
            .collect();
        let mut buf = Vec::new();
        for (c, m) in &sent {
            encode_message(&mut buf, *c, m).expect("encodes");
        }
        let got = bodies(&buf);
        assert_eq!(got.len(), sent.len(), "seed {seed} round {round}");
        for ((c, m), body) in sent.iter().zip(got) {
            match decode(body) {
                Ok(Frame::Message(gc, gm)) => {
                    assert_eq!(gc, *c, "seed {seed}");
                    assert!(same(&gm, m), "seed {seed}: {m:?} came back as {gm:?}");
                }
                other => panic!("seed {seed}: {other:?}"),
            }
        }
    }
}

#[test]
fn control_and_handshake_frames_round_trip() {
    let mut buf = Vec::new();
    encode_credit(&mut buf, ch(3, 1, 2), 17);
    encode_close(&mut buf, ch(0, 0, 9));
    let hello = Hello { version: VERSION, from: 1, to: 2, count: 3, attempt: "job-a/7".into() };
    encode_hello(&mut buf, &hello);
    encode_welcome(&mut buf, 2, "job-a/7");
    encode_refuse(&mut buf, "wrong attempt");
    let frames: Vec<Frame> = bodies(&buf).into_iter().map(|b| decode(b).expect("decodes")).collect();
    assert!(matches!(frames[0], Frame::Credit(c, 17) if c == ch(3, 1, 2)));
    assert!(matches!(frames[1], Frame::Close(c) if c == ch(0, 0, 9)));
    assert!(matches!(&frames[2], Frame::Hello(h) if *h == hello));
    assert!(matches!(&frames[3], Frame::Welcome(2, a) if a == "job-a/7"));
    assert!(matches!(&frames[4], Frame::Refuse(r) if r == "wrong attempt"));
}

#[test]
fn every_truncation_of_a_body_is_a_typed_error() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut buf = Vec::new();
    let batch: Vec<Record> =
        (0..20).map(|_| Record { key: random_value(&mut rng, 0), ts: 5, value: random_value(&mut rng, 0) }).collect();
    encode_message(&mut buf, ch(1, 2, 3), &Message::Batch(batch)).expect("encodes");
    encode_message(&mut buf, ch(1, 2, 3), &Message::Barrier(Barrier { id: CheckpointId(9), kind: BarrierKind::Final }))
        .expect("encodes");
    encode_hello(&mut buf, &Hello { version: 1, from: 0, to: 1, count: 2, attempt: "a".into() });
    for body in bodies(&buf) {
        for cut in 0..body.len() {
            assert!(decode(&body[..cut]).is_err(), "cut at {cut} of {}", body.len());
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(FrameError::Trailing(1))));
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(rand::rng().random());
    for _ in 0..20_000 {
        let n = rng.random_range(0..64);
        let mut body: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        if let Some(k) = body.first_mut() {
            *k %= 20; // mostly known kinds, so the bodies get parsed
        }
        let _ = decode(&body);
    }
    assert!(matches!(decode(&[99]), Err(FrameError::UnknownKind(99))));
    assert!(matches!(decode(&[]), Err(FrameError::UnknownKind(0))));
    // A count of records that cannot fit is refused before anything is allocated.
    let mut huge = vec![DATA, 0, 0, 0];
    write_varint(&mut huge, u64::MAX >> 1);
    assert!(matches!(decode(&huge), Err(FrameError::Malformed(_))));
}

#[tokio::test]
async fn a_stream_reads_back_frame_by_frame_and_a_cut_stream_is_truncated() {
    let mut buf = Vec::new();
    encode_message(&mut buf, ch(0, 0, 0), &Message::Watermark(-3)).expect("encodes");
    encode_message(&mut buf, ch(0, 0, 0), &Message::End).expect("encodes");
    let mut body = Vec::new();
    let mut r = &buf[..];
    assert!(read_frame(&mut r, &mut body).await.expect("first"));
    assert!(matches!(decode(&body), Ok(Frame::Message(_, Message::Watermark(-3)))));
    assert!(read_frame(&mut r, &mut body).await.expect("second"));
    assert!(matches!(decode(&body), Ok(Frame::Message(_, Message::End))));
    assert!(!read_frame(&mut r, &mut body).await.expect("clean end"));
    for cut in 1..buf.len() {
        let mut r = &buf[..cut];
        let mut ok = 0;
        let err = loop {
            match read_frame(&mut r, &mut body).await {
                Ok(true) => ok += 1,
                Ok(false) => break None,
                Err(e) => break Some(e),
            }
        };
        // A cut exactly between the two frames is a clean end after one frame.
        if ok == 1 && err.is_none() {
            continue;
        }
        assert!(matches!(err, Some(ReadError::Frame(FrameError::Truncated))), "cut at {cut}: {err:?}");
    }
    let mut r: &[u8] = &[0xff, 0xff, 0xff, 0xff];
    assert!(matches!(read_frame(&mut r, &mut body).await, Err(ReadError::Frame(FrameError::TooLarge(_)))));
}
