//! Sends a task's output batches along its output edges: forward (same subtask), rebalance
//! (round-robin per batch) or hash (key → key group → subtask, batched per target).

use sluice_crds::contract::pipeline::{EdgeOutput, Partitioning};

use std::time::Duration;

use super::channel::{Closed, MessageSender};
use super::message::Message;
use super::metrics::clock::timed;
use crate::graph::key_groups::{key_group, subtask_for_group};
use crate::record::Batch;

/// One output edge of a task: a sender per downstream subtask it may reach.
pub struct OutputEdge {
    partition: Partitioning,
    output: EdgeOutput,
    senders: Vec<Box<dyn MessageSender>>,
    buffers: Vec<Batch>,
    next: usize,
    max_parallelism: u32,
    /// Downstream subtask of each key group (hash edges).
    owner: Vec<u32>,
}

impl OutputEdge {
    /// An edge; for forward, `senders` holds the one same-index subtask, otherwise every
    /// downstream subtask in order.
    pub fn new(partition: Partitioning, senders: Vec<Box<dyn MessageSender>>, max_parallelism: u32) -> OutputEdge {
        OutputEdge::of_output(partition, EdgeOutput::Main, senders, max_parallelism)
    }

    /// An edge carrying `output` of the upstream tail (its results, or a window's late records).
    pub fn of_output(
        partition: Partitioning,
        output: EdgeOutput,
        senders: Vec<Box<dyn MessageSender>>,
        max_parallelism: u32,
    ) -> OutputEdge {
        let buffers =
            if partition == Partitioning::Hash { senders.iter().map(|_| Batch::new()).collect() } else { Vec::new() };
        let p = senders.len() as u32;
        let owner = if partition == Partitioning::Hash {
            (0..max_parallelism).map(|g| subtask_for_group(g, p, max_parallelism)).collect()
        } else {
            Vec::new()
        };
        OutputEdge { partition, output, senders, buffers, next: 0, max_parallelism, owner }
    }

    async fn send_batch(&mut self, batch: Batch, blocked: &mut Duration) -> Result<(), Closed> {
        match self.partition {
            Partitioning::Forward => send(self.senders[0].as_mut(), Message::Batch(batch), blocked).await,
            Partitioning::Rebalance => {
                let i = self.next;
                self.next = (self.next + 1) % self.senders.len();
                send(self.senders[i].as_mut(), Message::Batch(batch), blocked).await
            }
            Partitioning::Hash => {
                let p = self.senders.len() as u32;
                if p == 1 {
                    return send(self.senders[0].as_mut(), Message::Batch(batch), blocked).await;
                }
                let share = batch.len() / self.buffers.len() + 16;
                for b in &mut self.buffers {
                    b.reserve(share);
                }
                for r in batch {
                    let group = key_group(r.key.stable_hash(), self.max_parallelism);
                    self.buffers[self.owner[group as usize] as usize].push(r);
                }
                for i in 0..self.buffers.len() {
                    if !self.buffers[i].is_empty() {
                        let full = std::mem::take(&mut self.buffers[i]);
                        send(self.senders[i].as_mut(), Message::Batch(full), blocked).await?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Sends `msg`, adding to `blocked` how long the send waited for room (backpressure); a send
/// that finds room reads no clock.
async fn send(sender: &mut dyn MessageSender, msg: Message, blocked: &mut Duration) -> Result<(), Closed> {
    let (r, waited) = timed(sender.send(msg)).await;
    if let Some((start, end)) = waited {
        *blocked += end.saturating_duration_since(start);
    }
    r
}

/// All output edges of a task.
#[derive(Default)]
pub struct Router {
    edges: Vec<OutputEdge>,
    /// Time sends waited for room since the last [`Router::take_blocked`].
    blocked: Duration,
}

impl Router {
    /// A router over `edges`.
    pub fn new(edges: Vec<OutputEdge>) -> Router {
        Router { edges, blocked: Duration::ZERO }
    }

    /// How long sends waited for room (the task was backpressured) since the last call.
    pub fn take_blocked(&mut self) -> Duration {
        std::mem::take(&mut self.blocked)
    }

    /// Whether the task has no output edge (a sink chain).
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Sends a batch on every edge of the main output (cloning for all but the last).
    pub async fn route(&mut self, batch: Batch) -> Result<(), Closed> {
        self.route_output(EdgeOutput::Main, batch).await
    }

    /// Sends a batch on every edge carrying `output` (cloning for all but the last); dropped
    /// when no edge carries it.
    pub async fn route_output(&mut self, output: EdgeOutput, batch: Batch) -> Result<(), Closed> {
        if batch.is_empty() {
            return Ok(());
        }
        let Some(last) = self.edges.iter().rposition(|e| e.output == output) else { return Ok(()) };
        let mut batch = Some(batch);
        for (i, edge) in self.edges.iter_mut().enumerate().filter(|(_, e)| e.output == output) {
            let b = if i == last { batch.take().unwrap_or_default() } else { batch.clone().unwrap_or_default() };
            edge.send_batch(b, &mut self.blocked).await?;
        }
        Ok(())
    }

    /// Sends a control message (watermark, barrier, end) to every downstream subtask.
    pub async fn broadcast(&mut self, make: impl Fn() -> Message) -> Result<(), Closed> {
        for edge in &mut self.edges {
            for s in &mut edge.senders {
                send(s.as_mut(), make(), &mut self.blocked).await?;
            }
        }
        Ok(())
    }
}
