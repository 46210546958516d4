//! Channels between tasks. The in-process implementation is a bounded tokio mpsc channel per
//! (upstream subtask, downstream subtask) pair; a network exchange implements the same traits.

use std::future::Future;
use std::pin::Pin;
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
}

/// Creates channels between subtasks.
pub trait Exchange: Send + Sync {
    /// A new channel.
    fn channel(&self) -> (Box<dyn MessageSender>, Box<dyn MessageReceiver>);
}

/// In-process exchange over bounded tokio channels.
#[derive(Clone, Copy, Debug)]
pub struct LocalExchange {
    /// Messages (batches) a channel buffers before the sender waits.
    pub capacity: usize,
}

impl Default for LocalExchange {
    fn default() -> Self {
        LocalExchange { capacity: 16 }
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
    fn channel(&self) -> (Box<dyn MessageSender>, Box<dyn MessageReceiver>) {
        let (tx, rx) = mpsc::channel(self.capacity.max(1));
        (Box::new(LocalSender(tx)), Box::new(LocalReceiver(rx)))
    }
}
