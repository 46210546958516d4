//! A task fed by upstream tasks: reads its input channels round-robin (a channel that delivered
//! a barrier waits until every live one has), forwards the least watermark, and takes its part
//! of a checkpoint once the barriers are aligned. Each channel's batches go to the head
//! operator as its input's (a join's left or right side); watermarks and barriers are the
//! same whatever the input.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{InputChannel, Task, TaskError};
use crate::engine::barrier::{Alignment, BarrierAligner};
use crate::engine::channel::{ChannelFailure, MessageReceiver};
use crate::engine::message::{Message, TaskControl};
use crate::engine::metrics::clock::timed;
use crate::engine::watermark::WatermarkTracker;

/// What the task reacts to next.
enum Event {
    Control(TaskControl),
    Input(usize, Message),
    /// A channel closed without its end message, for this reason.
    Lost(ChannelFailure),
}

/// The input channels and what the task tracks across them.
struct Inputs {
    receivers: Vec<Box<dyn MessageReceiver>>,
    /// The head node's input each receiver feeds.
    sides: Vec<usize>,
    aligner: BarrierAligner,
    watermarks: WatermarkTracker,
    ended: Vec<bool>,
    /// Channels not ended yet.
    live: usize,
    /// The channel the next round-robin read starts at.
    next: usize,
    /// When the first barrier of the alignment under way arrived (several inputs only).
    align_started: Option<Instant>,
}

impl Inputs {
    fn new(channels: Vec<InputChannel>) -> Inputs {
        let n = channels.len();
        let (sides, receivers) = channels.into_iter().unzip();
        Inputs {
            receivers,
            sides,
            aligner: BarrierAligner::new(n),
            watermarks: WatermarkTracker::new(n),
            ended: vec![false; n],
            live: n,
            next: 0,
            align_started: None,
        }
    }

    /// The next control message (first) or message from a channel that is neither ended nor
    /// blocked by alignment, round-robin; `None` when the coordinator is gone. A channel that
    /// closed without an end message is lost, never ended.
    async fn next(&mut self, control: &mut mpsc::UnboundedReceiver<TaskControl>) -> Option<Event> {
        let n = self.receivers.len();
        poll_fn(|cx| {
            if let Poll::Ready(c) = control.poll_recv(cx) {
                return Poll::Ready(c.map(Event::Control));
            }
            for k in 0..n {
                let i = (self.next + k) % n;
                if self.ended[i] || self.aligner.is_blocked(i) {
                    continue;
                }
                if let Poll::Ready(m) = self.receivers[i].poll_recv(cx) {
                    self.next = i + 1;
                    return Poll::Ready(Some(match m {
                        Some(m) => Event::Input(i, m),
                        // Every task ends its outputs with an end message (`finish`, a stop at
                        // a savepoint); a channel closed without one lost its sender: that task
                        // failed or was aborted. Taking it for the end of input would `finish`
                        // this task, and a sink would commit records no checkpoint covers.
                        None => Event::Lost(self.receivers[i].failure().unwrap_or_else(ChannelFailure::sender_gone)),
                    }));
                }
            }
            Poll::Pending
        })
        .await
    }
}

impl Task {
    /// Runs a task whose head reads `receivers` until every one has ended.
    pub(super) async fn run_inputs(&mut self, channels: Vec<InputChannel>) -> Result<(), TaskError> {
        let mut inputs = Inputs::new(channels);
        loop {
            let (event, waited) = timed(inputs.next(&mut self.control)).await;
            self.waited(waited);
            if self.env.cancel.is_cancelled() {
                // A completion taken off the channel just now still applies: the driver sends
                // completions before it sets the flag, and a completed checkpoint's transactions
                // must be committed, never aborted by the cancel.
                if let Some(Event::Control(c)) = event {
                    self.on_control(c)?;
                }
                return self.cancel();
            }
            let alignment = match event {
                None => return Err(TaskError::Coordinator { task: self.id }),
                Some(Event::Control(c)) => {
                    self.on_control(c)?;
                    Alignment::Wait
                }
                Some(Event::Input(ch, m)) => self.on_input(&mut inputs, ch, m).await?,
                Some(Event::Lost(failure)) => return Err(TaskError::Upstream { task: self.id, failure }),
            };
            if let Alignment::Aligned(b) = alignment {
                let took = inputs.align_started.take().map_or(std::time::Duration::ZERO, |t| t.elapsed());
                let head = self.nodes.first().map_or(0, |n| n.index);
                self.env.metrics.alignment(head, self.id.subtask).observe(took.as_secs_f64());
                self.checkpoint(b, None, took.as_micros() as u64).await?;
            }
            self.tick();
            if inputs.live == 0 {
                self.drain_control()?;
                return self.finish().await;
            }
        }
    }

    /// Handles one message from channel `ch`; says whether a barrier is now aligned.
    async fn on_input(&mut self, inputs: &mut Inputs, ch: usize, message: Message) -> Result<Alignment, TaskError> {
        Ok(match message {
            Message::Batch(b) => {
                self.push_input(0, inputs.sides[ch], b).await?;
                Alignment::Wait
            }
            Message::Watermark(w) => {
                if let Some(wm) = inputs.watermarks.update(ch, w) {
                    self.watermark(wm).await?;
                }
                Alignment::Wait
            }
            Message::Barrier(b) => {
                if inputs.aligner.current().is_none() && inputs.receivers.len() > 1 {
                    inputs.align_started = Some(Instant::now());
                }
                inputs.aligner.on_barrier(ch, b)
            }
            Message::End => {
                inputs.ended[ch] = true;
                inputs.live -= 1;
                // After a stop-with-savepoint barrier nothing may be emitted: an ended
                // channel must not advance the watermark (and fire windows) then.
                if let Some(wm) = inputs.watermarks.end(ch)
                    && !self.stopping
                {
                    self.watermark(wm).await?;
                }
                inputs.aligner.on_end(ch)
            }
        })
    }
}
