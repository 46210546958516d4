//! Request bodies and error answers of the control endpoint: every refusal is an
//! [`ErrorResponse`] with the status that says what was wrong, never axum's plain-text
//! rejections.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use sluice_crds::contract::control::{CONTROL_VERSION, ErrorResponse};

/// Largest request body accepted (the documents are a few dozen bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An [`ErrorResponse`] with status `code`.
pub fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(ErrorResponse { version: CONTROL_VERSION, error: message.into(), stop_in_progress: None }))
        .into_response()
}

/// A JSON request body of type `T`: `Content-Type: application/json` (415 otherwise), at most
/// [`MAX_BODY_BYTES`] (413), a JSON document of `T` (400 naming the problem: malformed JSON,
/// a field of the wrong type, an unknown field).
pub struct JsonBody<T>(pub T);

/// Whether a `Content-Type` value names JSON (`application/json`, parameters allowed).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Parses `bytes` as `T`; the error names the field path and the problem.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the request body is empty: send a JSON object (`{}` for the defaults)".into());
    }
    // serde would also take a struct as an array of its fields (`[1, true]`): refuse it.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("invalid request body: it must be a JSON object, e.g. {}".into());
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid request body: {path}: {inner}")
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Response> {
        let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)"));
        match content_type {
            Some(ct) if is_json(ct) => {}
            Some(ct) => {
                let msg = format!("the body must be JSON: send Content-Type: application/json (got {ct:?})");
                return Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
            }
            None => {
                let msg = "the body must be JSON: send Content-Type: application/json (no Content-Type given)";
                return Err(error(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
            }
        }
        let bytes: Bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|e| {
            let inner = e.into_inner();
            if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                error(StatusCode::PAYLOAD_TOO_LARGE, format!("the request body is larger than {MAX_BODY_BYTES} bytes"))
            } else {
                error(StatusCode::BAD_REQUEST, format!("could not read the request body: {inner}"))
            }
        })?;
        parse(&bytes).map(JsonBody).map_err(|m| error(StatusCode::BAD_REQUEST, m))
    }
}

#[cfg(test)]
mod tests {
    use sluice_crds::contract::control::{SavepointRequest, StopRequest};

    use super::*;

    #[test]
    fn content_types_and_bodies() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("application/jsonx"));
        let e = parse::<StopRequest>(br#"{"savepoint": "yes"}"#).expect_err("wrong type");
        assert!(e.starts_with("invalid request body: savepoint: invalid type"), "{e}");
        let e = parse::<StopRequest>(br#"{"savepoint": true, "force": 1}"#).expect_err("unknown field");
        assert!(e.contains("unknown field `force`"), "{e}");
        let e = parse::<SavepointRequest>(b"{").expect_err("malformed");
        assert!(e.contains("EOF"), "{e}");
        let e = parse::<SavepointRequest>(b" \n").expect_err("empty");
        assert!(e.contains("empty"), "{e}");
        for not_object in [&b"[]"[..], b"[1, true]", b"null", b"\"x\"", b"7"] {
            let e = parse::<StopRequest>(not_object).expect_err("not an object");
            assert!(e.contains("must be a JSON object"), "{e}");
        }
        assert!(!parse::<StopRequest>(b"{}").expect("defaults").savepoint);
    }
}
