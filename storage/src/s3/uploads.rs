//! Leftover multipart uploads: a process killed mid-upload leaves its parts in the bucket,
//! invisible to listings and billed, until the upload is aborted. The orphan sweep removes them.
//!
//! Which uploads are provably abandoned: every multipart upload this process starts is first
//! registered as in flight (bucket and key, before `CreateMultipartUpload` is sent) and
//! deregistered only after it completed or was aborted. The sweep lists uploads, then aborts
//! each one whose key is not registered at that moment: it cannot be a write in flight in this
//! process. So it is a dead attempt's — or a zombie attempt's, already fenced by the checkpoint
//! claim, whose write then fails harmlessly. Under the job's layout ([`in_job_layout`]) that
//! holds at any age; elsewhere under the prefix an upload must also be older than the sweep's
//! age bound, in case another tool shares the prefix.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::layout::in_job_layout;

use super::errors::classify;
use super::{Error, S3Store};

/// An unfinished multipart upload found under the store's prefix.
struct Upload {
    key: String,
    upload_id: String,
    started: Option<SystemTime>,
}

/// Whether an upload started at `started` is older than `cutoff`. One without a start time counts
/// as stale: nothing else would ever clean it up.
fn is_stale(started: Option<SystemTime>, cutoff: SystemTime) -> bool {
    started.is_none_or(|t| t <= cutoff)
}

/// Whether the sweep aborts an upload to `relative_key` (the key under the store's prefix)
/// started at `started`, given whether this process has an upload to that key in flight.
fn is_abandoned(relative_key: &str, started: Option<SystemTime>, cutoff: SystemTime, in_flight: bool) -> bool {
    !in_flight && (in_job_layout(relative_key) || is_stale(started, cutoff))
}

/// Multipart uploads this process has started and not finished, by `bucket/full key`.
fn registry() -> &'static Mutex<HashMap<String, usize>> {
    static IN_FLIGHT: std::sync::OnceLock<Mutex<HashMap<String, usize>>> = std::sync::OnceLock::new();
    IN_FLIGHT.get_or_init(Default::default)
}

/// Registration of an upload in flight; dropping it deregisters the upload.
pub(super) struct InFlight(String);

impl InFlight {
    /// Registers an upload to `full` in `bucket`; call before the upload is created.
    pub(super) fn register(bucket: &str, full: &str) -> InFlight {
        let id = format!("{bucket}/{full}");
        *registry().lock().unwrap_or_else(|p| p.into_inner()).entry(id.clone()).or_default() += 1;
        InFlight(id)
    }

    fn contains(bucket: &str, full: &str) -> bool {
        registry().lock().unwrap_or_else(|p| p.into_inner()).contains_key(&format!("{bucket}/{full}"))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.0);
            }
        }
    }
}

impl S3Store {
    /// Aborts every multipart upload under this store's prefix that is provably abandoned (see
    /// the module docs): not in flight in this process, and under the job's layout or started
    /// more than `older_than` ago. Returns how many were aborted.
    pub async fn abort_incomplete_uploads(&self, older_than: Duration) -> Result<usize, Error> {
        let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut aborted = 0;
        for upload in self.list_uploads().await? {
            let relative = self.config.location.relative_key(&upload.key).unwrap_or(&upload.key);
            // Checked after listing: an upload registered later was not listed.
            let in_flight = InFlight::contains(self.bucket(), &upload.key);
            if !is_abandoned(relative, upload.started, cutoff, in_flight) {
                continue;
            }
            let sent = self
                .options()
                .retry
                .run("abort multipart upload", || async {
                    match self
                        .client
                        .abort_multipart_upload()
                        .bucket(self.bucket())
                        .key(&upload.key)
                        .upload_id(&upload.upload_id)
                        .send()
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(e) => match classify(&e) {
                            // Completed or aborted meanwhile.
                            super::errors::Failure::NotFound => Ok(()),
                            failure => Err(failure.into_error(&self.describe, "abort multipart upload", &upload.key)),
                        },
                    }
                })
                .await;
            sent?;
            tracing::info!(store = %self.describe, key = %upload.key, "aborted a leftover multipart upload");
            aborted += 1;
        }
        Ok(aborted)
    }

    async fn list_uploads(&self) -> Result<Vec<Upload>, Error> {
        let prefix = &self.config.location.prefix;
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        let mut markers: (Option<String>, Option<String>) = (None, None);
        let mut out = Vec::new();
        loop {
            let page = self
                .options()
                .retry
                .run("list multipart uploads", || async {
                    self.client
                        .list_multipart_uploads()
                        .bucket(self.bucket())
                        .prefix(&prefix)
                        .set_key_marker(markers.0.clone())
                        .set_upload_id_marker(markers.1.clone())
                        .send()
                        .await
                        .map_err(|e| classify(&e).into_error(&self.describe, "list multipart uploads", &prefix))
                })
                .await?;
            for u in page.uploads() {
                let (Some(key), Some(upload_id)) = (u.key(), u.upload_id()) else { continue };
                let started = u.initiated().and_then(|t| SystemTime::try_from(*t).ok());
                out.push(Upload { key: key.to_string(), upload_id: upload_id.to_string(), started });
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            let next = (page.next_key_marker().map(str::to_string), page.next_upload_id_marker().map(str::to_string));
            if next == markers || next.0.is_none() {
                return Ok(out);
            }
            markers = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_older_than_the_cutoff_are_stale() {
        let now = SystemTime::now();
        let cutoff = now - Duration::from_secs(3600);
        assert!(is_stale(Some(now - Duration::from_secs(7200)), cutoff));
        assert!(!is_stale(Some(now - Duration::from_secs(60)), cutoff), "a live upload is spared");
        assert!(is_stale(None, cutoff));
    }

    #[test]
    fn uploads_in_flight_here_are_never_abandoned_and_the_job_layout_ignores_age() {
        let now = SystemTime::now();
        let cutoff = now - Duration::from_secs(3600);
        let (young, old) = (Some(now), Some(now - Duration::from_secs(7200)));
        assert!(is_abandoned("state/chk-3/a-0-r1.state", young, cutoff, false), "a dead attempt's, however young");
        assert!(is_abandoned("savepoints/sp-1/state/x", young, cutoff, false));
        assert!(!is_abandoned("state/chk-3/a-0-r1.state", old, cutoff, true), "in flight here, however old");
        assert!(!is_abandoned("other/thing", young, cutoff, false), "outside the layout: only when old");
        assert!(is_abandoned("other/thing", old, cutoff, false));
        let guard = InFlight::register("b", "p/state/chk-1/x");
        let again = InFlight::register("b", "p/state/chk-1/x");
        drop(guard);
        assert!(InFlight::contains("b", "p/state/chk-1/x"), "still one upload in flight");
        drop(again);
        assert!(!InFlight::contains("b", "p/state/chk-1/x"));
    }
}
