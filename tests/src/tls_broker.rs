//! A TLS listener in front of a test broker of its own: the test broker binary (path in
//! `SLUICE_TEST_KAFKA_BROKER_BIN`, written by `scripts/services/kafka.sh start`) started with
//! `--advertise` naming a TLS-terminating proxy on 127.0.0.1, so that every address the broker
//! hands out (Metadata, FindCoordinator) is the TLS one. Certificates come from a CA generated
//! for the test (rcgen).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Environment variable with the test broker binary's path.
pub const BROKER_BIN_ENV: &str = "SLUICE_TEST_KAFKA_BROKER_BIN";

/// A certificate authority generated for a test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

impl TestCa {
    /// A new CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).context("CA certificate")?;
        Ok(TestCa { pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its key.
    pub fn server_cert(&self, names: &[&str]) -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let key = KeyPair::generate().context("server key")?;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).context("server params")?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))))
    }
}

/// A test broker reachable only through TLS. Ends the broker on drop.
pub struct TlsBroker {
    /// `localhost:PORT` of the TLS listener (what the broker advertises).
    pub addr: String,
    /// The broker's own plaintext listener (for checks that must bypass TLS).
    pub plain_addr: String,
    /// Directory holding the CA file.
    pub dir: tempfile::TempDir,
    child: Child,
}

impl TlsBroker {
    /// Starts a broker and a TLS proxy presenting a certificate for `names` signed by `ca`.
    pub fn start(ca: &TestCa, names: &[&str]) -> anyhow::Result<Self> {
        let bin = std::env::var(BROKER_BIN_ENV).map_err(|_| {
            anyhow::anyhow!(
                "{BROKER_BIN_ENV} is not set: run `bash scripts/services/kafka.sh start && source .tools/run/kafka.env`"
            )
        })?;
        let dir = tempfile::tempdir().context("temp dir")?;
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).context("write CA")?;
        let (cert, key) = ca.server_cert(names)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .context("server TLS config")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind TLS listener")?;
        let port = listener.local_addr()?.port();
        let addr_file = dir.path().join("broker.addr");
        let child = Command::new(&bin)
            .args(["--listen", "127.0.0.1:0", "--advertise", &format!("localhost:{port}")])
            .arg("--addr-file")
            .arg(&addr_file)
            .spawn()
            .with_context(|| format!("start {bin}"))?;
        let mut broker = TlsBroker { addr: format!("localhost:{port}"), plain_addr: String::new(), dir, child };
        broker.plain_addr = wait_for_addr(&addr_file, &mut broker.child)?;
        let upstream: SocketAddr = broker.plain_addr.parse().context("broker address")?;
        listener.set_nonblocking(true)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        std::thread::spawn(move || proxy(listener, acceptor, upstream));
        Ok(broker)
    }

    /// Path of the CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_addr(addr_file: &Path, child: &mut Child) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(addr) = std::fs::read_to_string(addr_file)
            && !addr.trim().is_empty()
        {
            return Ok(addr.trim().to_owned());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the test broker exited during start-up: {status}");
        }
        if Instant::now() > deadline {
            bail!("the test broker wrote no address within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Accepts TLS connections and pipes each to the broker, on a runtime of its own (so that
/// blocking librdkafka calls in the test cannot starve it). Runs for the test's lifetime.
fn proxy(listener: std::net::TcpListener, acceptor: TlsAcceptor, upstream: SocketAddr) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    runtime.block_on(async move {
        let Ok(listener) = TcpListener::from_std(listener) else { return };
        while let Ok((client, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake (untrusted CA on the client side) just ends this connection.
                let Ok(mut tls) = acceptor.accept(client).await else { return };
                let Ok(mut broker) = TcpStream::connect(upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
            });
        }
    });
}
