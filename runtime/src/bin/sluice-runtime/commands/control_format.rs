//! The human layouts of `status`, `checkpoints` and `stop`.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use sluice_crds::contract::control::{
    CheckpointKind, CheckpointOutcome, History, JobState, JobStatus, SavepointState, StopKind, StopResponse,
};
use sluice_runtime::job::human_bytes;

fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::Finished => "finished",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// `ms` as a short duration: `35 ms`, `1.2 s`, `3 min 4 s`.
pub fn human_ms(ms: u64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

/// An epoch time in ms as `2026-12-01T03:40:01Z`.
fn wall(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `status`'s layout (like `flink list`, one job): one `label: value` a line.
pub fn status_text(s: &JobStatus, addr: &str, now_ms: u64) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{:<16} {value}", format!("{label}:"));
    };
    line("state", state_word(s.state).to_string());
    line("run id", s.run_id.clone());
    line("endpoint", addr.to_string());
    line("restored from", s.restored_from.clone().unwrap_or_else(|| "nothing (fresh start)".into()));
    match &s.latest {
        Some(l) => {
            let age = human_ms(now_ms.saturating_sub(l.completed_at_ms));
            let figures = format!("{}, took {}", human_bytes(l.size_bytes), human_ms(l.duration_ms));
            line("last checkpoint", format!("#{} ({age} ago, {figures})", l.id));
            line("  manifest", l.path.clone());
        }
        None => line("last checkpoint", "none yet".into()),
    }
    line(
        "checkpoints",
        format!("{} completed, {} failed this run ({} failed in a row)", s.completed, s.failed, s.consecutive_failures),
    );
    line("in progress", s.in_progress.map_or_else(|| "none".into(), |id| format!("#{id}")));
    if let Some(f) = &s.last_failure {
        line("last failure", f.clone());
    }
    out
}

fn kind_word(k: CheckpointKind) -> &'static str {
    match k {
        CheckpointKind::Checkpoint => "checkpoint",
        CheckpointKind::Savepoint => "savepoint",
        CheckpointKind::StopSavepoint => "stop-savepoint",
        CheckpointKind::Final => "final",
    }
}

fn outcome_word(o: CheckpointOutcome) -> &'static str {
    match o {
        CheckpointOutcome::InProgress => "in progress",
        CheckpointOutcome::Completed => "completed",
        CheckpointOutcome::Failed => "failed",
        CheckpointOutcome::Aborted => "aborted",
    }
}

fn savepoint_word(s: SavepointState) -> &'static str {
    match s {
        SavepointState::Pending => "pending",
        SavepointState::Completed => "completed",
        SavepointState::Failed => "failed",
    }
}

/// `checkpoints`'s layout: a table of checkpoints, then one of savepoints, newest first.
pub fn checkpoints_table(h: &History, now_ms: u64) -> String {
    let mut out = format!("run {}: last {} checkpoints\n", h.run_id, h.checkpoints.len());
    let _ = writeln!(
        out,
        "{:>6}  {:<14}  {:<11}  {:<20}  {:>9}  {:>10}  LOCATION / ERROR",
        "ID", "KIND", "STATUS", "TRIGGERED", "DURATION", "SIZE"
    );
    for c in &h.checkpoints {
        let duration = c
            .duration_ms
            .map_or_else(|| format!("{} so far", human_ms(now_ms.saturating_sub(c.triggered_at_ms))), human_ms);
        let size = c.size_bytes.map_or_else(|| "-".into(), human_bytes);
        let tail = c.location.clone().or_else(|| c.error.clone()).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>6}  {:<14}  {:<11}  {:<20}  {:>9}  {:>10}  {tail}",
            c.id.0,
            kind_word(c.kind),
            outcome_word(c.status),
            wall(c.triggered_at_ms),
            duration,
            size
        );
    }
    let _ = writeln!(out, "\nlast {} savepoints", h.savepoints.len());
    if !h.savepoints.is_empty() {
        let _ = writeln!(out, "{:<24}  {:<9}  {:<20}  {:>9}  LOCATION / ERROR", "ID", "STATE", "REQUESTED", "DURATION");
    }
    for s in &h.savepoints {
        let duration = s.duration_ms.map_or_else(|| "-".into(), human_ms);
        let tail = s.location.clone().or_else(|| s.error.clone()).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<24}  {:<9}  {:<20}  {:>9}  {tail}",
            s.id,
            savepoint_word(s.state),
            wall(s.requested_at_ms),
            duration
        );
    }
    out
}

/// `stop`'s and `cancel`'s line.
pub fn stop_text(r: &StopResponse) -> String {
    match (r.stopped, &r.savepoint) {
        (StopKind::Savepoint, Some(location)) => format!("job stopped with savepoint: {location}"),
        (StopKind::Savepoint, None) => "job stopped with savepoint (no location reported)".into(),
        (StopKind::Cancel, _) => "job cancelled".into(),
    }
}

#[cfg(test)]
mod tests {
    use sluice_crds::CheckpointId;
    use sluice_crds::contract::control::{CheckpointInfo, CheckpointRecord, SavepointRecord};

    use super::*;

    #[test]
    fn status_shows_the_figures() {
        let s = JobStatus {
            version: 1,
            run_id: "r7".into(),
            state: JobState::Running,
            restored_from: Some("file:///c/manifests/chk-3.json".into()),
            latest: Some(CheckpointInfo {
                id: CheckpointId(9),
                path: "file:///c/manifests/chk-9.json".into(),
                completed_at_ms: 10_000,
                size_bytes: 4096,
                duration_ms: 35,
            }),
            in_progress: Some(CheckpointId(10)),
            completed: 6,
            failed: 1,
            consecutive_failures: 0,
            last_failure: Some("checkpoint 7: timed out".into()),
        };
        let text = status_text(&s, "127.0.0.1:1", 12_500);
        for needle in [
            "state:           running",
            "run id:          r7",
            "restored from:   file:///c/manifests/chk-3.json",
            "last checkpoint: #9 (2.5 s ago, 4.0 KiB, took 35 ms)",
            "6 completed, 1 failed",
            "in progress:     #10",
            "last failure:    checkpoint 7: timed out",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
    }

    #[test]
    fn the_table_has_a_row_per_record() {
        let h = History {
            version: 1,
            run_id: "r".into(),
            checkpoints: vec![CheckpointRecord {
                id: CheckpointId(4),
                kind: CheckpointKind::Checkpoint,
                status: CheckpointOutcome::Failed,
                triggered_at_ms: 0,
                duration_ms: Some(61_000),
                size_bytes: None,
                location: None,
                error: Some("task 2: disk full".into()),
            }],
            savepoints: vec![SavepointRecord {
                id: "sp-r-1".into(),
                state: SavepointState::Completed,
                location: Some("file:///sp".into()),
                error: None,
                requested_at_ms: 0,
                duration_ms: Some(120),
            }],
        };
        let t = checkpoints_table(&h, 0);
        let row = t.lines().find(|l| l.trim_start().starts_with('4')).expect("row of checkpoint 4");
        for needle in ["checkpoint", "failed", "1970-01-01T00:00:00Z", "1 min 1 s", "task 2: disk full"] {
            assert!(row.contains(needle), "{needle:?} not in {row:?}");
        }
        assert!(t.lines().any(|l| l.starts_with("sp-r-1") && l.contains("120 ms") && l.ends_with("file:///sp")), "{t}");
    }
}
