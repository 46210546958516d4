//! The connection security a Kafka block's `properties` ask for, in librdkafka's names
//! (`security.protocol`, `ssl.ca.location`, `sasl.mechanism`, …), parsed once. librdkafka reads
//! the same properties itself; this parse is for Sluice's own Kafka protocol client (exactly-once
//! recovery, transaction fencing, partition end offsets), which must reach the same brokers the
//! same way, and for validation: a setting that client cannot honour is refused at submission,
//! naming the property, instead of failing at the first recovery.
//!
//! A value `${env:NAME}` stands for the environment variable `NAME` of the runtime (a Secret
//! passed to the pod through `podTemplate` env); [`resolve_env`] substitutes it.

use std::collections::BTreeMap;
use std::fmt;

/// `security.protocol`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Plain TCP (librdkafka's default).
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether the connection uses TLS.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether the connection authenticates with SASL.
    pub fn sasl(self) -> bool {
        matches!(self, SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
    }
}

/// `sasl.mechanism` (librdkafka also spells it `sasl.mechanisms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN`: user name and password in the clear (use it with TLS).
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Where the certificate authorities that sign the brokers' certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// The system's trust store (librdkafka's default).
    System,
    /// `ssl.ca.location`: a PEM file.
    File(String),
    /// `ssl.ca.pem`: PEM text.
    Pem(String),
}

/// TLS settings (`security.protocol` `SSL` or `SASL_SSL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The trusted certificate authorities.
    pub ca: CaSource,
    /// `ssl.endpoint.identification.algorithm`: `https` (default) checks that the broker's
    /// certificate names the host connected to; `none` skips that check (the chain is still
    /// verified).
    pub verify_hostname: bool,
}

/// SASL settings (`security.protocol` `SASL_PLAINTEXT` or `SASL_SSL`).
#[derive(Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// `sasl.username`.
    pub username: String,
    /// `sasl.password`.
    pub password: String,
}

impl fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The connection security of one Kafka block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// `security.protocol`.
    pub protocol: SecurityProtocol,
    /// TLS settings when the protocol uses TLS.
    pub tls: Option<TlsSettings>,
    /// SASL settings when the protocol uses SASL.
    pub sasl: Option<SaslSettings>,
}

/// A property that cannot be honoured, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("properties[{property:?}]: {message}")]
pub struct PropertyError {
    /// The property's name.
    pub property: String,
    /// What is wrong.
    pub message: String,
}

impl PropertyError {
    fn new(property: &str, message: impl Into<String>) -> Self {
        PropertyError { property: property.to_owned(), message: message.into() }
    }
}

/// The security properties Sluice's protocol client reads; any other `ssl.*`/`sasl.*` property
/// is refused (see [`parse`]).
pub const SUPPORTED: [&str; 8] = [
    "security.protocol",
    "ssl.ca.location",
    "ssl.ca.pem",
    "ssl.endpoint.identification.algorithm",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
];

/// Parses the security properties of a Kafka block. Refuses values and properties Sluice's
/// protocol client cannot honour (client certificates, GSSAPI, OAUTHBEARER, any other `ssl.*`
/// or `sasl.*` setting, `enable.ssl.certificate.verification`), naming the property.
pub fn parse(properties: &BTreeMap<String, String>) -> Result<KafkaSecurity, PropertyError> {
    for key in properties.keys() {
        let security_related =
            key.starts_with("ssl.") || key.starts_with("sasl.") || key == "enable.ssl.certificate.verification";
        if security_related && !SUPPORTED.contains(&key.as_str()) {
            return Err(PropertyError::new(
                key,
                format!(
                    "not supported: Sluice's own Kafka client (transaction recovery, end offsets) reads only {}",
                    SUPPORTED.join(", ")
                ),
            ));
        }
    }
    let get = |key: &str| properties.get(key).map(String::as_str);
    let protocol = match get("security.protocol").map(str::to_ascii_uppercase).as_deref() {
        None | Some("PLAINTEXT") => SecurityProtocol::Plaintext,
        Some("SSL") => SecurityProtocol::Ssl,
        Some("SASL_PLAINTEXT") => SecurityProtocol::SaslPlaintext,
        Some("SASL_SSL") => SecurityProtocol::SaslSsl,
        Some(_) => {
            return Err(PropertyError::new(
                "security.protocol",
                format!(
                    "{:?} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                    get("security.protocol").unwrap_or_default()
                ),
            ));
        }
    };
    let tls = protocol.tls().then(|| tls_settings(properties)).transpose()?;
    let sasl = protocol.sasl().then(|| sasl_settings(properties)).transpose()?;
    Ok(KafkaSecurity { protocol, tls, sasl })
}

fn tls_settings(properties: &BTreeMap<String, String>) -> Result<TlsSettings, PropertyError> {
    let ca = match (properties.get("ssl.ca.location"), properties.get("ssl.ca.pem")) {
        (Some(_), Some(_)) => {
            return Err(PropertyError::new("ssl.ca.pem", "set either ssl.ca.location or ssl.ca.pem, not both"));
        }
        (Some(path), None) if path == "probe" => {
            return Err(PropertyError::new(
                "ssl.ca.location",
                "\"probe\" is not supported: give the CA file's path, or omit it for the system trust store",
            ));
        }
        (Some(path), None) if path.is_empty() => {
            return Err(PropertyError::new("ssl.ca.location", "must not be empty"));
        }
        (Some(path), None) => CaSource::File(path.clone()),
        (None, Some(pem)) => CaSource::Pem(pem.clone()),
        (None, None) => CaSource::System,
    };
    let verify_hostname = match properties.get("ssl.endpoint.identification.algorithm").map(String::as_str) {
        None | Some("https") => true,
        Some("none") => false,
        Some(other) => {
            return Err(PropertyError::new(
                "ssl.endpoint.identification.algorithm",
                format!("{other:?} is not one of https, none"),
            ));
        }
    };
    Ok(TlsSettings { ca, verify_hostname })
}

fn sasl_settings(properties: &BTreeMap<String, String>) -> Result<SaslSettings, PropertyError> {
    let (key, value) = match (properties.get("sasl.mechanism"), properties.get("sasl.mechanisms")) {
        (Some(_), Some(_)) => {
            return Err(PropertyError::new(
                "sasl.mechanisms",
                "set either sasl.mechanism or sasl.mechanisms, not both",
            ));
        }
        (Some(m), None) => ("sasl.mechanism", m.as_str()),
        (None, Some(m)) => ("sasl.mechanisms", m.as_str()),
        (None, None) => {
            return Err(PropertyError::new(
                "sasl.mechanism",
                "required with a SASL security.protocol: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (librdkafka's default GSSAPI is not supported)",
            ));
        }
    };
    let mechanism = match value {
        "PLAIN" => SaslMechanism::Plain,
        "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
        "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
        other => {
            return Err(PropertyError::new(
                key,
                format!("{other:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
            ));
        }
    };
    let required = |key: &str| {
        properties
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| PropertyError::new(key, format!("required with sasl.mechanism {}", mechanism.name())))
    };
    Ok(SaslSettings { mechanism, username: required("sasl.username")?, password: required("sasl.password")? })
}

/// The environment variable a value `${env:NAME}` refers to, if it is one. `Err` for a value
/// that starts like a reference but is not a valid one.
pub fn env_reference(value: &str) -> Result<Option<&str>, String> {
    let Some(rest) = value.strip_prefix("${env:") else { return Ok(None) };
    let name = rest.strip_suffix('}').ok_or_else(|| format!("{value:?} lacks its closing '}}'"))?;
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid { Ok(Some(name)) } else { Err(format!("{name:?} is not an environment variable name")) }
}

/// `properties` with every `${env:NAME}` value replaced by `lookup(NAME)`; an invalid reference
/// or an unset variable names the property.
pub fn resolve_env(
    properties: &BTreeMap<String, String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, PropertyError> {
    properties
        .iter()
        .map(|(key, value)| {
            let resolved = match env_reference(value).map_err(|m| PropertyError::new(key, m))? {
                None => value.clone(),
                Some(name) => lookup(name).ok_or_else(|| {
                    PropertyError::new(key, format!("environment variable {name} (from {value}) is not set"))
                })?,
            };
            Ok((key.clone(), resolved))
        })
        .collect()
}

#[cfg(test)]
#[path = "kafka_security_tests.rs"]
mod tests;
