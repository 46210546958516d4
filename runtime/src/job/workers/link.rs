//! The control connection between worker 0 and another worker: connect with retries while
//! worker 0 starts, a handshake that checks the attempt, then a writer task (with heartbeats)
//! and a reader task (which gives up when heartbeats stop) around two channels.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::{Instant, timeout};

use super::protocol::{self, ControlMsg, VERSION};
use crate::engine::net::frame::read_frame;

/// What both ends of every control connection of an attempt agree on.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// The attempt.
    pub attempt: String,
    /// Number of workers.
    pub count: usize,
    /// The digest of the job document this worker runs ([`super::job_digest`]).
    pub job: u64,
    /// How long worker 0 may take to be reached, or the others to connect.
    pub connect_timeout: Duration,
    /// How long a handshake may take.
    pub handshake_timeout: Duration,
    /// How often an idle side says it is alive.
    pub heartbeat: Duration,
    /// Silence after which the other side is taken as lost.
    pub heartbeat_timeout: Duration,
}

/// A control connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The other side answered and refused.
    #[error("worker {worker} refused the control connection: {reason}")]
    Refused {
        /// The refusing (or refused) worker.
        worker: usize,
        /// Why.
        reason: String,
    },
    /// Worker 0 could not be reached in time.
    #[error("worker 0 (the coordinator, {addr}) not reachable within {within:?}: {last}")]
    Unreachable {
        /// Its control address.
        addr: SocketAddr,
        /// The connect timeout.
        within: Duration,
        /// The last attempt's error.
        last: String,
    },
    /// Workers that did not connect to worker 0 in time.
    #[error("worker(s) {workers:?} did not join within {within:?}")]
    Missing {
        /// Their indices.
        workers: Vec<usize>,
        /// The connect timeout.
        within: Duration,
    },
    /// The control listener failed.
    #[error("control listener: {0}")]
    Io(#[from] std::io::Error),
}

/// One side of a control connection: messages to send, messages received. The receiving
/// channel yields `Err(reason)` once when the connection is lost (or closed), then ends.
pub struct Link {
    /// The other worker's index.
    pub worker: usize,
    /// Messages to send, in order.
    pub tx: mpsc::UnboundedSender<ControlMsg>,
    /// Messages received, in order.
    pub rx: mpsc::UnboundedReceiver<Result<ControlMsg, String>>,
    reader: AbortHandle,
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl Link {
    /// Closes the connection once everything sent so far (by every clone of `tx`) is written:
    /// the future ends when the writer did.
    pub fn close(mut self) -> impl std::future::Future<Output = ()> {
        let writer = self.writer.take();
        drop(self);
        async move {
            if let Some(w) = writer {
                let _ = w.await;
            }
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The writer ends by itself once every `tx` is dropped (flushing first); the reader is
        // stopped.
        self.reader.abort();
    }
}

/// Connects worker `me` to worker 0 at `addr`, retrying with backoff while it starts.
pub async fn connect(addr: SocketAddr, me: usize, config: &LinkConfig) -> Result<Link, LinkError> {
    let deadline = Instant::now() + config.connect_timeout;
    let mut backoff = Duration::from_millis(20);
    loop {
        let last = match timeout(config.handshake_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(mut stream)) => {
                let hello = ControlMsg::Hello {
                    version: VERSION,
                    worker: me as u32,
                    count: config.count as u32,
                    job: config.job,
                };
                let mut buf = Vec::new();
                protocol::encode(&mut buf, &config.attempt, &hello);
                let answer = timeout(config.handshake_timeout, async {
                    stream.write_all(&buf).await?;
                    let mut body = Vec::new();
                    match read_frame(&mut stream, &mut body).await {
                        Ok(true) => Ok(body),
                        Ok(false) => Err(std::io::Error::other("closed during the handshake")),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    }
                })
                .await;
                match answer.map(|r| r.map(|body| protocol::decode(&body))) {
                    Ok(Ok(Ok((_, ControlMsg::Welcome)))) => return Ok(start(0, stream, config)),
                    Ok(Ok(Ok((_, ControlMsg::Refuse(reason))))) => {
                        return Err(LinkError::Refused { worker: 0, reason });
                    }
                    Ok(Ok(Ok((_, other)))) => format!("unexpected handshake answer {other:?}"),
                    Ok(Ok(Err(e))) => e.to_string(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "handshake timed out".into(),
                }
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connect timed out".into(),
        };
        if Instant::now() + backoff > deadline {
            return Err(LinkError::Unreachable { addr, within: config.connect_timeout, last });
        }
        tracing::debug!("control: connecting to worker 0 again in {backoff:?}: {last}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// Worker 0: accepts one control connection from each other worker (by index, 1 to count − 1),
/// refusing any of another attempt or worker count, then keeps refusing late comers.
pub async fn accept_all(listener: TcpListener, config: &LinkConfig) -> Result<Vec<Link>, LinkError> {
    let deadline = Instant::now() + config.connect_timeout;
    let mut links: Vec<Option<Link>> = (1..config.count).map(|_| None).collect();
    while links.iter().any(Option::is_none) {
        let accepted = tokio::time::timeout_at(deadline, listener.accept()).await;
        let (stream, from) = match accepted {
            Ok(r) => r?,
            Err(_) => {
                let workers = links.iter().enumerate().filter(|(_, l)| l.is_none()).map(|(i, _)| i + 1).collect();
                return Err(LinkError::Missing { workers, within: config.connect_timeout });
            }
        };
        match handshake_in(stream, config, |w| links.get(w.wrapping_sub(1)).is_some_and(Option::is_none)).await {
            Ok((worker, stream)) => links[worker - 1] = Some(start(worker, stream, config)),
            Err(reason) => tracing::warn!(%from, "control: refused a connection: {reason}"),
        }
    }
    let late = config.clone();
    tokio::spawn(async move {
        while let Ok((stream, from)) = listener.accept().await {
            if let Err(reason) = handshake_in(stream, &late, |_| false).await {
                tracing::warn!(%from, "control: refused a connection: {reason}");
            }
        }
    });
    Ok(links.into_iter().flatten().collect())
}

/// Reads a hello and answers it; `open(worker)` says whether that worker may still join.
async fn handshake_in(
    mut stream: TcpStream,
    config: &LinkConfig,
    open: impl Fn(usize) -> bool,
) -> Result<(usize, TcpStream), String> {
    let mut body = Vec::new();
    let (attempt, msg) = match timeout(config.handshake_timeout, read_frame(&mut stream, &mut body)).await {
        Err(_) => return Err("no handshake in time".into()),
        Ok(Err(e)) => return Err(format!("handshake: {e}")),
        Ok(Ok(false)) => return Err("closed before the handshake".into()),
        Ok(Ok(true)) => match protocol::decode(&body) {
            Ok(m) => m,
            Err(e) => return refuse(stream, config, format!("not a Sluice control hello: {e}")).await,
        },
    };
    let ControlMsg::Hello { version, worker, count, job } = msg else {
        return refuse(stream, config, format!("expected a hello, got {msg:?}")).await;
    };
    let worker = worker as usize;
    let problem = if version != VERSION {
        Some(format!("control protocol version {version} is not this worker's {VERSION}"))
    } else if attempt != config.attempt {
        Some(format!("attempt {attempt:?} is not this coordinator's attempt {:?}", config.attempt))
    } else if count as usize != config.count {
        Some(format!("{count} workers expected, this attempt has {}", config.count))
    } else if worker == 0 || worker >= config.count {
        Some(format!("no worker {worker} in an attempt of {}", config.count))
    } else if job != config.job {
        Some(format!(
            "worker {worker} runs another job document than worker 0 (digest {job:016x}, worker 0's {:016x}): \
             every worker of an attempt must read the same document",
            config.job
        ))
    } else if !open(worker) {
        Some(format!("worker {worker} already joined this attempt"))
    } else {
        None
    };
    if let Some(p) = problem {
        return refuse(stream, config, p).await;
    }
    let mut buf = Vec::new();
    protocol::encode(&mut buf, &config.attempt, &ControlMsg::Welcome);
    match timeout(config.handshake_timeout, stream.write_all(&buf)).await {
        Ok(Ok(())) => Ok((worker, stream)),
        Ok(Err(e)) => Err(format!("worker {worker}: handshake failed: {e}")),
        Err(_) => Err(format!("worker {worker}: handshake timed out")),
    }
}

async fn refuse<T>(mut stream: TcpStream, config: &LinkConfig, reason: String) -> Result<T, String> {
    let mut buf = Vec::new();
    protocol::encode(&mut buf, &config.attempt, &ControlMsg::Refuse(reason.clone()));
    let _ = timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&buf).await;
        let _ = stream.shutdown().await;
    })
    .await;
    Err(reason)
}

/// Starts the writer and reader of an established connection to `worker`.
fn start(worker: usize, stream: TcpStream, config: &LinkConfig) -> Link {
    let _ = stream.set_nodelay(true);
    let (r, w) = stream.into_split();
    let (tx, out) = mpsc::unbounded_channel();
    let (inbox, rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_loop(r, inbox, config.clone())).abort_handle();
    let writer = Some(tokio::spawn(write_loop(w, out, config.clone())));
    Link { worker, tx, rx, reader, writer }
}

async fn write_loop(mut w: OwnedWriteHalf, mut out: mpsc::UnboundedReceiver<ControlMsg>, config: LinkConfig) {
    let mut buf = Vec::new();
    let mut beat = tokio::time::interval(config.heartbeat);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            m = out.recv() => m,
            _ = beat.tick() => Some(ControlMsg::Heartbeat),
        };
        let Some(msg) = msg else {
            let _ = w.shutdown().await;
            return;
        };
        protocol::encode(&mut buf, &config.attempt, &msg);
        while let Ok(more) = out.try_recv() {
            protocol::encode(&mut buf, &config.attempt, &more);
        }
        if w.write_all(&buf).await.is_err() {
            return; // the reader sees the loss and reports it
        }
        buf.clear();
    }
}

async fn read_loop(r: OwnedReadHalf, inbox: mpsc::UnboundedSender<Result<ControlMsg, String>>, config: LinkConfig) {
    let mut r = BufReader::new(r);
    let mut body = Vec::new();
    let reason = loop {
        match timeout(config.heartbeat_timeout, read_frame(&mut r, &mut body)).await {
            Err(_) => break format!("no heartbeat for {:?}", config.heartbeat_timeout),
            Ok(Ok(false)) => break "closed the connection".to_string(),
            Ok(Err(e)) => break format!("connection lost: {e}"),
            Ok(Ok(true)) => match protocol::decode(&body) {
                Err(e) => break format!("protocol error: {e}"),
                Ok((attempt, _)) if attempt != config.attempt => {
                    break format!("sent a message of attempt {attempt:?}, not {:?}", config.attempt);
                }
                Ok((_, ControlMsg::Heartbeat)) => {}
                Ok((_, msg)) => {
                    if inbox.send(Ok(msg)).is_err() {
                        return;
                    }
                }
            },
        }
    };
    let _ = inbox.send(Err(reason));
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
