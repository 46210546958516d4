//! Firing the aligned windows a watermark passed a chunk at a time.
//!
//! A watermark can pass many windows at once: the end of a bounded input (the final watermark)
//! or a source that falls idle and then jumps fire every open window of every key in one go.
//! Made in one call, their results would sit in one batch — a whole state's worth of records
//! (in Nexmark q5, 1.5 M results and 300 MB at the end of the run). So an operator fires at
//! most [`FIRE_CHUNK`] keys per call of `on_watermark` (or `finish`) and says, through
//! [`Operator::more_due`](crate::engine::operator::Operator::more_due), that more are due; the
//! task sends each call's output on before it calls again with the same watermark. Nothing else
//! runs in between (no record, no barrier), so the results, their order and the state a
//! checkpoint sees are those of one call.
//!
//! The timers are the keys with a window whose last event time (`end - 1`) is the map's key.
//! [`FireCursor`] remembers how far firing got: every timer up to `fired` has fired, and the
//! first `next` keys (in firing order) of the timer after it.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Included};

use crate::value::Value;

/// The most keys whose windows fire in one call.
pub const FIRE_CHUNK: usize = 4096;

/// The keys with a window ending at each time, by that window's last event time.
pub type Timers = BTreeMap<i64, Vec<Value>>;

/// How far the timers have fired; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct FireCursor {
    /// Every timer at or before this time has fired.
    fired: i64,
    /// How many keys of the first timer after `fired` have fired.
    next: usize,
}

impl Default for FireCursor {
    fn default() -> FireCursor {
        FireCursor { fired: i64::MIN, next: 0 }
    }
}

impl FireCursor {
    /// After a restore at `watermark`: every window it passed has fired.
    pub fn restored(&mut self, watermark: i64) {
        *self = FireCursor { fired: watermark, next: 0 };
    }

    /// Whether a window ending at or before `watermark` is still to fire.
    pub fn due(&self, timers: &Timers, watermark: i64) -> bool {
        self.fired < watermark && timers.range((Excluded(self.fired), Included(watermark))).next().is_some()
    }

    /// The next at most `budget` keys to fire at `watermark` and their windows' last event
    /// time, or `None` when every window it passed has fired. A timer's keys are put in firing
    /// order by `order` before its first chunk.
    pub fn next_chunk(
        &mut self,
        timers: &mut Timers,
        watermark: i64,
        budget: usize,
        order: impl FnOnce(&mut Vec<Value>),
    ) -> Option<(i64, Vec<Value>)> {
        if self.fired >= watermark || budget == 0 {
            return None;
        }
        let Some((&max_ts, keys)) = timers.range_mut((Excluded(self.fired), Included(watermark))).next() else {
            *self = FireCursor { fired: watermark, next: 0 };
            return None;
        };
        if self.next == 0 {
            order(keys);
        }
        let from = self.next.min(keys.len());
        let end = keys.len().min(from.saturating_add(budget));
        let chunk = keys[from..end].to_vec();
        *self = if end < keys.len() {
            FireCursor { next: end, ..*self }
        } else if timers.range((Excluded(max_ts), Included(watermark))).next().is_some() {
            FireCursor { fired: max_ts, next: 0 }
        } else {
            // The last timer the watermark passed: everything up to the watermark has fired, so
            // a window a late record adds at or before it is never fired again.
            FireCursor { fired: watermark, next: 0 }
        };
        Some((max_ts, chunk))
    }

    /// The first timer whose windows are closed at `watermark` (fired, and past `lateness`),
    /// taken out of `timers`; only once every window the watermark passed has fired.
    pub fn take_closed(&self, timers: &mut Timers, watermark: i64, lateness: i64) -> Option<(i64, Vec<Value>)> {
        if self.due(timers, watermark) {
            return None;
        }
        let first = timers.first_entry()?;
        (first.key().saturating_add(lateness) <= watermark).then(|| first.remove_entry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_seq::Seq;

    /// Random timers fired chunk by chunk give every due key once, in time order then in the
    /// order given, as one pass over the due timers does; the closed ones go after.
    #[test]
    fn chunks_give_every_due_key_once_in_order() {
        let mut rng = Seq(11);
        let mut below = move |n: u64| rng.next() % n;
        for round in 0..200 {
            let mut timers = Timers::new();
            for _ in 0..below(20) {
                let at = below(50) as i64;
                let keys = (0..below(30)).map(|_| Value::Int(below(1000) as i64));
                timers.entry(at).or_default().extend(keys);
            }
            let mut cursor = FireCursor::default();
            let mut fired_to = i64::MIN;
            for _ in 0..4 {
                let w = fired_to.max(0) + below(25) as i64;
                let lateness = below(10) as i64;
                // The reference: one pass over the timers the watermark newly passed.
                let expected: Vec<(i64, Value)> = timers
                    .iter()
                    .filter(|(t, _)| **t > fired_to && **t <= w)
                    .flat_map(|(t, keys)| {
                        let mut keys = keys.clone();
                        keys.sort_by_key(|k| std::cmp::Reverse(k.as_i64()));
                        keys.into_iter().map(move |k| (*t, k))
                    })
                    .collect();
                let budget = 1 + below(40) as usize;
                let mut got = Vec::new();
                let mut calls = 0;
                loop {
                    calls += 1;
                    let mut left = budget;
                    while let Some((t, keys)) =
                        cursor.next_chunk(&mut timers, w, left, |k| k.sort_by_key(|k| std::cmp::Reverse(k.as_i64())))
                    {
                        assert!(keys.len() <= left, "round {round}: a chunk over its budget");
                        left -= keys.len();
                        got.extend(keys.into_iter().map(|k| (t, k)));
                    }
                    if !cursor.due(&timers, w) {
                        break;
                    }
                    assert_eq!(left, 0, "round {round}: stopped with budget left and keys due");
                }
                assert_eq!(got, expected, "round {round}");
                // A late record (within the allowed lateness) adds its window to a timer the
                // watermark already passed: it is emitted at once, never fired again.
                let late = w - below(5) as i64;
                timers.entry(late).or_default().push(Value::Int(-1));
                assert!(!cursor.due(&timers, w), "round {round}: a passed timer is due again");
                let again = cursor.next_chunk(&mut timers, w, budget, |_| ());
                assert!(again.is_none(), "round {round}: a passed timer fired again: {again:?}");
                assert!(calls <= expected.len() / budget + 1, "round {round}: {calls} calls");
                while let Some((t, _)) = cursor.take_closed(&mut timers, w, lateness) {
                    assert!(t + lateness <= w, "round {round}: took an open timer");
                }
                assert!(timers.keys().all(|t| t + lateness > w), "round {round}: a closed timer left");
                fired_to = w;
            }
        }
    }
}
