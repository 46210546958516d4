//! Busy / idle / backpressured time of a task, as Flink reports them (`busyTimeMsPerSecond`,
//! `idleTimeMsPerSecond`, `backPressuredTimeMsPerSecond`): three counters of nanoseconds that a
//! `rate()` turns into fractions of a second.
//!
//! A task is *idle* while it waits for input (an input channel, a source with nothing to read,
//! the coordinator after its input ended), *backpressured* while it waits to send on a full
//! output channel, and *busy* the rest of the time. The clock is read only around waits that
//! really wait (a future that is ready at its first poll costs no clock read, see [`timed`]) and
//! once per processed message ([`TaskClock::tick`]): never per record. So at any time
//! `busy + idle + backpressured` is the wall time from the task's start to its last tick.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

/// A span of real waiting: from when the wait was found pending to when it ended.
pub type Waited = Option<(Instant, Instant)>;

/// Awaits `fut`, telling whether it had to wait: `None` when it was ready at its first poll
/// (no clock read), otherwise the span from that first poll to its end.
pub async fn timed<F: Future>(fut: F) -> (F::Output, Waited) {
    let mut fut = std::pin::pin!(fut);
    match poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
        Poll::Ready(v) => (v, None),
        Poll::Pending => {
            let start = Instant::now();
            let v = fut.await;
            (v, Some((start, Instant::now())))
        }
    }
}

/// The three time counters of one task, in nanoseconds (shared with the metrics export).
#[derive(Debug, Default)]
pub struct TaskTimes {
    busy_ns: AtomicU64,
    idle_ns: AtomicU64,
    backpressured_ns: AtomicU64,
}

impl TaskTimes {
    /// Busy time so far.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    /// Idle time so far.
    pub fn idle(&self) -> Duration {
        Duration::from_nanos(self.idle_ns.load(Ordering::Relaxed))
    }

    /// Backpressured time so far.
    pub fn backpressured(&self) -> Duration {
        Duration::from_nanos(self.backpressured_ns.load(Ordering::Relaxed))
    }
}

fn add(c: &AtomicU64, d: Duration) {
    if !d.is_zero() {
        c.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The accounting of one task: what happened since its last mark goes to the counters.
#[derive(Debug)]
pub struct TaskClock {
    times: Arc<TaskTimes>,
    /// Where the time accounted so far ends.
    last: Instant,
    /// Time blocked sending since `last` (reported by the router).
    blocked: Duration,
}

impl TaskClock {
    /// A clock starting now.
    pub fn new(times: Arc<TaskTimes>) -> TaskClock {
        TaskClock::starting_at(times, Instant::now())
    }

    /// A clock starting at `start`.
    pub fn starting_at(times: Arc<TaskTimes>, start: Instant) -> TaskClock {
        TaskClock { times, last: start, blocked: Duration::ZERO }
    }

    /// The task was blocked sending (its output channel full) for `d`, since the last mark.
    pub fn blocked(&mut self, d: Duration) {
        self.blocked += d;
    }

    /// Accounts the time up to `now`: blocked time as backpressured, the rest as busy.
    pub fn mark(&mut self, now: Instant) {
        let span = now.saturating_duration_since(self.last);
        let blocked = self.blocked.min(span);
        add(&self.times.backpressured_ns, blocked);
        add(&self.times.busy_ns, span - blocked);
        self.blocked = Duration::ZERO;
        self.last = self.last.max(now);
    }

    /// Accounts the time up to now (once per processed message).
    pub fn tick(&mut self) {
        self.mark(Instant::now());
    }

    /// Accounts a wait for input: the time before it as busy (or backpressured), the wait
    /// itself as idle.
    pub fn waited(&mut self, waited: Waited) {
        if let Some((start, end)) = waited {
            self.mark(start);
            add(&self.times.idle_ns, end.saturating_duration_since(self.last));
            self.last = self.last.max(end);
        }
    }

    /// Where the accounted time ends.
    pub fn last(&self) -> Instant {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::engine::channel::{Exchange, LocalExchange};
    use crate::engine::message::Message;

    /// Random sequences of work, blocked sends and waits on a synthetic time line: each counter
    /// equals the reference sum of its spans, and together they cover exactly the time from
    /// the start to the last mark.
    #[test]
    fn accounting_matches_a_reference_on_random_schedules() {
        let seed: u64 = rand::rng().random();
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            let t0 = Instant::now();
            let times = Arc::new(TaskTimes::default());
            let mut clock = TaskClock::starting_at(times.clone(), t0);
            let (mut now, mut busy, mut idle, mut bp) = (t0, Duration::ZERO, Duration::ZERO, Duration::ZERO);
            for _ in 0..rng.random_range(1..50) {
                let work = Duration::from_nanos(rng.random_range(0..1_000_000));
                match rng.random_range(0..3) {
                    0 => {
                        // Work with blocked sends inside it, then a tick.
                        let b = Duration::from_nanos(rng.random_range(0..=work.as_nanos() as u64));
                        clock.blocked(b);
                        now += work;
                        clock.mark(now);
                        bp += b;
                        busy += work - b;
                    }
                    1 => {
                        // Work, then a wait for input that was pending for `wait`.
                        let wait = Duration::from_nanos(rng.random_range(0..1_000_000));
                        let start = now + work;
                        now = start + wait;
                        clock.waited(Some((start, now)));
                        busy += work;
                        idle += wait;
                    }
                    _ => clock.waited(None), // ready at once: nothing accounted
                }
            }
            assert_eq!((times.busy(), times.idle(), times.backpressured()), (busy, idle, bp), "seed {seed}");
            assert_eq!(busy + idle + bp, clock.last() - t0, "seed {seed}");
        }
    }

    #[tokio::test]
    async fn a_send_on_a_full_channel_is_backpressure_and_a_ready_one_is_not() {
        let x = LocalExchange::with_capacity(1);
        let id = crate::engine::channel::ChannelId { edge: 0, from: 0, to: 0 };
        let mut tx = x.sender(id).expect("sender");
        let mut rx = x.receiver(id).expect("receiver");
        let (r, waited) = timed(tx.send(Message::Watermark(1))).await;
        assert!(r.is_ok() && waited.is_none(), "room in the channel: no wait");
        let drain = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut n = 0;
            while std::future::poll_fn(|cx| rx.poll_recv(cx)).await.is_some() {
                n += 1;
            }
            n
        });
        let times = Arc::new(TaskTimes::default());
        let start = Instant::now();
        let mut clock = TaskClock::starting_at(times.clone(), start);
        let (r, waited) = timed(tx.send(Message::Watermark(2))).await;
        assert!(r.is_ok());
        let (from, to) = waited.expect("a full channel makes the sender wait");
        clock.blocked(to - from);
        clock.tick();
        drop(tx);
        assert_eq!(drain.await.expect("drain"), 2);
        assert!(times.backpressured() > Duration::ZERO, "{times:?}");
        assert_eq!(times.idle(), Duration::ZERO);
        assert!(times.busy() + times.backpressured() <= start.elapsed(), "{times:?}");
    }

    #[tokio::test]
    async fn waiting_for_input_is_idle_time() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
        let times = Arc::new(TaskTimes::default());
        let start = Instant::now();
        let mut clock = TaskClock::starting_at(times.clone(), start);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tx.send(7).await.expect("send");
        });
        let (got, waited) = timed(rx.recv()).await;
        assert_eq!(got, Some(7));
        assert!(waited.is_some(), "an empty channel makes the receiver wait");
        clock.waited(waited);
        clock.tick();
        assert!(times.idle() > Duration::ZERO);
        assert_eq!(times.backpressured(), Duration::ZERO);
        assert!(times.busy() + times.idle() <= start.elapsed(), "{times:?}");
    }
}
