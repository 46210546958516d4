//! What an `s3://bucket/prefix` store needs: location, endpoint, region, addressing, credentials
//! and tuning (timeouts, retries, multipart).

use std::time::Duration;

use sluice_crds::contract::job_config::StorageSpec;

use super::super::Error;
use super::conditional::ConditionalWrites;
use super::credentials::S3Credentials;
use super::retry::RetryPolicy;

/// Region used when none is configured (what MinIO and moto expect).
pub const DEFAULT_REGION: &str = "us-east-1";

/// Bucket and key prefix of an `s3://bucket/prefix` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket` or `s3://bucket/some/prefix/`.
    pub fn parse(uri: &str) -> Result<S3Location, Error> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| Error::Config(format!("{uri:?} is not an s3:// URI")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !valid_bucket {
            return Err(Error::Config(format!("{uri:?}: {bucket:?} is not a valid S3 bucket name")));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|c| c == "..") || prefix.contains("//") {
            return Err(Error::Config(format!("{uri:?}: invalid key prefix {prefix:?}")));
        }
        Ok(S3Location { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    /// The full object key for a store-relative key.
    pub fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    /// The store-relative key of a full object key, if it lies under the prefix.
    pub fn relative_key<'a>(&self, full: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() { Some(full) } else { full.strip_prefix(&self.prefix)?.strip_prefix('/') }
    }
}

/// Tuning of an S3 store. The defaults suit a real S3 or MinIO; tests shorten the timeouts.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Objects at least this large go up with multipart upload.
    pub multipart_threshold: usize,
    /// Size of each multipart part (S3 needs at least 5 MiB except for the last).
    pub part_size: usize,
    /// Parts uploaded at once (bounds memory in flight and connections).
    pub max_parts_in_flight: usize,
    /// Time allowed to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one request (a part, a small put, a get).
    pub attempt_timeout: Duration,
    /// Retries of throttling, 5xx, connection and timeout errors.
    pub retry: RetryPolicy,
    /// `None`: probe the server at connect. `Some(mode)`: trust the operator and skip the probe.
    pub conditional_writes: Option<ConditionalWrites>,
}

impl Default for S3Options {
    fn default() -> S3Options {
        S3Options {
            multipart_threshold: 8 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            max_parts_in_flight: 4,
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            conditional_writes: None,
        }
    }
}

/// Everything needed to open an [`super::S3Store`].
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Bucket and prefix.
    pub location: S3Location,
    /// Endpoint URL of an S3-compatible server; `None` means AWS's regional endpoint.
    pub endpoint: Option<String>,
    /// Region to sign for.
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), as MinIO and moto need.
    pub path_style: bool,
    /// Key pair (redacted in `Debug`).
    pub credentials: S3Credentials,
    /// Tuning.
    pub options: S3Options,
}

impl S3Config {
    /// Builds the configuration for `uri` from a job's storage block; credentials come from
    /// `credentials_dir` or the AWS environment variables, never from the spec itself.
    pub fn from_spec(uri: &str, spec: &StorageSpec) -> Result<S3Config, Error> {
        let location = S3Location::parse(uri)?;
        if let Some(endpoint) = &spec.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(Error::Config(format!("S3 endpoint {endpoint:?} must start with http:// or https://")));
        }
        Ok(S3Config {
            location,
            endpoint: spec.endpoint.clone(),
            region: spec.region.clone().unwrap_or_else(|| DEFAULT_REGION.to_string()),
            path_style: spec.path_style.unwrap_or(true),
            credentials: S3Credentials::load(spec.credentials_dir.as_deref())?,
            options: S3Options::default(),
        })
    }

    /// How the store names itself in logs and errors: bucket, prefix and endpoint, no secrets.
    pub fn describe(&self) -> String {
        let endpoint = self.endpoint.as_deref().unwrap_or("AWS");
        let S3Location { bucket, prefix } = &self.location;
        format!("s3://{bucket}/{prefix} (bucket {bucket:?} at endpoint {endpoint})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_splits_into_bucket_and_normalised_prefix() {
        let loc = S3Location::parse("s3://ckpt/jobs/demo/").expect("parses");
        assert_eq!(loc, S3Location { bucket: "ckpt".into(), prefix: "jobs/demo".into() });
        assert_eq!(loc.full_key("manifests/a"), "jobs/demo/manifests/a");
        assert_eq!(loc.relative_key("jobs/demo/manifests/a"), Some("manifests/a"));
        assert_eq!(loc.relative_key("jobs/demo2/x"), None);
        let bare = S3Location::parse("s3://ckpt").expect("parses");
        assert_eq!(bare.full_key("a"), "a");
    }

    #[test]
    fn bad_uris_are_config_errors() {
        for uri in ["s3://", "s3://A_B/x", "file:///x", "s3://ok-bucket/../x", "s3://ok-bucket/a//b"] {
            assert!(matches!(S3Location::parse(uri), Err(Error::Config(_))), "{uri}");
        }
    }

    #[test]
    fn spec_defaults_to_path_style_and_us_east_1_and_reads_credentials_from_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("accessKeyId"), "AK").expect("write");
        std::fs::write(dir.path().join("secretAccessKey"), "SK").expect("write");
        let spec = StorageSpec {
            uri: "s3://ckpt/demo".into(),
            endpoint: Some("http://minio:9000".into()),
            region: None,
            path_style: None,
            credentials_dir: Some(dir.path().display().to_string()),
        };
        let config = S3Config::from_spec(&spec.uri, &spec).expect("config");
        assert!(config.path_style);
        assert_eq!(config.region, DEFAULT_REGION);
        assert_eq!(config.credentials, S3Credentials::new("AK", "SK"));
        let shown = format!("{} {config:?}", config.describe());
        assert!(shown.contains("http://minio:9000") && shown.contains("ckpt") && !shown.contains("SK\""), "{shown}");
    }
}
