//! Record ↔ Kafka message bytes: values as JSON (or UTF-8 text), keys as UTF-8 text when they
//! are strings and as JSON otherwise.

use sluice_crds::contract::kafka::RecordFormat;

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

/// Writes a record value into `buf` as JSON.
pub fn encode_value(value: &Value, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value).map_err(|e| e.to_string())
}

/// Decodes a message key: UTF-8 text becomes a string key, anything else is malformed.
pub fn decode_key(key: Option<&[u8]>) -> Result<Value, String> {
    match key {
        None => Ok(Value::Null),
        Some(k) => std::str::from_utf8(k).map(Value::str).map_err(|e| format!("key is not UTF-8: {e}")),
    }
}

/// Decodes a message value per `format`; a tombstone (no payload) is `null`.
pub fn decode_value(payload: Option<&[u8]>, format: RecordFormat) -> Result<Value, String> {
    let Some(bytes) = payload else { return Ok(Value::Null) };
    match format {
        RecordFormat::Json => serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}")),
        RecordFormat::String => {
            std::str::from_utf8(bytes).map(Value::str).map_err(|e| format!("value is not UTF-8: {e}"))
        }
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
        assert_eq!(decode_value(None, RecordFormat::Json).expect("tombstone"), Value::Null);
    }
}
