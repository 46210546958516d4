//! A source task: polls its [`Source`] for batches, pushes them down the chain, advances the
//! watermark, and answers the coordinator's triggers, completions and end of input.

use tokio::sync::mpsc;

use super::{Task, TaskError};
use crate::engine::message::{TaskControl, TaskEvent};
use crate::engine::metrics::clock::timed;
use crate::engine::operator::{Source, SourcePoll};
use crate::record::{BATCH_SIZE, Batch};

/// How often a source reports its consumer lag (checked per batch against the task's clock).
const LAG_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What a source task last reported of its source's own figures.
struct SourceSeen {
    /// Malformed records counted so far.
    malformed: u64,
    /// When the consumer lag is reported next.
    next_lag_report: std::time::Instant,
}

impl Task {
    /// After a poll: counts the records the source newly skipped as malformed and, about once a
    /// second (against the clock of the last tick: no clock read here), reports its lag.
    fn source_metrics(&self, source: &dyn Source, seen: &mut SourceSeen) {
        let malformed = source.malformed_count();
        self.counters[0].malformed.inc_by(malformed.saturating_sub(seen.malformed));
        seen.malformed = seen.malformed.max(malformed);
        if self.clock.last() >= seen.next_lag_report {
            seen.next_lag_report = self.clock.last() + LAG_REPORT_INTERVAL;
            let (metrics, node) = (&self.env.metrics, self.nodes[0].index);
            source.report_lag(&mut |topic, partition, lag| metrics.set_kafka_lag(node, topic, partition, lag));
        }
    }

    /// Handles one control message in a source task; `Ok(true)` when the task has ended.
    async fn source_control(&mut self, source: &mut dyn Source, c: Option<TaskControl>) -> Result<bool, TaskError> {
        match c {
            Some(TaskControl::Trigger(b)) => {
                let state = source.snapshot(b.id).map_err(self.op_err())?;
                self.checkpoint(b, Some(state), 0).await?;
                Ok(false)
            }
            Some(TaskControl::EndInput) => {
                self.drain_control()?;
                self.finish().await?;
                Ok(true)
            }
            Some(other) => {
                if let TaskControl::Complete(id) = &other {
                    source.checkpoint_complete(*id).map_err(self.op_err())?;
                }
                self.on_control(other).map(|()| false)
            }
            None => Err(TaskError::Coordinator { task: self.id }),
        }
    }

    /// Handles the control messages already queued; `Ok(true)` when the task has ended.
    async fn queued_control(&mut self, source: &mut dyn Source) -> Result<bool, TaskError> {
        loop {
            match self.control.try_recv() {
                Ok(c) => {
                    if self.source_control(source, Some(c)).await? {
                        return Ok(true);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => return Ok(false),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Err(TaskError::Coordinator { task: self.id });
                }
            }
        }
    }

    pub(super) async fn run_source(
        &mut self,
        mut source: Box<dyn Source>,
        restored: Option<Vec<serde_json::Value>>,
    ) -> Result<(), TaskError> {
        source.open(restored).map_err(self.op_err())?;
        let mut last_wm = i64::MIN;
        let mut seen = SourceSeen { malformed: 0, next_lag_report: std::time::Instant::now() };
        let mut exhausted = false;
        loop {
            if self.env.cancel.is_cancelled() {
                return self.cancel();
            }
            if self.queued_control(source.as_mut()).await? {
                return Ok(());
            }
            if exhausted || self.stopping {
                // No more data: wait for barriers and the end of input.
                let (c, waited) = timed(self.control.recv()).await;
                self.waited(waited);
                if self.source_control(source.as_mut(), c).await? {
                    return Ok(());
                }
                continue;
            }
            let mut batch = Batch::with_capacity(BATCH_SIZE);
            let polled = source.poll(&mut batch, BATCH_SIZE).map_err(self.op_err())?;
            self.source_metrics(source.as_ref(), &mut seen);
            match polled {
                SourcePoll::Data => {
                    self.counters[0].records_out.inc_by(batch.len() as u64);
                    self.push(0, batch).await?;
                    let wm = source.watermark();
                    if wm > last_wm {
                        last_wm = wm;
                        self.counters[0].set_watermark(wm);
                        self.watermark(wm).await?;
                    }
                    self.tick();
                    tokio::task::yield_now().await;
                }
                SourcePoll::Idle(d) => {
                    self.tick();
                    let (c, waited) = timed(async {
                        tokio::select! {
                            _ = tokio::time::sleep(d) => None,
                            c = self.control.recv() => Some(c),
                        }
                    })
                    .await;
                    self.waited(waited);
                    let Some(c) = c else { continue };
                    if self.source_control(source.as_mut(), c).await? {
                        return Ok(());
                    }
                }
                SourcePoll::Finished => {
                    if last_wm < i64::MAX {
                        last_wm = i64::MAX;
                        self.watermark(i64::MAX).await?;
                    }
                    exhausted = true;
                    self.env
                        .events
                        .send(TaskEvent::SourceFinished(self.id))
                        .map_err(|_| TaskError::Coordinator { task: self.id })?;
                }
            }
        }
    }
}
