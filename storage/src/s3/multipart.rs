//! Multipart upload of large objects: parts go up concurrently, at most
//! [`S3Options::max_parts_in_flight`](super::S3Options::max_parts_in_flight) at once, each retried
//! on its own; any failure aborts the upload so no parts are left behind.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::errors::{Failure, classify};
use super::{Error, S3Store};

/// Uploads `bytes` to `key` in parts and completes the upload, or aborts it on failure.
pub(crate) async fn upload(store: &S3Store, key: &str, bytes: Bytes) -> Result<(), Error> {
    let full = store.full_key(key)?;
    // Registered before the upload exists, so the orphan sweep never aborts it (see `uploads`).
    let _in_flight = super::uploads::InFlight::register(store.bucket(), &full);
    let upload_id = store
        .options()
        .retry
        .run("create multipart upload", || async {
            let response = store
                .client
                .create_multipart_upload()
                .bucket(store.bucket())
                .key(&full)
                .send()
                .await
                .map_err(|e| classify(&e).into_error(&store.describe, "create multipart upload", key))?;
            response.upload_id.ok_or_else(|| backend(store, "create multipart upload", key, "no upload id in response"))
        })
        .await?;
    let result = match upload_parts(store, key, &full, &upload_id, &bytes).await {
        Ok(parts) => complete(store, key, &full, &upload_id, parts, bytes.len()).await,
        Err(e) => Err(e),
    };
    if let Err(err) = &result {
        abort(store, key, &full, &upload_id, err).await;
    }
    result
}

fn backend(store: &S3Store, op: &'static str, key: &str, message: &str) -> Error {
    Error::Backend {
        store: store.describe.to_string(),
        op,
        key: key.to_string(),
        message: message.to_string(),
        retryable: false,
    }
}

/// Uploads every part, bounded in flight; returns the parts in order.
async fn upload_parts(
    store: &S3Store,
    key: &str,
    full: &str,
    upload_id: &str,
    bytes: &Bytes,
) -> Result<Vec<CompletedPart>, Error> {
    let part_size = store.options().part_size.max(5 * 1024 * 1024);
    let in_flight = Arc::new(Semaphore::new(store.options().max_parts_in_flight.max(1)));
    let mut tasks = JoinSet::new();
    let mut parts = Vec::new();
    for (index, start) in (0..bytes.len()).step_by(part_size).enumerate() {
        // Wait for a free slot before spawning, so at most `max_parts_in_flight` parts exist.
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        // Stop early if a finished part failed.
        while let Some(done) = tasks.try_join_next() {
            parts.push(joined(store, key, done)?);
        }
        let chunk = bytes.slice(start..(start + part_size).min(bytes.len()));
        let part_number = index as i32 + 1;
        let (store, key, full, upload_id) = (store.clone(), key.to_string(), full.to_string(), upload_id.to_string());
        tasks.spawn(async move {
            let _permit = permit;
            upload_part(&store, &key, &full, &upload_id, part_number, chunk).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        parts.push(joined(store, key, done)?);
    }
    parts.sort_by_key(|p| p.part_number());
    Ok(parts)
}

fn joined(
    store: &S3Store,
    key: &str,
    done: Result<Result<CompletedPart, Error>, tokio::task::JoinError>,
) -> Result<CompletedPart, Error> {
    done.map_err(|e| backend(store, "upload part", key, &format!("part task failed: {e}")))?
}

async fn upload_part(
    store: &S3Store,
    key: &str,
    full: &str,
    upload_id: &str,
    part_number: i32,
    chunk: Bytes,
) -> Result<CompletedPart, Error> {
    let e_tag = store
        .options()
        .retry
        .run("upload part", || async {
            let response = store
                .client
                .upload_part()
                .bucket(store.bucket())
                .key(full)
                .upload_id(upload_id)
                .part_number(part_number)
                .content_length(chunk.len() as i64)
                .body(ByteStream::from(chunk.clone()))
                .send()
                .await
                .map_err(|e| classify(&e).into_error(&store.describe, "upload part", key))?;
            response.e_tag.ok_or_else(|| backend(store, "upload part", key, "no ETag in response"))
        })
        .await?;
    Ok(CompletedPart::builder().part_number(part_number).e_tag(e_tag).build())
}

/// Completes the upload. A retry after a lost response may find the upload already completed
/// (`NoSuchUpload`); then, as after a success response the SDK cannot parse, the object counts as
/// written if it is there with the expected size.
async fn complete(
    store: &S3Store,
    key: &str,
    full: &str,
    upload_id: &str,
    parts: Vec<CompletedPart>,
    size: usize,
) -> Result<(), Error> {
    let body = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
    let mut attempted = false;
    store
        .options()
        .retry
        .run("complete multipart upload", || {
            let retrying = std::mem::replace(&mut attempted, true);
            let body = body.clone();
            async move {
                let sent = store
                    .client
                    .complete_multipart_upload()
                    .bucket(store.bucket())
                    .key(full)
                    .upload_id(upload_id)
                    .multipart_upload(body)
                    .send()
                    .await;
                let Err(e) = sent else { return Ok(()) };
                // Some S3-compatible servers (moto) answer 200 with a body the SDK cannot parse
                // (`CompleteMultipartUploadResponse` instead of `...Result`): the upload is done.
                let unparsed_success = e.raw_response().is_some_and(|r| r.status().is_success());
                match classify(&e) {
                    _ if unparsed_success && completed_earlier(store, full, size).await => Ok(()),
                    Failure::NotFound if retrying && completed_earlier(store, full, size).await => Ok(()),
                    failure => Err(failure.into_error(&store.describe, "complete multipart upload", key)),
                }
            }
        })
        .await
}

async fn completed_earlier(store: &S3Store, full: &str, size: usize) -> bool {
    let head = store.client.head_object().bucket(store.bucket()).key(full).send().await;
    head.ok().and_then(|h| h.content_length).is_some_and(|len| len == size as i64)
}

/// Aborts the upload so its parts do not linger (best effort; logged on failure).
async fn abort(store: &S3Store, key: &str, full: &str, upload_id: &str, cause: &Error) {
    tracing::warn!(store = %store.describe, key, "multipart upload failed, aborting it: {cause}");
    let aborted = store
        .options()
        .retry
        .run("abort multipart upload", || async {
            store
                .client
                .abort_multipart_upload()
                .bucket(store.bucket())
                .key(full)
                .upload_id(upload_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify(&e).into_error(&store.describe, "abort multipart upload", key))
        })
        .await;
    if let Err(e) = aborted {
        tracing::warn!(store = %store.describe, key, upload_id, "could not abort multipart upload (a bucket lifecycle rule \
            AbortIncompleteMultipartUpload removes it later): {e}");
    }
}
