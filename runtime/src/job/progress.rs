//! The once-a-second progress line of `--progress` and the demo.

use std::time::{Duration, Instant};

use sluice_crds::CheckpointId;

use super::JobHandles;
use crate::checkpoint::driver::{CheckpointStats, stats};

/// Prints records, rate and checkpoints every second, until aborted.
pub(super) async fn report_progress(h: JobHandles, restored_from: Option<CheckpointId>, before: Option<u64>) {
    let start = Instant::now();
    let mut last = (0u64, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let records = h.metrics.source_records(&h.sources);
        let rate = (records - last.0) as f64 / last.1.elapsed().as_secs_f64().max(1e-3);
        last = (records, Instant::now());
        let counts = Counts { records, rate, before: restored_from.and(before) };
        let line = progress_line(start.elapsed(), counts, &stats(&h.stats), restored_from);
        println!("{line}");
    }
}

/// The record figures of a progress line.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    /// Records the sources emitted this run.
    pub records: u64,
    /// Records per second over the last second.
    pub rate: f64,
    /// Records counted before this run (the restored checkpoint's total), when known.
    pub before: Option<u64>,
}

/// One progress line. Every number says what it counts: checkpoint ids run on across restores
/// (`latest #8`), the counts are this run's (`3 completed`) and, after a restore, the records
/// since the job first started (`5200 since the job started`: the restored checkpoint's total
/// plus this run's; replayed records are not counted twice), and a restored run says where it
/// started (`restored from #5`), so an id above the count reads as what it is.
pub(super) fn progress_line(
    elapsed: Duration,
    counts: Counts,
    s: &CheckpointStats,
    restored_from: Option<CheckpointId>,
) -> String {
    let Counts { records, rate, before } = counts;
    let latest = match &s.latest {
        Some(c) => format!(", latest #{} ({}, {} ms)", c.id, human_bytes(c.size_bytes), c.duration_ms),
        None => String::new(),
    };
    let restored = restored_from.map(|c| format!("; restored from checkpoint #{c}")).unwrap_or_default();
    let total = before.map(|b| format!(", {} since the job started", b + records)).unwrap_or_default();
    format!(
        "[{:>5.1}s] {records} records this run ({rate:.0}/s){total}; checkpoints this run: {} completed, {} failed{latest}{restored}",
        elapsed.as_secs_f64(),
        s.completed,
        s.failed,
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::driver::CompletedCheckpoint;

    #[test]
    fn each_number_of_the_progress_line_says_what_it_counts() {
        let s = CheckpointStats {
            completed: 3,
            failed: 1,
            latest: Some(CompletedCheckpoint { id: 8, size_bytes: 2048, duration_ms: 35, ..Default::default() }),
            ..Default::default()
        };
        let counts = Counts { records: 1200, rate: 400.0, before: Some(4000) };
        let line = progress_line(Duration::from_millis(3000), counts, &s, Some(CheckpointId(4)));
        assert_eq!(
            line,
            "[  3.0s] 1200 records this run (400/s), 5200 since the job started; checkpoints this run: 3 completed, 1 failed, latest #8 (2.0 KiB, 35 ms); restored from checkpoint #4"
        );
        // Restored from a checkpoint without a count (an older runtime's): no total is made up.
        let unknown = Counts { before: None, ..counts };
        let line = progress_line(Duration::from_millis(3000), unknown, &s, Some(CheckpointId(4)));
        assert!(line.starts_with("[  3.0s] 1200 records this run (400/s); checkpoints"), "{line}");
        let fresh = progress_line(Duration::from_secs(1), Counts::default(), &CheckpointStats::default(), None);
        assert_eq!(fresh, "[  1.0s] 0 records this run (0/s); checkpoints this run: 0 completed, 0 failed");
    }
}
