//! Channels between tasks. The in-process implementation is a bounded tokio mpsc channel per
//! (upstream subtask, downstream subtask) pair; a network exchange implements the same traits.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::message::Message;

/// The receiving side has gone away (its task ended or failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("downstream channel closed")]
pub struct Closed;

/// Sending end of a channel. Sends wait while the channel is full (backpressure).
pub trait MessageSender: Send {
    /// Sends a message, waiting for capacity.
    fn send(&mut self, msg: Message) -> Pin<Box<dyn Future<Output = Result<(), Closed>> + Send + '_>>;
}

/// Receiving end of a channel.
pub trait MessageReceiver: Send {
    /// Polls for the next message; `None` once the sender is gone and the channel drained.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>>;

    /// Once `poll_recv` returned `None`: why the channel closed without an end message, if
    /// something other than its sender went away (a network exchange lost the worker that runs
    /// the sender). `None` when the sender itself is gone: in process, its task failed (the
    /// receiving task fails too, as a symptom), and that task's error is the one to report.
    fn failure(&self) -> Option<ChannelFailure> {
        None
    }
}

/// A channel closed because the process running its other end, or the connection to it, was
/// lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChannelFailure(pub String);

impl ChannelFailure {
    const SENDER_GONE: &'static str = "its upstream task ended without ending the channel";

    /// The sending task itself ended without an end message (it failed or was aborted): a
    /// symptom of that task's failure, unlike a lost worker or connection.
    pub fn sender_gone() -> ChannelFailure {
        ChannelFailure(Self::SENDER_GONE.into())
    }

    /// Whether this is [`ChannelFailure::sender_gone`].
    pub fn is_sender_gone(&self) -> bool {
        self.0 == Self::SENDER_GONE
    }
}

/// One channel of a physical plan: chain edge `edge` (an index into `PhysicalPlan::edges`) from
/// upstream subtask `from` to downstream subtask `to`. Both ends of a job name it the same way,
/// wherever they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId {
    /// Chain edge index.
    pub edge: usize,
    /// Upstream subtask.
    pub from: u32,
    /// Downstream subtask.
    pub to: u32,
}

impl std::fmt::Display for ChannelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "edge {} ({} -> {})", self.edge, self.from, self.to)
    }
}

/// An end of a channel could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("channel {channel}: {reason}")]
pub struct ExchangeError {
    /// The channel.
    pub channel: ChannelId,
    /// Why.
    pub reason: String,
}

/// Gives the ends of the channels between subtasks. The job wiring asks for the sending end of
/// every channel whose upstream subtask runs here and the receiving end of every channel whose
/// downstream subtask runs here: the in-process exchange pairs the two, a network exchange
/// connects to (or accepts from) the process that runs the other end.
pub trait Exchange: Send + Sync {
    /// The sending end of `channel`. Each end is asked for once.
    fn sender(&self, channel: ChannelId) -> Result<Box<dyn MessageSender>, ExchangeError>;
    /// The receiving end of `channel`. Each end is asked for once.
    fn receiver(&self, channel: ChannelId) -> Result<Box<dyn MessageReceiver>, ExchangeError>;
}

/// In-process exchange over bounded tokio channels: the first end asked for creates the
/// channel, the other end waits in the exchange until it is asked for.
#[derive(Debug)]
pub struct LocalExchange {
    /// Messages (batches) a channel buffers before the sender waits.
    pub capacity: usize,
    parked: Mutex<HashMap<ChannelId, Parked>>,
}

#[derive(Debug)]
enum Parked {
    Sender(mpsc::Sender<Message>),
    Receiver(mpsc::Receiver<Message>),
}

impl LocalExchange {
    /// An exchange whose channels buffer `capacity` messages.
    pub fn with_capacity(capacity: usize) -> LocalExchange {
        LocalExchange { capacity: capacity.max(1), parked: Mutex::default() }
    }

    /// Ends asked for whose other end never was (a wiring defect when every subtask is local).
    pub fn unpaired(&self) -> Vec<ChannelId> {
        let parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        let mut ids: Vec<ChannelId> = parked.keys().copied().collect();
        ids.sort();
        ids
    }

    fn end(&self, channel: ChannelId, want_sender: bool) -> Result<Parked, ExchangeError> {
        let mut parked = self.parked.lock().unwrap_or_else(|p| p.into_inner());
        match parked.remove(&channel) {
            // The end still parked is the one not handed out yet.
            Some(Parked::Receiver(rx)) if want_sender => {
                parked.insert(channel, Parked::Receiver(rx));
                Err(ExchangeError { channel, reason: "sending end asked for twice".into() })
            }
            Some(Parked::Sender(tx)) if !want_sender => {
                parked.insert(channel, Parked::Sender(tx));
                Err(ExchangeError { channel, reason: "receiving end asked for twice".into() })
            }
            Some(other) => Ok(other),
            None => {
                let (tx, rx) = mpsc::channel(self.capacity);
                if want_sender {
                    parked.insert(channel, Parked::Receiver(rx));
                    Ok(Parked::Sender(tx))
                } else {
                    parked.insert(channel, Parked::Sender(tx));
                    Ok(Parked::Receiver(rx))
                }
            }
        }
    }
}

impl Default for LocalExchange {
    fn default() -> Self {
        LocalExchange::with_capacity(16)
    }
}

struct LocalSender(mpsc::Sender<Message>);
struct LocalReceiver(mpsc::Receiver<Message>);

impl MessageSender for LocalSender {
    fn send(&mut self, msg: Message) -> Pin<Box<dyn Future<Output = Result<(), Closed>> + Send + '_>> {
        Box::pin(async move { self.0.send(msg).await.map_err(|_| Closed) })
    }
}

impl MessageReceiver for LocalReceiver {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.0.poll_recv(cx)
    }
}

impl Exchange for LocalExchange {
    fn sender(&self, channel: ChannelId) -> Result<Box<dyn MessageSender>, ExchangeError> {
        match self.end(channel, true)? {
            Parked::Sender(tx) => Ok(Box::new(LocalSender(tx))),
            Parked::Receiver(_) => Err(ExchangeError { channel, reason: "internal: wrong end".into() }),
        }
    }

    fn receiver(&self, channel: ChannelId) -> Result<Box<dyn MessageReceiver>, ExchangeError> {
        match self.end(channel, false)? {
            Parked::Receiver(rx) => Ok(Box::new(LocalReceiver(rx))),
            Parked::Sender(_) => Err(ExchangeError { channel, reason: "internal: wrong end".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::message::Message;

    fn id(edge: usize, from: u32, to: u32) -> ChannelId {
        ChannelId { edge, from, to }
    }

    #[tokio::test]
    async fn ends_pair_up_whichever_is_asked_first() {
        let x = LocalExchange::with_capacity(2);
        let mut rx = x.receiver(id(0, 1, 2)).expect("receiver");
        let mut tx = x.sender(id(0, 1, 2)).expect("sender");
        let mut tx2 = x.sender(id(1, 0, 0)).expect("sender first");
        let mut rx2 = x.receiver(id(1, 0, 0)).expect("receiver second");
        assert!(x.unpaired().is_empty());
        tx.send(Message::Watermark(7)).await.expect("send");
        tx2.send(Message::Watermark(9)).await.expect("send");
        let got = std::future::poll_fn(|cx| rx.poll_recv(cx)).await;
        assert!(matches!(got, Some(Message::Watermark(7))));
        let got = std::future::poll_fn(|cx| rx2.poll_recv(cx)).await;
        assert!(matches!(got, Some(Message::Watermark(9))));
    }

    #[test]
    fn an_end_asked_for_twice_is_an_error_and_unpaired_ends_are_reported() {
        let x = LocalExchange::default();
        let _tx = x.sender(id(3, 0, 1)).expect("sender");
        let err = x.sender(id(3, 0, 1)).err().expect("second sender refused");
        assert_eq!(err.channel, id(3, 0, 1));
        assert_eq!(x.unpaired(), vec![id(3, 0, 1)]);
    }
}
