//! The once-a-second progress line of `--progress` and the demo.

use std::time::{Duration, Instant};

use super::JobHandles;
use crate::checkpoint::driver::stats;

/// Prints records, rate and the latest checkpoint every second, until aborted.
pub(super) async fn report_progress(h: JobHandles) {
    let start = Instant::now();
    let mut last = (0u64, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let records = h.metrics.source_records(&h.sources);
        let rate = (records - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
        last = (records, Instant::now());
        let s = stats(&h.stats).clone();
        let ckpt = match &s.latest {
            Some(c) => format!("last checkpoint {} ({}, {} ms)", c.id, human_bytes(c.size_bytes), c.duration_ms),
            None => "no checkpoint yet".to_string(),
        };
        println!(
            "[{:>5.1}s] {records:>12} records  {:>10.0} rec/s  {ckpt}  completed {} failed {}",
            start.elapsed().as_secs_f64(),
            rate,
            s.completed,
            s.failed
        );
    }
}

/// Formats a byte count for people.
pub fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}
