//! Shared helpers for the tests that run against the real S3 server started by
//! `scripts/services/s3.sh start` (moto). A missing server is a test failure with a clear message.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sluice_crds::contract::job_config::StorageSpec;
use sluice_storage::s3::{RetryPolicy, S3Config, S3Credentials, S3Location, S3Options};

/// The server and credentials `s3.sh` wrote to `$SLUICE_TOOLS/run/s3.env`.
#[derive(Clone, Debug)]
pub struct S3Env {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The test bucket.
    pub bucket: String,
    /// A key pair the server accepts.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
    /// Region.
    pub region: String,
    /// PID of the server process (for SIGSTOP/SIGCONT outages).
    pub pid: u32,
    /// A second server that checks signatures against `access_key_id`/`secret_access_key`
    /// (moto cannot check signatures of listings, so only credential tests use it).
    pub auth_endpoint: String,
}

const HOW: &str = "start the S3 test server with `scripts/services/s3.sh start` and `source .tools/run/s3.env` \
                   (make test does both)";

/// Reads the server's variables from the environment, or else from the env file `s3.sh` wrote.
/// Panics with instructions when neither is there: these tests never skip silently.
pub fn s3_env() -> S3Env {
    let file = env_file();
    let from_file = std::fs::read_to_string(&file).unwrap_or_default();
    let var = |name: &str| -> String {
        if let Ok(v) = std::env::var(name) {
            return v;
        }
        from_file
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export ")?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_else(|| {
                panic!("S3 test server not configured: {name} is unset and not in {}; {HOW}", file.display())
            })
    };
    let env = S3Env {
        endpoint: var("SLUICE_TEST_S3_ENDPOINT"),
        bucket: var("SLUICE_TEST_S3_BUCKET"),
        access_key_id: var("AWS_ACCESS_KEY_ID"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
        region: var("AWS_REGION"),
        pid: var("SLUICE_TEST_S3_PID").parse().expect("SLUICE_TEST_S3_PID is a pid"),
        auth_endpoint: var("SLUICE_TEST_S3_AUTH_ENDPOINT"),
    };
    let alive = Command::new("kill").arg("-0").arg(env.pid.to_string()).status().is_ok_and(|s| s.success());
    assert!(alive, "S3 test server (pid {}) is not running; {HOW}", env.pid);
    env
}

fn env_file() -> PathBuf {
    let tools = std::env::var_os("SLUICE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"));
    tools.join("run/s3.env")
}

/// A fresh `s3://bucket/tests/<name>-<uuid>` URI, so tests never see each other's objects.
pub fn unique_uri(env: &S3Env, name: &str) -> String {
    format!("s3://{}/tests/{name}-{}", env.bucket, uuid::Uuid::new_v4().simple())
}

/// Options with short timeouts and retry budget, so failure tests end quickly.
pub fn fast_options() -> S3Options {
    S3Options {
        connect_timeout: Duration::from_secs(1),
        attempt_timeout: Duration::from_secs(2),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            max_elapsed: Duration::from_secs(5),
        },
        ..S3Options::default()
    }
}

/// A store configuration for `uri` on the test server.
pub fn config(env: &S3Env, uri: &str) -> S3Config {
    S3Config {
        location: S3Location::parse(uri).expect("valid test URI"),
        endpoint: Some(env.endpoint.clone()),
        region: env.region.clone(),
        path_style: true,
        credentials: S3Credentials::new(&env.access_key_id, &env.secret_access_key),
        options: fast_options(),
    }
}

/// A store configuration for `uri` on the signature-checking server.
pub fn auth_config(env: &S3Env, uri: &str) -> S3Config {
    S3Config { endpoint: Some(env.auth_endpoint.clone()), ..config(env, uri) }
}

/// The job document's storage block for `uri` on the test server (credentials from the env).
pub fn storage_spec(env: &S3Env, uri: &str) -> StorageSpec {
    StorageSpec {
        uri: uri.to_string(),
        endpoint: Some(env.endpoint.clone()),
        region: Some(env.region.clone()),
        path_style: Some(true),
        credentials_dir: None,
    }
}

/// Freezes the S3 server (SIGSTOP) until dropped (SIGCONT), even when the test panics.
pub struct Outage {
    pid: u32,
}

impl Outage {
    /// Stops the server process.
    pub fn begin(env: &S3Env) -> Outage {
        signal("-STOP", env.pid);
        Outage { pid: env.pid }
    }

    /// Resumes the server now.
    pub fn end(self) {}
}

impl Drop for Outage {
    fn drop(&mut self) {
        // No assert here: a panic while unwinding would abort the test binary.
        let resumed = Command::new("kill").arg("-CONT").arg(self.pid.to_string()).status();
        if !resumed.is_ok_and(|s| s.success()) {
            eprintln!("could not SIGCONT the S3 server (pid {})", self.pid);
        }
    }
}

fn signal(sig: &str, pid: u32) {
    let status = Command::new("kill").arg(sig).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

/// A directory laid out like the mounted Secret the operator gives runtime pods
/// (`accessKeyId`, `secretAccessKey`), holding the test server's key pair.
pub fn secret_dir(env: &S3Env) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("accessKeyId"), &env.access_key_id).expect("write accessKeyId");
    std::fs::write(dir.path().join("secretAccessKey"), &env.secret_access_key).expect("write secretAccessKey");
    dir
}

/// The `storage:` block of a job document (indented 4 spaces) for `uri` on the test server, with
/// credentials from `secret` — so child processes need no AWS variables in their environment.
pub fn storage_yaml(env: &S3Env, uri: &str, secret: &std::path::Path) -> String {
    format!(
        "    uri: {uri}\n    endpoint: {}\n    region: {}\n    pathStyle: true\n    credentialsDir: {}",
        env.endpoint,
        env.region,
        secret.display()
    )
}
