//! One peer worker: the outgoing buffer its connection writes, the channels to and from it with
//! their credits, its status, and the sending and receiving ends handed to tasks.
//!
//! Credit: the receiving side grants each channel `credits` messages when its end is asked for
//! and one more for every message its task takes (sent back in batches of half the credits).
//! Every message — batch, watermark, barrier, end — takes one credit, so a channel buffers at
//! most `credits` messages on the receiving side, like an in-process channel of that capacity,
//! and its control messages stay in order behind its data. A sender without credit waits; the
//! other channels of the connection are not affected. A message that arrives without credit is a
//! protocol error that fails the connection.
//!
//! The connection's reader queues a data frame's records still encoded; the receiving end
//! decodes them when its task takes them (on that task's thread, with a decoder of its own). A
//! batch that does not decode is a protocol error too: it fails the connection, and the channel
//! ends with that error.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::{Notify, Semaphore, TryAcquireError, mpsc, watch};
use tokio::task::AbortHandle;

use super::codec::BatchDecoder;
use super::frame::{self, Frame, Incoming};
use super::metrics::PeerMetrics;
use crate::engine::channel::{ChannelFailure, ChannelId, Closed, MessageReceiver, MessageSender};
use crate::engine::message::Message;

/// Where a peer's connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not connected yet.
    Waiting,
    /// Connected; channels flow.
    Up,
    /// Shut down on purpose.
    Closed,
    /// Lost or never reached; the reason names the worker.
    Failed(String),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bytes waiting for the connection's writer.
#[derive(Default)]
pub(super) struct OutBuf {
    /// Whole frames, in the order they were pushed.
    pub bytes: Vec<u8>,
    /// No more frames are taken (failed, or shutting down: the writer drains what is left).
    pub closed: bool,
}

/// What the connection's reader queues for a receiving end.
enum Queued {
    /// A message decoded already (watermark, barrier, end).
    Message(Message),
    /// The records of a data frame, decoded by the receiving end.
    Data(Vec<u8>),
}

struct Inbound {
    tx: mpsc::UnboundedSender<Queued>,
    /// Messages the sender may still send: granted and not yet arrived.
    outstanding: AtomicU32,
}

/// The state shared by a peer's connection tasks and the channel ends on it.
pub(super) struct Peer {
    /// The peer's worker index.
    pub worker: usize,
    /// Its address.
    pub addr: SocketAddr,
    /// Credits granted per channel.
    credits: u32,
    pub out: Mutex<OutBuf>,
    /// Wakes the writer when `out` gets its first bytes (or closes).
    pub wake: Notify,
    /// Credit of the channels to the peer (created by the first of: sender asked, credit came).
    outbound: Mutex<HashMap<ChannelId, Arc<Semaphore>>>,
    /// The channels from the peer whose receiving end was asked for.
    inbound: Mutex<HashMap<ChannelId, Arc<Inbound>>>,
    failure: OnceLock<String>,
    pub status: watch::Sender<Status>,
    /// The connection's reader and writer, aborted on failure.
    pub tasks: Mutex<Vec<AbortHandle>>,
    /// The writer, which a shutdown lets finish.
    pub writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Counters.
    pub metrics: PeerMetrics,
}

impl Peer {
    /// A peer not connected yet.
    pub fn new(worker: usize, addr: SocketAddr, credits: u32, metrics: PeerMetrics) -> Peer {
        Peer {
            worker,
            addr,
            credits: credits.max(1),
            out: Mutex::default(),
            wake: Notify::new(),
            outbound: Mutex::default(),
            inbound: Mutex::default(),
            failure: OnceLock::new(),
            status: watch::Sender::new(Status::Waiting),
            tasks: Mutex::default(),
            writer: Mutex::default(),
            metrics,
        }
    }

    /// `worker 3 (10.0.0.7:7000)`.
    pub fn name(&self) -> String {
        format!("worker {} ({})", self.worker, self.addr)
    }

    /// Why the peer is gone, if it is.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Marks the peer connected, unless it already is or failed.
    pub fn claim(&self) -> bool {
        self.status.send_if_modified(|s| {
            let waiting = *s == Status::Waiting;
            if waiting {
                *s = Status::Up;
            }
            waiting
        })
    }

    /// Appends frames to the outgoing buffer (`Closed` once the peer failed or shuts down).
    fn push(&self, encode: impl FnOnce(&mut Vec<u8>) -> Result<(), frame::FrameError>) -> Result<(), Closed> {
        let mut out = lock(&self.out);
        if out.closed {
            return Err(Closed);
        }
        let was_empty = out.bytes.is_empty();
        if let Err(e) = encode(&mut out.bytes) {
            drop(out);
            self.fail(format!("cannot send: {e}"));
            return Err(Closed);
        }
        drop(out);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Hands whole frames to the writer: `frames` is swapped in when the writer took everything
    /// before (no copy; `frames` gets the writer's spent buffer back), appended otherwise.
    fn push_frames(&self, frames: &mut Vec<u8>) -> Result<(), Closed> {
        let mut out = lock(&self.out);
        if out.closed {
            return Err(Closed);
        }
        let was_empty = out.bytes.is_empty();
        if was_empty {
            std::mem::swap(&mut out.bytes, frames);
        } else {
            out.bytes.extend_from_slice(frames);
        }
        drop(out);
        if was_empty {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Fails the peer: `reason` is kept (the first one wins), senders get `Closed`, receivers
    /// end with the reason, the connection is dropped.
    pub fn fail(&self, reason: String) {
        self.end(reason, true);
    }

    /// Ends the peer as [`Peer::fail`] does, but as a planned end (shut down, or closed by the
    /// peer with no channel from it open): not counted as lost.
    pub fn close(&self, reason: String) {
        self.end(reason, false);
    }

    fn end(&self, reason: String, lost: bool) {
        let full = format!("{}: {reason}", self.name());
        if self.failure.set(full.clone()).is_err() {
            return;
        }
        let was = self.status.send_replace(if lost { Status::Failed(full.clone()) } else { Status::Closed });
        if lost {
            if was == Status::Up {
                self.metrics.lost.inc();
            }
            tracing::warn!(peer = self.worker, "exchange: {full}");
        } else {
            tracing::debug!(peer = self.worker, "exchange: {full}");
        }
        {
            let mut out = lock(&self.out);
            out.closed = true;
            out.bytes = Vec::new();
        }
        for credit in lock(&self.outbound).values() {
            credit.close();
        }
        lock(&self.inbound).clear();
        self.wake.notify_one();
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    /// Whether a channel from the peer is still open (its end message not arrived).
    pub fn has_open_inbound(&self) -> bool {
        !lock(&self.inbound).is_empty()
    }

    /// Stops taking frames; the writer sends what is buffered and closes its half.
    pub fn close_outgoing(&self) {
        lock(&self.out).closed = true;
        self.status.send_if_modified(|s| {
            let up = matches!(s, Status::Up | Status::Waiting);
            if up {
                *s = Status::Closed;
            }
            up
        });
        self.wake.notify_one();
    }

    /// The sending end of `channel` to this peer.
    pub fn sender(self: &Arc<Self>, channel: ChannelId) -> Box<dyn MessageSender> {
        let credit = self.credit_of(channel);
        if self.failure().is_some() {
            credit.close();
        }
        Box::new(NetSender { peer: self.clone(), channel, credit, scratch: Vec::new() })
    }

    fn credit_of(&self, channel: ChannelId) -> Arc<Semaphore> {
        lock(&self.outbound).entry(channel).or_insert_with(|| Arc::new(Semaphore::new(0))).clone()
    }

    /// The receiving end of `channel` from this peer; grants the channel its credits.
    pub fn receiver(self: &Arc<Self>, channel: ChannelId) -> Box<dyn MessageReceiver> {
        let (tx, rx) = mpsc::unbounded_channel();
        let inbound = Arc::new(Inbound { tx, outstanding: AtomicU32::new(self.credits) });
        if self.failure().is_none() {
            lock(&self.inbound).insert(channel, inbound);
            let _ = self.push(|b| {
                frame::encode_credit(b, channel, self.credits);
                Ok(())
            });
        }
        let threshold = (self.credits / 2).max(1);
        Box::new(NetReceiver {
            peer: self.clone(),
            channel,
            rx,
            decoder: BatchDecoder::default(),
            pending: 0,
            threshold,
            ended: false,
            broken: false,
        })
    }

    /// Handles a frame from the peer; an error fails the connection.
    pub fn on_frame(&self, f: Incoming) -> Result<(), String> {
        let (c, queued) = match f {
            Incoming::Data(c, records) => {
                self.metrics.batches_received.inc();
                (c, Queued::Data(records))
            }
            Incoming::Frame(Frame::Message(c, m)) => (c, Queued::Message(m)),
            Incoming::Frame(Frame::Credit(c, n)) => {
                self.credit_of(c).add_permits(n as usize);
                return Ok(());
            }
            Incoming::Frame(Frame::Close(c)) => {
                self.credit_of(c).close();
                return Ok(());
            }
            Incoming::Frame(other) => return Err(format!("unexpected frame after the handshake: {other:?}")),
        };
        let mut inbound = lock(&self.inbound);
        let Some(ch) = inbound.get(&c) else {
            return Err(format!("sent on channel {c}, which has no receiving end here"));
        };
        if ch.outstanding.load(Ordering::Acquire) == 0 {
            return Err(format!("sent on channel {c} without credit"));
        }
        ch.outstanding.fetch_sub(1, Ordering::AcqRel);
        let end = matches!(queued, Queued::Message(Message::End));
        // A receiving task that is gone drops what still arrives.
        let _ = ch.tx.send(queued);
        if end {
            inbound.remove(&c);
        }
        Ok(())
    }

    fn grant(&self, channel: ChannelId, n: u32) {
        let known = lock(&self.inbound).get(&channel).map(|ch| ch.outstanding.fetch_add(n, Ordering::AcqRel));
        if known.is_some() {
            let _ = self.push(|b| {
                frame::encode_credit(b, channel, n);
                Ok(())
            });
        }
    }
}

/// A channel's sending end: waits for credit, encodes the message into a buffer of its own
/// (senders of one connection encode in parallel), then hands it to the connection's writer.
struct NetSender {
    peer: Arc<Peer>,
    channel: ChannelId,
    credit: Arc<Semaphore>,
    scratch: Vec<u8>,
}

impl NetSender {
    async fn send_one(&mut self, msg: Message) -> Result<(), Closed> {
        match self.credit.try_acquire() {
            Ok(p) => p.forget(),
            Err(TryAcquireError::Closed) => return Err(Closed),
            Err(TryAcquireError::NoPermits) => {
                let waited = Instant::now();
                let p = self.credit.acquire().await.map_err(|_| Closed)?;
                p.forget();
                self.peer.metrics.credit_wait.inc_by(waited.elapsed().as_secs_f64());
            }
        }
        self.scratch.clear();
        if let Err(e) = frame::encode_message(&mut self.scratch, self.channel, &msg) {
            self.peer.fail(format!("cannot send on channel {}: {e}", self.channel));
            return Err(Closed);
        }
        self.peer.push_frames(&mut self.scratch)?;
        if let Message::Batch(_) = &msg {
            self.peer.metrics.batches_sent.inc();
        }
        Ok(())
    }
}

impl MessageSender for NetSender {
    fn send(&mut self, msg: Message) -> Pin<Box<dyn Future<Output = Result<(), Closed>> + Send + '_>> {
        Box::pin(self.send_one(msg))
    }
}

/// A channel's receiving end: takes what the connection's reader queued and returns credit.
struct NetReceiver {
    peer: Arc<Peer>,
    channel: ChannelId,
    rx: mpsc::UnboundedReceiver<Queued>,
    decoder: BatchDecoder,
    /// Messages taken whose credit is not returned yet.
    pending: u32,
    threshold: u32,
    ended: bool,
    /// A data frame did not decode: the connection failed, the channel is over.
    broken: bool,
}

impl MessageReceiver for NetReceiver {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        if self.broken {
            return Poll::Ready(None);
        }
        let queued = match self.rx.poll_recv(cx) {
            Poll::Ready(Some(q)) => q,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        let msg = match queued {
            Queued::Message(m) => m,
            Queued::Data(records) => match self.decoder.decode_batch(&records) {
                Ok(batch) => Message::Batch(batch),
                Err(e) => {
                    self.broken = true;
                    self.peer.fail(format!("protocol error: a batch on channel {}: {e}", self.channel));
                    return Poll::Ready(None);
                }
            },
        };
        if matches!(msg, Message::End) {
            self.ended = true;
        } else {
            self.pending += 1;
            if self.pending >= self.threshold {
                self.peer.grant(self.channel, std::mem::take(&mut self.pending));
            }
        }
        Poll::Ready(Some(msg))
    }

    fn failure(&self) -> Option<ChannelFailure> {
        if self.ended {
            return None;
        }
        // Only a failure of the peer closes a channel before its end message.
        let reason = self.peer.failure()?;
        Some(ChannelFailure(format!("channel {} from {reason}", self.channel)))
    }
}

impl Drop for NetReceiver {
    fn drop(&mut self) {
        if !self.ended && self.peer.failure().is_none() {
            let channel = self.channel;
            let _ = self.peer.push(|b| {
                frame::encode_close(b, channel);
                Ok(())
            });
        }
    }
}
