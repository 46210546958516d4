//! Record ↔ Kafka message bytes: values as JSON (or UTF-8 text), keys as UTF-8 text when they
//! are strings and as JSON otherwise.

use sluice_crds::contract::kafka::RecordFormat;

use crate::error::ErrorKind;
use crate::value::Value;

/// Writes a record key into `buf`; `false` for a null key (the message gets none).
pub fn encode_key(key: &Value, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    match key {
        Value::Null => false,
        Value::Str(s) => {
            buf.extend_from_slice(s.as_bytes());
            true
        }
        other => serde_json::to_writer(&mut *buf, other).is_ok(),
    }
}

/// Why a record did not encode or decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A record value did not serialise as JSON.
    #[error("{0}")]
    Encode(serde_json::Error),
    /// A message key is not UTF-8 text.
    #[error("key is not UTF-8: {0}")]
    KeyNotUtf8(std::str::Utf8Error),
    /// A message value is not the JSON its format says.
    #[error("invalid JSON: {0}")]
    InvalidJson(serde_json::Error),
    /// A message value of format `string` is not UTF-8 text.
    #[error("value is not UTF-8: {0}")]
    ValueNotUtf8(std::str::Utf8Error),
}

impl CodecError {
    /// What the failure means (see [`crate::error`]): a message that does not decode is bad
    /// input (the job's error policy applies); a value that does not encode is the engine's.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CodecError::Encode(_) => ErrorKind::Retryable,
            CodecError::KeyNotUtf8(_) | CodecError::InvalidJson(_) | CodecError::ValueNotUtf8(_) => ErrorKind::BadInput,
        }
    }
}

/// Writes a record value into `buf` as JSON.
pub fn encode_value(value: &Value, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value).map_err(CodecError::Encode)
}

/// Decodes a message key: UTF-8 text becomes a string key, anything else is malformed.
pub fn decode_key(key: Option<&[u8]>) -> Result<Value, CodecError> {
    match key {
        None => Ok(Value::Null),
        Some(k) => std::str::from_utf8(k).map(Value::str).map_err(CodecError::KeyNotUtf8),
    }
}

/// Decodes a message value per `format`; a tombstone (no payload) is `null`.
pub fn decode_value(payload: Option<&[u8]>, format: RecordFormat) -> Result<Value, CodecError> {
    let Some(bytes) = payload else { return Ok(Value::Null) };
    match format {
        RecordFormat::Json => serde_json::from_slice(bytes).map_err(CodecError::InvalidJson),
        RecordFormat::String => std::str::from_utf8(bytes).map(Value::str).map_err(CodecError::ValueNotUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_keys_round_trip() {
        let mut buf = Vec::new();
        let v = Value::map([("seq", Value::Int(7)), ("user", Value::str("ann"))]);
        encode_value(&v, &mut buf).expect("encode");
        assert_eq!(decode_value(Some(&buf), RecordFormat::Json).expect("decode"), v);
        assert!(encode_key(&Value::str("k1"), &mut buf));
        assert_eq!(buf, b"k1");
        assert_eq!(decode_key(Some(&buf)).expect("key"), Value::str("k1"));
        assert!(encode_key(&Value::Int(3), &mut buf));
        assert_eq!(buf, b"3");
        assert!(!encode_key(&Value::Null, &mut buf));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(decode_value(Some(b"{not json"), RecordFormat::Json).is_err());
        assert!(decode_value(Some(&[0xff, 0xfe]), RecordFormat::String).is_err());
        assert!(decode_key(Some(&[0xc3, 0x28])).is_err());
        for e in [
            decode_value(Some(b"{not json"), RecordFormat::Json),
            decode_value(Some(&[0xff, 0xfe]), RecordFormat::String),
            decode_key(Some(&[0xc3, 0x28])),
        ] {
            let e = e.expect_err("malformed");
            assert_eq!(e.kind(), ErrorKind::BadInput, "{e}");
        }
        assert_eq!(decode_value(None, RecordFormat::Json).expect("tombstone"), Value::Null);
    }
}
