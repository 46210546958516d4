//! Watermark of a task with several input channels: the minimum over the channels that have
//! not ended. Pure.

/// Per-channel watermarks and their combined minimum.
#[derive(Clone, Debug)]
pub struct WatermarkTracker {
    channels: Vec<Option<i64>>,
    ended: Vec<bool>,
    current: i64,
}

impl WatermarkTracker {
    /// A tracker for `n` channels; nothing is known until every channel reported.
    pub fn new(n: usize) -> WatermarkTracker {
        WatermarkTracker { channels: vec![None; n], ended: vec![false; n], current: i64::MIN }
    }

    /// The combined watermark.
    pub fn current(&self) -> i64 {
        self.current
    }

    fn recompute(&mut self) -> Option<i64> {
        let mut min = i64::MAX;
        for (w, e) in self.channels.iter().zip(&self.ended) {
            if *e {
                continue;
            }
            match w {
                Some(w) => min = min.min(*w),
                None => return None,
            }
        }
        if min > self.current {
            self.current = min;
            Some(min)
        } else {
            None
        }
    }

    /// Channel `ch` reported `w`; returns the new combined watermark if it advanced.
    pub fn update(&mut self, ch: usize, w: i64) -> Option<i64> {
        let slot = &mut self.channels[ch];
        if slot.is_none_or(|old| w > old) {
            *slot = Some(w);
        }
        self.recompute()
    }

    /// Channel `ch` ended; returns the new combined watermark if it advanced.
    pub fn end(&mut self, ch: usize) -> Option<i64> {
        self.ended[ch] = true;
        self.recompute()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_to_the_minimum_of_live_channels() {
        let mut t = WatermarkTracker::new(3);
        assert_eq!(t.update(0, 10), None);
        assert_eq!(t.update(1, 5), None);
        assert_eq!(t.update(2, 7), Some(5));
        assert_eq!(t.update(1, 20), Some(7));
        assert_eq!(t.update(1, 3), None, "watermarks never go back");
        assert_eq!(t.end(2), Some(10));
        assert_eq!(t.end(0), Some(20));
    }
}
