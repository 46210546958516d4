//! Connections between workers: the lower index connects (retrying while the peer starts), the
//! higher one accepts; a handshake checks both belong to the same attempt; then a writer task
//! sends the peer's outgoing buffer and a reader task hands incoming frames to the channels.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

use super::frame::{self, Frame, FrameReader, Hello, VERSION, read_frame};
use super::peer::{Peer, Status};

/// What every connection of an exchange checks against.
pub(super) struct Local {
    /// This worker's index.
    pub index: usize,
    /// Number of workers.
    pub count: usize,
    /// The attempt.
    pub attempt: String,
    /// How long a peer may take to be reached (or to connect).
    pub connect_timeout: Duration,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
}

/// The reader's chunk (it reads at least this much at once), and the writer's first buffer (it
/// writes whatever the senders pushed since its last write, in one go).
const READ_BUFFER: usize = 1 << 20;

/// Connects to `peer` (a higher index), retrying with backoff until the connect timeout.
pub(super) async fn connect(local: Arc<Local>, peer: Arc<Peer>) {
    let deadline = Instant::now() + local.connect_timeout;
    let mut backoff = Duration::from_millis(20);
    loop {
        let last = match timeout(local.handshake_timeout, TcpStream::connect(peer.addr)).await {
            Ok(Ok(stream)) => match handshake_out(&local, &peer, stream).await {
                Ok(stream) => {
                    if peer.claim() {
                        run(peer, stream);
                    }
                    return;
                }
                // A refusal is retried too: the process at the address may be a worker of an
                // older attempt, not yet gone, whose place ours is about to take. If nobody else
                // comes, the last reason names what answered instead.
                Err(Outcome::Refused(reason)) => format!("refused the connection: {reason}"),
                Err(Outcome::Retry(e)) => e,
            },
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".to_string(),
        };
        peer.metrics.connect_failures.inc();
        if peer.failure().is_some() {
            return;
        }
        if Instant::now() + backoff > deadline {
            return peer.fail(format!("not reachable within {:?}: {last}", local.connect_timeout));
        }
        tracing::debug!(peer = peer.worker, "exchange: connecting again in {backoff:?}: {last}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

enum Outcome {
    /// The peer answered and said no (retried until the connect timeout all the same).
    Refused(String),
    /// The peer was not there (yet), or the connection broke.
    Retry(String),
}

async fn handshake_out(local: &Local, peer: &Peer, mut stream: TcpStream) -> Result<TcpStream, Outcome> {
    let hello = Hello {
        version: VERSION,
        from: local.index as u32,
        to: peer.worker as u32,
        count: local.count as u32,
        attempt: local.attempt.clone(),
    };
    let mut buf = Vec::new();
    frame::encode_hello(&mut buf, &hello);
    let answer = timeout(local.handshake_timeout, async {
        stream.write_all(&buf).await?;
        let mut body = Vec::new();
        if !read_frame(&mut stream, &mut body).await.map_err(|e| std::io::Error::other(e.to_string()))? {
            return Err(std::io::Error::other("closed during the handshake"));
        }
        Ok(body)
    })
    .await;
    let body = match answer {
        Ok(Ok(body)) => body,
        Ok(Err(e)) => return Err(Outcome::Retry(e.to_string())),
        Err(_) => return Err(Outcome::Retry("handshake timed out".into())),
    };
    match frame::decode(&body) {
        Ok(Frame::Welcome(worker, attempt)) if worker as usize == peer.worker && attempt == local.attempt => Ok(stream),
        Ok(Frame::Welcome(worker, attempt)) => Err(Outcome::Refused(format!(
            "answered as worker {worker} of attempt {attempt:?}; expected worker {} of attempt {:?}",
            peer.worker, local.attempt
        ))),
        Ok(Frame::Refuse(reason)) => Err(Outcome::Refused(reason)),
        Ok(other) => Err(Outcome::Refused(format!("unexpected handshake answer {other:?}"))),
        Err(e) => Err(Outcome::Refused(format!("not a Sluice exchange: {e}"))),
    }
}

/// Accepts the connections of the lower-index workers.
pub(super) async fn accept(local: Arc<Local>, listener: TcpListener, peers: Vec<Option<Arc<Peer>>>) {
    let peers = Arc::new(peers);
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let (local, peers) = (local.clone(), peers.clone());
                tokio::spawn(async move {
                    if let Err(reason) = handshake_in(&local, &peers, stream).await {
                        tracing::warn!(%from, "exchange: refused a connection: {reason}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("exchange: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handshake_in(local: &Local, peers: &[Option<Arc<Peer>>], mut stream: TcpStream) -> Result<(), String> {
    let mut body = Vec::new();
    let read = timeout(local.handshake_timeout, read_frame(&mut stream, &mut body)).await;
    let hello = match read {
        Err(_) => return Err("no handshake in time".into()),
        Ok(Err(e)) => return Err(format!("handshake: {e}")),
        Ok(Ok(false)) => return Err("closed before the handshake".into()),
        Ok(Ok(true)) => match frame::decode(&body) {
            Ok(Frame::Hello(h)) => h,
            Ok(other) => return refuse(&mut stream, format!("expected a hello, got {other:?}")).await,
            Err(e) => return refuse(&mut stream, format!("not a Sluice exchange hello: {e}")).await,
        },
    };
    let from = hello.from as usize;
    let problem = if hello.version != VERSION {
        Some(format!("protocol version {} is not this worker's {VERSION}", hello.version))
    } else if hello.attempt != local.attempt {
        Some(format!("attempt {:?} is not this worker's attempt {:?}", hello.attempt, local.attempt))
    } else if hello.count as usize != local.count {
        Some(format!("{} workers expected, this attempt has {}", hello.count, local.count))
    } else if hello.to as usize != local.index {
        Some(format!("this is worker {}, not {}", local.index, hello.to))
    } else if from >= local.index {
        Some(format!("worker {from} must wait for worker {}'s connection, not connect", local.index))
    } else {
        None
    };
    if let Some(p) = problem {
        return refuse(&mut stream, p).await;
    }
    let Some(peer) = peers.get(from).and_then(Option::as_ref) else {
        return refuse(&mut stream, format!("no worker {from}")).await;
    };
    if !peer.claim() {
        return refuse(&mut stream, format!("worker {from} is already connected (or failed)")).await;
    }
    let mut buf = Vec::new();
    frame::encode_welcome(&mut buf, local.index as u32, &local.attempt);
    match timeout(local.handshake_timeout, stream.write_all(&buf)).await {
        Ok(Ok(())) => {
            run(peer.clone(), stream);
            Ok(())
        }
        Ok(Err(e)) => {
            peer.fail(format!("handshake failed: {e}"));
            Err(e.to_string())
        }
        Err(_) => {
            peer.fail("handshake timed out".into());
            Err("handshake timed out".into())
        }
    }
}

async fn refuse(stream: &mut TcpStream, reason: String) -> Result<(), String> {
    let mut buf = Vec::new();
    frame::encode_refuse(&mut buf, &reason);
    let _ = timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&buf).await;
        let _ = stream.shutdown().await;
    })
    .await;
    Err(reason)
}

/// Fails `peer` if nobody connected as it within the connect timeout.
pub(super) async fn expect(local: Arc<Local>, peer: Arc<Peer>) {
    tokio::time::sleep(local.connect_timeout).await;
    if *peer.status.borrow() == Status::Waiting {
        peer.fail(format!("did not connect within {:?}", local.connect_timeout));
    }
}

/// Starts the connection's writer and reader.
fn run(peer: Arc<Peer>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    peer.metrics.connections.inc();
    let (r, w) = stream.into_split();
    let writer = tokio::spawn(write_loop(peer.clone(), w));
    let reader = tokio::spawn(read_loop(peer.clone(), r));
    let mut tasks = peer.tasks.lock().unwrap_or_else(|p| p.into_inner());
    tasks.push(reader.abort_handle());
    tasks.push(writer.abort_handle());
    drop(tasks);
    if peer.failure().is_some() {
        reader.abort();
        writer.abort();
    }
    *peer.writer.lock().unwrap_or_else(|p| p.into_inner()) = Some(writer);
}

async fn write_loop(peer: Arc<Peer>, mut w: OwnedWriteHalf) {
    let mut chunk: Vec<u8> = Vec::with_capacity(READ_BUFFER);
    loop {
        let closed = {
            let mut out = peer.out.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut out.bytes, &mut chunk);
            out.closed
        };
        if chunk.is_empty() {
            if closed || peer.failure().is_some() {
                let _ = w.shutdown().await;
                return;
            }
            peer.wake.notified().await;
            continue;
        }
        if let Err(e) = w.write_all(&chunk).await {
            return peer.fail(format!("connection lost: {e}"));
        }
        peer.metrics.bytes_sent.inc_by(chunk.len() as u64);
        chunk.clear();
        if chunk.capacity() > 16 * READ_BUFFER {
            chunk = Vec::with_capacity(READ_BUFFER);
        }
    }
}

async fn read_loop(peer: Arc<Peer>, mut r: OwnedReadHalf) {
    let mut reader = FrameReader::new(READ_BUFFER);
    loop {
        let problem = match reader.next(&mut r).await {
            Ok(Some(body)) => {
                peer.metrics.bytes_received.inc_by(body.len() as u64 + 4);
                match frame::decode_incoming(body).map_err(|e| e.to_string()).and_then(|f| peer.on_frame(f)) {
                    Ok(()) => continue,
                    Err(e) => format!("protocol error: {e}"),
                }
            }
            Ok(None) if !peer.has_open_inbound() => return peer.close("closed the connection".into()),
            Ok(None) => "closed the connection with channels still open".to_string(),
            Err(e) => format!("connection lost: {e}"),
        };
        return peer.fail(problem);
    }
}
