//! The network exchange: channels between subtasks that run in different worker processes.
//!
//! One TCP connection per pair of workers (the lower index connects, the higher accepts)
//! carries every channel between the two, as length-delimited frames ([`frame`]): a whole batch
//! per data frame, watermarks, barriers and end-of-channel in order with the data of their
//! channel, credit flowing back. Flow control is per channel and credit-based (see `peer.rs`): a
//! receiver that stops reading one channel stalls only that channel's sender. Channels whose two
//! ends run in the same worker stay in process ([`LocalExchange`]). A lost connection fails
//! every channel on it: senders get `Closed`, receivers report a [`ChannelFailure`] naming the
//! worker.
//!
//! [`ChannelFailure`]: crate::engine::channel::ChannelFailure

pub mod codec;
mod conn;
pub mod frame;
pub mod metrics;
mod peer;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::AbortHandle;

use self::conn::Local;
pub use self::metrics::{NetMetrics, PeerMetrics};
use self::peer::{Peer, Status};
use crate::engine::channel::{ChannelId, Exchange, ExchangeError, LocalExchange, MessageReceiver, MessageSender};

/// The workers of one attempt, as one of them sees them.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// This worker's index in `peers`.
    pub index: usize,
    /// Every worker's exchange address, by index (this worker's own included); the count of
    /// workers is its length.
    pub peers: Vec<SocketAddr>,
    /// The job attempt: workers of different attempts refuse each other.
    pub attempt: String,
    /// Messages a channel's receiver buffers (the credit it grants).
    pub credits: u32,
    /// How long a peer may take to be reached, or to connect, while the workers start.
    pub connect_timeout: Duration,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
}

impl NetConfig {
    /// Worker `index` of `peers` in `attempt`, with the default credits (16, as the
    /// in-process channels' capacity) and timeouts (30 s to connect, 5 s per handshake).
    pub fn new(index: usize, peers: Vec<SocketAddr>, attempt: impl Into<String>) -> NetConfig {
        NetConfig {
            index,
            peers,
            attempt: attempt.into(),
            credits: 16,
            connect_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(5),
        }
    }

    /// The number of workers.
    pub fn count(&self) -> usize {
        self.peers.len()
    }
}

/// Where the two ends of a channel run: `(worker of the upstream subtask, worker of the
/// downstream subtask)`. Every worker of an attempt must locate every channel the same way.
pub trait Locate: Send + Sync {
    /// The workers of `channel`'s sending and receiving ends.
    fn workers(&self, channel: ChannelId) -> (usize, usize);
}

impl<F: Fn(ChannelId) -> (usize, usize) + Send + Sync> Locate for F {
    fn workers(&self, channel: ChannelId) -> (usize, usize) {
        self(channel)
    }
}

/// The exchange could not start, or a peer could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configuration does not describe a worker of the attempt.
    #[error("exchange configuration: {0}")]
    Config(String),
    /// The listening socket could not be opened.
    #[error("exchange: cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A peer failed (the message names it).
    #[error("exchange: {0}")]
    Peer(String),
}

/// An [`Exchange`] between worker processes over TCP (see the module documentation).
pub struct NetExchange {
    index: usize,
    listen: SocketAddr,
    local: LocalExchange,
    peers: Vec<Option<Arc<Peer>>>,
    locate: Box<dyn Locate>,
    /// Remote ends handed out: (channel, is sender).
    handed: Mutex<HashSet<(ChannelId, bool)>>,
    /// Accept loop, connectors, connect watchdogs.
    background: Vec<AbortHandle>,
}

impl NetExchange {
    /// Listens on `config.peers[config.index]` and starts connecting to the peers (in the
    /// background: ends can be asked for at once; [`NetExchange::ready`] waits for every peer).
    pub async fn start(config: NetConfig, locate: Box<dyn Locate>, metrics: &NetMetrics) -> Result<Self, NetError> {
        let addr =
            *config.peers.get(config.index).ok_or_else(|| NetError::Config(format!("no worker {}", config.index)))?;
        let listener = TcpListener::bind(addr).await.map_err(|source| NetError::Listen { addr, source })?;
        NetExchange::with_listener(config, listener, locate, metrics)
    }

    /// As [`NetExchange::start`], on a listener already bound (its address need not be the one
    /// the peers know, e.g. `0.0.0.0`). Must be called within a tokio runtime, which then runs
    /// the connections.
    pub fn with_listener(
        config: NetConfig,
        listener: TcpListener,
        locate: Box<dyn Locate>,
        metrics: &NetMetrics,
    ) -> Result<Self, NetError> {
        let count = config.count();
        let listen = listener.local_addr().map_err(|e| NetError::Config(format!("listener: {e}")))?;
        if config.index >= count {
            return Err(NetError::Config(format!("worker {} of {count}", config.index)));
        }
        let local = Arc::new(Local {
            index: config.index,
            count,
            attempt: config.attempt.clone(),
            connect_timeout: config.connect_timeout,
            handshake_timeout: config.handshake_timeout,
        });
        let peers: Vec<Option<Arc<Peer>>> = (0..count)
            .map(|w| {
                (w != config.index).then(|| Arc::new(Peer::new(w, config.peers[w], config.credits, metrics.peer(w))))
            })
            .collect();
        let mut background = Vec::new();
        for peer in peers.iter().flatten() {
            let task = if peer.worker > config.index {
                tokio::spawn(conn::connect(local.clone(), peer.clone()))
            } else {
                tokio::spawn(conn::expect(local.clone(), peer.clone()))
            };
            background.push(task.abort_handle());
        }
        background.push(tokio::spawn(conn::accept(local, listener, peers.clone())).abort_handle());
        Ok(NetExchange {
            index: config.index,
            listen,
            local: LocalExchange::with_capacity(config.credits as usize),
            peers,
            locate,
            handed: Mutex::default(),
            background,
        })
    }

    /// Waits until every peer is connected; the first that cannot be is the error.
    pub async fn ready(&self) -> Result<(), NetError> {
        for peer in self.peers.iter().flatten() {
            let mut status = peer.status.subscribe();
            let s = status.wait_for(|s| *s != Status::Waiting).await.map(|s| s.clone());
            match s {
                Ok(Status::Up) => {}
                Ok(Status::Failed(reason)) => return Err(NetError::Peer(reason)),
                _ => return Err(NetError::Peer(format!("worker {}: the exchange was shut down", peer.worker))),
            }
        }
        Ok(())
    }

    /// The address this worker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The first peer lost so far, if any.
    pub fn failure(&self) -> Option<String> {
        self.peers.iter().flatten().find_map(|p| match &*p.status.borrow() {
            Status::Failed(reason) => Some(reason.clone()),
            _ => None,
        })
    }

    /// Channel ends asked for whose other end runs here but never was (see
    /// [`LocalExchange::unpaired`]).
    pub fn unpaired_local(&self) -> Vec<ChannelId> {
        self.local.unpaired()
    }

    /// Ends the connections in order: sends what is buffered, closes, and stops listening.
    /// Channels from a peer still open then end with an error.
    pub async fn shutdown(self) {
        for peer in self.peers.iter().flatten() {
            peer.close_outgoing();
        }
        for peer in self.peers.iter().flatten() {
            let writer = peer.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(w) = writer {
                let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
            }
        }
        // Dropping closes the rest.
    }

    fn peer_for(&self, channel: ChannelId, sender: bool) -> Result<Option<&Arc<Peer>>, ExchangeError> {
        let (up, down) = self.locate.workers(channel);
        let (mine, other, what) = if sender { (up, down, "upstream") } else { (down, up, "downstream") };
        if mine != self.index {
            let reason = format!("its {what} subtask runs on worker {mine}, not on this worker {}", self.index);
            return Err(ExchangeError { channel, reason });
        }
        if other == self.index {
            return Ok(None);
        }
        let Some(peer) = self.peers.get(other).and_then(Option::as_ref) else {
            return Err(ExchangeError { channel, reason: format!("no worker {other}") });
        };
        let mut handed = self.handed.lock().unwrap_or_else(|p| p.into_inner());
        if !handed.insert((channel, sender)) {
            let end = if sender { "sending" } else { "receiving" };
            return Err(ExchangeError { channel, reason: format!("{end} end asked for twice") });
        }
        Ok(Some(peer))
    }
}

impl Exchange for NetExchange {
    fn sender(&self, channel: ChannelId) -> Result<Box<dyn MessageSender>, ExchangeError> {
        match self.peer_for(channel, true)? {
            None => self.local.sender(channel),
            Some(peer) => Ok(peer.sender(channel)),
        }
    }

    fn receiver(&self, channel: ChannelId) -> Result<Box<dyn MessageReceiver>, ExchangeError> {
        match self.peer_for(channel, false)? {
            None => self.local.receiver(channel),
            Some(peer) => Ok(peer.receiver(channel)),
        }
    }
}

impl Drop for NetExchange {
    fn drop(&mut self) {
        for t in &self.background {
            t.abort();
        }
        for peer in self.peers.iter().flatten() {
            peer.close("the exchange was shut down".into());
        }
    }
}

#[cfg(test)]
mod bench_tests;
#[cfg(test)]
mod tests;
