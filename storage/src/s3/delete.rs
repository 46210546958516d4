//! Deletes in batches of DeleteObjects (S3 takes at most 1000 keys per call).

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::errors::classify;
use super::{Error, S3Store};

/// Keys per DeleteObjects request (the S3 limit).
pub(crate) const MAX_KEYS_PER_DELETE: usize = 1000;

/// Deletes `keys`; keys that do not exist are not an error.
pub(crate) async fn delete_batched(store: &S3Store, keys: &[String]) -> Result<(), Error> {
    for batch in keys.chunks(MAX_KEYS_PER_DELETE) {
        let objects = batch
            .iter()
            .map(|key| {
                let full = store.full_key(key)?;
                ObjectIdentifier::builder().key(full).build().map_err(|e| Error::Config(format!("delete {key:?}: {e}")))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Error::Config(format!("delete request: {e}")))?;
        let first = batch.first().map(String::as_str).unwrap_or_default();
        store.options().retry.run("delete", || delete_once(store, first, delete.clone())).await?;
    }
    Ok(())
}

async fn delete_once(store: &S3Store, first: &str, delete: Delete) -> Result<(), Error> {
    let response = store
        .client
        .delete_objects()
        .bucket(store.bucket())
        .delete(delete)
        .send()
        .await
        .map_err(|e| classify(&e).into_error(&store.describe, "delete", first))?;
    // Per-key failures; a missing key is not one (S3 reports deletes of missing keys as success).
    let failed: Vec<_> = response.errors().iter().filter(|e| e.code() != Some("NoSuchKey")).collect();
    let Some(err) = failed.first() else { return Ok(()) };
    let code = err.code().unwrap_or_default();
    let key = err.key().and_then(|k| store.config.location.relative_key(k)).unwrap_or(first).to_string();
    let message =
        format!("{} keys not deleted, first {key:?}: {code}: {}", failed.len(), err.message().unwrap_or_default());
    Err(match code {
        "AccessDenied" => Error::Auth { store: store.describe.to_string(), message },
        "InternalError" | "SlowDown" | "ServiceUnavailable" => {
            Error::Backend { store: store.describe.to_string(), op: "delete", key, message, retryable: true }
        }
        _ => Error::Backend { store: store.describe.to_string(), op: "delete", key, message, retryable: false },
    })
}
