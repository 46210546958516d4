//! Where the S3 key pair comes from: files in a mounted Kubernetes Secret, or the standard AWS
//! environment variables. Never from the job document, and never printed: `Debug` redacts.

use std::fmt;
use std::path::Path;

use super::super::Error;

/// File (inside `credentialsDir`) holding the access key id.
pub const ACCESS_KEY_FILE: &str = "accessKeyId";
/// File (inside `credentialsDir`) holding the secret access key.
pub const SECRET_KEY_FILE: &str = "secretAccessKey";
/// Optional file (inside `credentialsDir`) holding a session token.
pub const SESSION_TOKEN_FILE: &str = "sessionToken";

/// A static S3 key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// Access key id (not secret, but still kept out of logs).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &"<redacted>").finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// A key pair given directly (tests, embedding).
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> S3Credentials {
        S3Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Loads credentials: from `credentials_dir` when given (a mounted Secret wins), otherwise from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
    pub fn load(credentials_dir: Option<&str>) -> Result<S3Credentials, Error> {
        match credentials_dir {
            Some(dir) => S3Credentials::from_dir(Path::new(dir)),
            None => S3Credentials::from_env(),
        }
    }

    /// Reads `accessKeyId`, `secretAccessKey` and (optional) `sessionToken` from `dir`.
    pub fn from_dir(dir: &Path) -> Result<S3Credentials, Error> {
        let read = |name: &str| -> Result<Option<String>, Error> {
            match std::fs::read_to_string(dir.join(name)) {
                Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::Config(format!("reading S3 credentials file {}/{name}: {e}", dir.display()))),
            }
        };
        let missing =
            |name: &str| Error::Config(format!("S3 credentials: {}/{name} is missing or empty", dir.display()));
        Ok(S3Credentials {
            access_key_id: read(ACCESS_KEY_FILE)?.ok_or_else(|| missing(ACCESS_KEY_FILE))?,
            secret_access_key: read(SECRET_KEY_FILE)?.ok_or_else(|| missing(SECRET_KEY_FILE))?,
            session_token: read(SESSION_TOKEN_FILE)?,
        })
    }

    /// Reads the standard AWS environment variables.
    pub fn from_env() -> Result<S3Credentials, Error> {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => {
                Ok(S3Credentials { access_key_id, secret_access_key, session_token: var("AWS_SESSION_TOKEN") })
            }
            _ => Err(Error::Config(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or checkpointing.storage.credentialsDir"
                    .to_string(),
            )),
        }
    }

    /// The SDK's form of these credentials.
    pub(crate) fn to_sdk(&self) -> aws_sdk_s3::config::Credentials {
        aws_sdk_s3::config::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "sluice",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_from_a_secret_directory_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(ACCESS_KEY_FILE), "AKIA123\n").expect("write");
        std::fs::write(dir.path().join(SECRET_KEY_FILE), "s3cr3t\n").expect("write");
        let creds = S3Credentials::from_dir(dir.path()).expect("loads");
        assert_eq!(creds, S3Credentials::new("AKIA123", "s3cr3t"));
    }

    #[test]
    fn missing_secret_file_is_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(ACCESS_KEY_FILE), "AKIA123").expect("write");
        let err = S3Credentials::from_dir(dir.path()).expect_err("incomplete");
        assert!(matches!(&err, Error::Config(m) if m.contains(SECRET_KEY_FILE)), "{err}");
    }

    #[test]
    fn debug_output_never_contains_the_keys() {
        let shown = format!("{:?}", S3Credentials::new("AKIA123", "s3cr3t"));
        assert!(!shown.contains("AKIA123") && !shown.contains("s3cr3t"), "{shown}");
    }
}
