//! Turns SDK failures into [`storage::Error`](super::super::Error)s that say whose fault they are
//! and whether a retry may help.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::super::Error;

/// What a failed S3 request means for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// 404 / `NoSuchKey`.
    NotFound,
    /// 412: a conditional write found an existing object.
    PreconditionFailed,
    /// 401/403: credentials rejected or not allowed.
    Auth(String),
    /// Throttling, 5xx, timeouts, connection failures: may succeed later.
    Retryable(String),
    /// Anything else (validation, missing bucket, unsupported request): retrying will not help.
    Fatal(String),
}

/// Error codes that mean "slow down" or "try again" whatever the status code says.
const RETRYABLE_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
    "ConditionalRequestConflict",
    "OperationAborted",
];

/// Classifies an SDK error by transport failure, HTTP status and S3 error code.
pub(crate) fn classify<E>(err: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = DisplayErrorContext(err).to_string();
    match err {
        SdkError::ConstructionFailure(_) => return Failure::Fatal(message),
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => return Failure::Retryable(message),
        SdkError::DispatchFailure(d) => {
            let user = d.as_connector_error().is_some_and(|c| c.is_user());
            return if user { Failure::Fatal(message) } else { Failure::Retryable(message) };
        }
        _ => {}
    }
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.code().unwrap_or_default();
    // The server's own words are clearer than the SDK's debug dump of the whole response.
    let message = match err.message() {
        Some(text) if !code.is_empty() => format!("{code}: {text} (HTTP {status})"),
        _ => message,
    };
    match (status, code) {
        (404, _) | (_, "NoSuchKey") if code != "NoSuchBucket" => Failure::NotFound,
        (412, _) | (_, "PreconditionFailed") => Failure::PreconditionFailed,
        (401 | 403, _)
        | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "ExpiredToken" | "InvalidToken") => {
            Failure::Auth(message)
        }
        (408 | 429 | 500..=599, _) => Failure::Retryable(message),
        (_, code) if RETRYABLE_CODES.contains(&code) => Failure::Retryable(message),
        _ => Failure::Fatal(message),
    }
}

impl Failure {
    /// The storage error for this failure of `op` on `key` in `store`.
    pub(crate) fn into_error(self, store: &str, op: &'static str, key: &str) -> Error {
        let store = store.to_string();
        let key = key.to_string();
        match self {
            Failure::NotFound => Error::NotFound { store, key },
            Failure::PreconditionFailed => {
                Error::Backend { store, op, key, message: "precondition failed (412)".to_string(), retryable: false }
            }
            Failure::Auth(message) => Error::Auth { store, message },
            Failure::Retryable(message) => Error::Backend { store, op, key, message, retryable: true },
            Failure::Fatal(message) => Error::Backend { store, op, key, message, retryable: false },
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::config::http::HttpResponse;
    use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    use super::*;

    fn service(status: u16, code: &str) -> SdkError<GetObjectError> {
        let err = GetObjectError::generic(ErrorMetadata::builder().code(code).message("m").build());
        let raw = HttpResponse::new(status.try_into().expect("status"), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused")
    }

    #[test]
    fn auth_failures_are_never_retried() {
        for (status, code) in
            [(403, "SignatureDoesNotMatch"), (403, "InvalidAccessKeyId"), (403, "AccessDenied"), (401, "")]
        {
            assert!(matches!(classify(&service(status, code)), Failure::Auth(_)), "{status} {code}");
        }
        let err = classify(&service(403, "SignatureDoesNotMatch")).into_error("s3://b/p (endpoint e)", "get", "k");
        assert!(matches!(err, Error::Auth { .. }) && !err.is_retryable());
    }

    #[test]
    fn throttling_server_errors_timeouts_and_connection_failures_are_retryable() {
        for (status, code) in [
            (503, "SlowDown"),
            (500, "InternalError"),
            (429, ""),
            (400, "RequestTimeout"),
            (409, "ConditionalRequestConflict"),
        ] {
            assert!(matches!(classify(&service(status, code)), Failure::Retryable(_)), "{status} {code}");
        }
        assert!(matches!(classify(&SdkError::<GetObjectError>::timeout_error(io())), Failure::Retryable(_)));
        let dispatch = SdkError::<GetObjectError>::dispatch_failure(ConnectorError::io(io().into()));
        assert!(matches!(classify(&dispatch), Failure::Retryable(_)));
        let err = Failure::Retryable("x".into()).into_error("s", "put", "k");
        assert!(err.is_retryable());
    }

    #[test]
    fn missing_keys_preconditions_and_validation_errors_are_told_apart() {
        assert_eq!(classify(&service(404, "NoSuchKey")), Failure::NotFound);
        assert_eq!(classify(&service(412, "PreconditionFailed")), Failure::PreconditionFailed);
        assert!(matches!(classify(&service(404, "NoSuchBucket")), Failure::Fatal(_)));
        assert!(matches!(classify(&service(400, "InvalidArgument")), Failure::Fatal(_)));
        assert!(matches!(classify(&SdkError::<GetObjectError>::construction_failure(io())), Failure::Fatal(_)));
        assert!(!Failure::Fatal("x".into()).into_error("s", "put", "k").is_retryable());
    }
}
