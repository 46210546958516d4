//! How Sluice's own Kafka protocol client reaches a cluster: the bootstrap brokers and the
//! connection security (TLS through rustls, SASL PLAIN/SCRAM) a Kafka block's `properties`
//! ask for — the same properties librdkafka reads for the block's producers and consumers, so
//! both clients reach the brokers the same way. Parsed and loaded (CA file read) once per node.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_crds::contract::kafka_security::{self, CaSource, KafkaSecurity, PropertyError, SaslSettings, TlsSettings};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Error, wire::Connection};

/// A Kafka block's security settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A property is invalid, unsupported, or refers to an unset environment variable.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// The certificate authorities cannot be loaded.
    #[error("properties[{property:?}]: {message}")]
    Ca {
        /// `ssl.ca.location` or `ssl.ca.pem`.
        property: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// Connection security, ready to connect with: the TLS client configuration (built once) and
/// the SASL credentials.
#[derive(Clone, Default)]
pub struct Security {
    tls: Option<TlsConnector>,
    sasl: Option<SaslSettings>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").field("tls", &self.tls.is_some()).field("sasl", &self.sasl).finish()
    }
}

impl Security {
    /// Plain TCP, no authentication.
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// Loads `settings` (reads the CA file).
    pub fn load(settings: &KafkaSecurity) -> Result<Self, SecurityError> {
        let tls = settings.tls.as_ref().map(tls_connector).transpose()?;
        Ok(Security { tls, sasl: settings.sasl.clone() })
    }

    /// The SASL settings, when the connection authenticates.
    pub(crate) fn sasl(&self) -> Option<&SaslSettings> {
        self.sasl.as_ref()
    }

    /// Whether connections use TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Runs the TLS handshake over `tcp` to `addr` (`host:port`, the host is the name checked
    /// against the broker's certificate).
    pub(crate) async fn tls(&self, addr: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Error> {
        let Some(connector) = &self.tls else {
            return Err(Error::Tls { addr: addr.to_owned(), message: "no TLS settings".into() });
        };
        let host = host_of(addr);
        let name = ServerName::try_from(host.to_owned()).map_err(|e| Error::Tls {
            addr: addr.to_owned(),
            message: format!("{host:?} is not a server name: {e}"),
        })?;
        let stream = connector.connect(name, tcp).await.map_err(|e| Error::Tls {
            addr: addr.to_owned(),
            message: format!(
                "TLS handshake failed: {e} (is the listener TLS, and does ssl.ca.location sign its certificate?)"
            ),
        })?;
        Ok(stream)
    }
}

/// The host of `host:port` (`[v6]:port` too).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

fn tls_connector(settings: &TlsSettings) -> Result<TlsConnector, SecurityError> {
    let (property, pem) = match &settings.ca {
        CaSource::System => ("ssl.ca.location", None),
        CaSource::File(path) => (
            "ssl.ca.location",
            Some(std::fs::read(path).map_err(|e| SecurityError::Ca {
                property: "ssl.ca.location",
                message: format!("cannot read {path}: {e}"),
            })?),
        ),
        CaSource::Pem(pem) => ("ssl.ca.pem", Some(pem.clone().into_bytes())),
    };
    let ca_error = |message: String| SecurityError::Ca { property, message };
    let mut roots = RootCertStore::empty();
    match pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| ca_error(format!("not PEM certificates: {e}")))?;
                roots.add(cert).map_err(|e| ca_error(format!("a certificate cannot be used as a CA: {e}")))?;
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(loaded.certs);
        }
    }
    if roots.is_empty() {
        return Err(ca_error("no CA certificate found".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ca_error(format!("TLS set-up: {e}")))?;
    let roots = Arc::new(roots);
    let config = if settings.verify_hostname {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| ca_error(format!("TLS set-up: {e}")))?;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyName(verifier))).with_no_client_auth()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `ssl.endpoint.identification.algorithm: none`: the broker's certificate chain is verified
/// as usual, but not the host name it is issued for.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain first and the name last: a name error means the chain held.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A Kafka cluster as the protocol client reaches it: its bootstrap brokers and the
/// connection security. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cluster {
    bootstrap: Arc<[String]>,
    security: Arc<Security>,
}

impl Cluster {
    /// The cluster at `bootstrap_servers` (`host:port[,host:port…]`) reached as `properties`
    /// (a Kafka block's librdkafka properties, `${env:NAME}` references resolved) say.
    pub fn new(bootstrap_servers: &str, properties: &BTreeMap<String, String>) -> Result<Self, SecurityError> {
        let security = Security::load(&kafka_security::parse(properties)?)?;
        Ok(Self::with_security(bootstrap_servers, security))
    }

    /// The cluster at `bootstrap_servers` over plain TCP without authentication.
    pub fn plaintext(bootstrap_servers: &str) -> Self {
        Self::with_security(bootstrap_servers, Security::plaintext())
    }

    /// The cluster at `bootstrap_servers`, reached with `security`.
    pub fn with_security(bootstrap_servers: &str, security: Security) -> Self {
        let bootstrap: Vec<String> =
            bootstrap_servers.split(',').map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()).collect();
        Cluster { bootstrap: bootstrap.into(), security: Arc::new(security) }
    }

    /// The bootstrap brokers.
    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }

    /// A connection to the first bootstrap broker that answers.
    pub async fn connect(&self) -> Result<Connection, Error> {
        let mut last = Error::Protocol { step: "connect", message: "no bootstrap broker given".into() };
        for addr in self.bootstrap.iter() {
            match self.connect_to(addr).await {
                Ok(connection) => return Ok(connection),
                Err(e @ Error::Io { .. }) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// A connection to the broker at `addr` (one the cluster's metadata named).
    pub async fn connect_to(&self, addr: &str) -> Result<Connection, Error> {
        Connection::connect(addr, &self.security).await
    }
}

/// A Kafka block's properties with their `${env:NAME}` references resolved from this process's
/// environment (a Secret passed through the pod's env).
pub fn resolve_properties(properties: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, SecurityError> {
    Ok(kafka_security::resolve_env(properties, |name| std::env::var(name).ok())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("broker-1.kafka:9093"), "broker-1.kafka");
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }

    #[test]
    fn a_missing_or_empty_ca_names_its_property() {
        let props = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let e = Cluster::new("b:9093", &props(&[("security.protocol", "SSL"), ("ssl.ca.location", "/no/such/ca.pem")]))
            .expect_err("missing file");
        assert!(e.to_string().starts_with("properties[\"ssl.ca.location\"]: cannot read /no/such/ca.pem"), "{e}");
        let e = Cluster::new("b:9093", &props(&[("security.protocol", "SSL"), ("ssl.ca.pem", "not a certificate")]))
            .expect_err("no certificate");
        assert_eq!(e.to_string(), "properties[\"ssl.ca.pem\"]: no CA certificate found");
        let e = Cluster::new("b:9093", &props(&[("security.protocol", "SSL-ish")])).expect_err("bad protocol");
        assert!(e.to_string().starts_with("properties[\"security.protocol\"]: "), "{e}");
    }

    /// The symptom: librdkafka built without `ssl`/`zstd` refuses these at start
    /// ("OpenSSL not available at build time", "libzstd not available at build time").
    #[test]
    fn librdkafka_accepts_tls_sasl_and_zstd_settings() {
        let sasl = |protocol: &str, mechanism: &str| {
            vec![
                ("security.protocol", protocol.to_owned()),
                ("sasl.mechanism", mechanism.to_owned()),
                ("sasl.username", "u".to_owned()),
                ("sasl.password", "p".to_owned()),
            ]
        };
        for pairs in [
            vec![("security.protocol", "SSL".to_owned())],
            sasl("SASL_SSL", "SCRAM-SHA-512"),
            sasl("SASL_SSL", "SCRAM-SHA-256"),
            sasl("SASL_PLAINTEXT", "PLAIN"),
            vec![("compression.type", "zstd".to_owned())],
        ] {
            let properties: BTreeMap<String, String> =
                pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
            let config = super::super::producer::client_config("127.0.0.1:1", &properties);
            let created: Result<rdkafka::producer::BaseProducer, _> = config.create();
            assert!(created.is_ok(), "{pairs:?}: {:?}", created.err());
        }
    }

    #[test]
    fn bootstrap_lists_are_split_and_trimmed() {
        let cluster = Cluster::plaintext(" a:1, b:2 ,");
        assert_eq!(cluster.bootstrap(), ["a:1".to_owned(), "b:2".to_owned()]);
    }
}
