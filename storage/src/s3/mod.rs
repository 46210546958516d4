//! A store in an S3-compatible bucket (AWS S3, MinIO, moto): `s3://bucket/prefix`.
//!
//! - Keys are relative to the URI's prefix; [`ObjectStore::list`] strips it again.
//! - [`ObjectStore::put`] is a single PUT (atomic in S3) or, from
//!   [`S3Options::multipart_threshold`] up, a multipart upload whose parts go up concurrently
//!   (at most [`S3Options::max_parts_in_flight`] at once); a failed upload is aborted. S3 shows a
//!   multipart object only once it is completed, so both forms are atomic for readers.
//! - [`ObjectStore::put_if_absent`] (manifests: small) is a single PUT with `If-None-Match: *` when
//!   [`S3Store::connect`]'s probe found the server honours it, and otherwise a best-effort check
//!   (see [`ConditionalWrites`]).
//! - Every request is retried by [`RetryPolicy`] on throttling, 5xx, connection and timeout
//!   errors, never on authentication or validation errors; timeouts bound each attempt, so an
//!   unresponsive server yields a retryable error, not a hang.
//! - [`ObjectStore::delete`] batches DeleteObjects (at most 1000 keys per call).
//! - [`S3Store::abort_incomplete_uploads`] removes the parts of uploads whose writer died.
//!
//! This module is the only importer of `aws-sdk-s3`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bytes::Bytes;

use super::{Error, ObjectMeta, ObjectStore, PutOutcome};

mod conditional;
pub mod config;
pub mod credentials;
mod delete;
mod errors;
mod multipart;
pub mod retry;
mod uploads;

pub use conditional::ConditionalWrites;
pub use config::{DEFAULT_REGION, S3Config, S3Location, S3Options};
pub use credentials::S3Credentials;
pub use retry::RetryPolicy;

use errors::classify;

/// An S3 bucket prefix used as an [`ObjectStore`]. Cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    config: Arc<S3Config>,
    describe: Arc<str>,
    conditional: ConditionalWrites,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store").field("store", &self.describe).field("conditional", &self.conditional).finish()
    }
}

impl S3Store {
    /// Opens the store and probes whether the server honours conditional writes (logging which
    /// `put_if_absent` mode is in use), unless [`S3Options::conditional_writes`] sets the mode. Fails with [`Error::Auth`] when the credentials are
    /// refused and with a non-retryable error when the bucket does not exist.
    pub async fn connect(config: S3Config) -> Result<S3Store, Error> {
        let forced = config.options.conditional_writes;
        let mut store = S3Store::unprobed(config);
        store.conditional = match forced {
            Some(mode) => mode,
            None => conditional::probe(&store).await?,
        };
        match store.conditional {
            ConditionalWrites::Supported => tracing::info!(
                store = %store.describe,
                "S3 server honours conditional writes: checkpoints are published with If-None-Match: *"
            ),
            ConditionalWrites::Unsupported => tracing::warn!(
                store = %store.describe,
                "S3 server ignores If-None-Match: publishing checkpoints with best-effort HEAD, PUT and \
                 read-back; two writers of the same checkpoint racing within one round trip may both succeed"
            ),
        }
        Ok(store)
    }

    /// A store that assumes conditional writes work, without probing (for the probe itself).
    fn unprobed(config: S3Config) -> S3Store {
        let describe = Arc::from(config.describe());
        S3Store {
            client: build_client(&config),
            config: Arc::new(config),
            describe,
            conditional: ConditionalWrites::Supported,
        }
    }

    /// Which `put_if_absent` mode the start-up probe selected.
    pub fn conditional_writes(&self) -> ConditionalWrites {
        self.conditional
    }

    /// The configuration this store was opened with.
    pub fn config(&self) -> &S3Config {
        &self.config
    }

    fn bucket(&self) -> &str {
        &self.config.location.bucket
    }

    fn options(&self) -> &S3Options {
        &self.config.options
    }

    /// The full object key for `key`, refusing keys the other stores refuse too.
    fn full_key(&self, key: &str) -> Result<String, Error> {
        if key.is_empty() || key.starts_with('/') || key.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Config(format!("invalid object key {key:?}")));
        }
        Ok(self.config.location.full_key(key))
    }

    /// One PUT of a whole object, optionally with `If-None-Match: *`. A 412 comes back as
    /// `Ok(AlreadyExists)`.
    async fn put_once(
        &self,
        op: &'static str,
        key: &str,
        bytes: Bytes,
        if_none_match: bool,
    ) -> Result<PutOutcome, Error> {
        let full = self.full_key(key)?;
        let mut request = self
            .client
            .put_object()
            .bucket(self.bucket())
            .key(full)
            .content_length(bytes.len() as i64)
            .body(ByteStream::from(bytes));
        if if_none_match {
            request = request.if_none_match("*");
        }
        match request.send().await {
            Ok(_) => Ok(PutOutcome::Created),
            Err(e) => match classify(&e) {
                errors::Failure::PreconditionFailed if if_none_match => Ok(PutOutcome::AlreadyExists),
                failure => Err(failure.into_error(&self.describe, op, key)),
            },
        }
    }

    async fn get_once(&self, key: &str) -> Result<Bytes, Error> {
        let full = self.full_key(key)?;
        let response = self
            .client
            .get_object()
            .bucket(self.bucket())
            .key(full)
            .send()
            .await
            .map_err(|e| classify(&e).into_error(&self.describe, "get", key))?;
        let body = response.body.collect().await.map_err(|e| Error::Backend {
            store: self.describe.to_string(),
            op: "get",
            key: key.to_string(),
            message: format!("reading the response body: {e}"),
            retryable: true,
        })?;
        Ok(body.into_bytes())
    }

    /// Whether an object exists at `key` (HEAD).
    async fn exists(&self, key: &str) -> Result<bool, Error> {
        let full = self.full_key(key)?;
        self.options()
            .retry
            .run("head", || async {
                match self.client.head_object().bucket(self.bucket()).key(&full).send().await {
                    Ok(_) => Ok(true),
                    Err(e) => match classify(&e) {
                        errors::Failure::NotFound => Ok(false),
                        failure => Err(failure.into_error(&self.describe, "head", key)),
                    },
                }
            })
            .await
    }

    async fn list_page(&self, prefix: &str, token: Option<String>) -> Result<(Vec<ObjectMeta>, Option<String>), Error> {
        let full_prefix = self.config.location.full_key(prefix);
        let response = self
            .client
            .list_objects_v2()
            .bucket(self.bucket())
            .prefix(full_prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| classify(&e).into_error(&self.describe, "list", prefix))?;
        let objects = response
            .contents()
            .iter()
            .filter_map(|o| {
                let key = self.config.location.relative_key(o.key()?)?;
                Some(ObjectMeta { key: key.to_string(), size: o.size().unwrap_or(0).max(0) as u64 })
            })
            .collect();
        let next = if response.is_truncated() == Some(true) { response.next_continuation_token } else { None };
        Ok((objects, next))
    }
}

/// The HTTP(S) client of every S3 client Sluice builds: hyper with rustls over ring (the SDK's
/// default would bring aws-lc, a second crypto library compiled from C).
pub fn http_client() -> aws_sdk_s3::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// The SDK client: custom endpoint, path-style, static credentials, bounded timeouts, and the SDK's
/// own retries off (ours classify errors and bound total time).
fn build_client(config: &S3Config) -> Client {
    let options = &config.options;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(options.connect_timeout)
        .operation_attempt_timeout(options.attempt_timeout)
        .build();
    let mut builder = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client())
        .region(Region::new(config.region.clone()))
        .credentials_provider(config.credentials.to_sdk())
        .force_path_style(config.path_style)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts)
        // Integrity is checked above the store (CRC-32C in the manifest); many S3-compatible
        // servers reject the SDK's newer default checksum headers.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn remove_abandoned_writes(&self, older_than: std::time::Duration) -> Result<usize, Error> {
        self.abort_incomplete_uploads(older_than).await
    }

    fn describe(&self) -> String {
        self.describe.to_string()
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<(), Error> {
        if bytes.len() >= self.options().multipart_threshold {
            return multipart::upload(self, key, bytes).await;
        }
        self.options().retry.run("put", || self.put_once("put", key, bytes.clone(), false)).await.map(|_| ())
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome, Error> {
        conditional::put_if_absent(self, key, bytes).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, Error> {
        self.options().retry.run("get", || self.get_once(key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = self.options().retry.run("list", || self.list_page(prefix, token.clone())).await?;
            out.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, keys: &[String]) -> Result<(), Error> {
        delete::delete_batched(self, keys).await
    }
}
