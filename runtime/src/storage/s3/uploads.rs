//! Leftover multipart uploads: a process killed mid-upload leaves its parts in the bucket,
//! invisible to listings and billed, until the upload is aborted. The orphan sweep removes them.

use std::time::{Duration, SystemTime};

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

impl S3Store {
    /// Aborts every multipart upload under this store's prefix that started more than
    /// `older_than` ago (pick a bound well above the longest upload, so live uploads of a running
    /// writer are spared). Returns how many were aborted.
    pub async fn abort_incomplete_uploads(&self, older_than: Duration) -> Result<usize, Error> {
        let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut aborted = 0;
        for upload in self.list_uploads().await? {
            if !is_stale(upload.started, cutoff) {
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
}
