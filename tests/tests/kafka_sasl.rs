//! SASL authentication of Sluice's own Kafka protocol client (the one exactly-once recovery
//! uses) against a small fake broker in this file: the test broker (tansu 0.6) cannot check
//! PLAIN passwords and has no SCRAM users set up, so the fake checks the bytes instead —
//! SaslHandshake, then SaslAuthenticate with RFC 4616 PLAIN or an RFC 5802 SCRAM server (its
//! own verification: the proof checked against the stored key, not the client's computation)
//! — and refuses what a broker refuses. Needs no services.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsResponse, BrokerId, MetadataResponse, RequestHeader, ResponseHeader,
        SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
        api_versions_response::ApiVersion, metadata_response::MetadataResponseBroker,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
};
use ring::{digest, hmac, pbkdf2};
use sluice_runtime::connectors::kafka::{Cluster, Error, metadata};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const SALT: &[u8] = b"sluice-test-salt";
const ITERATIONS: u32 = 4096;

/// What the fake broker accepts.
#[derive(Clone)]
struct Accepts {
    mechanisms: Vec<&'static str>,
    username: &'static str,
    password: &'static str,
}

/// What the fake broker saw: request names in order, and the SaslAuthenticate tokens.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Requests>>);

/// Request names in order, and the SaslAuthenticate tokens.
type Requests = (Vec<&'static str>, Vec<Vec<u8>>);

impl Seen {
    fn requests(&self) -> Vec<&'static str> {
        self.0.lock().expect("lock").0.clone()
    }
    fn tokens(&self) -> Vec<Vec<u8>> {
        self.0.lock().expect("lock").1.clone()
    }
}

/// Starts the fake broker; returns its address and what it sees.
async fn fake_broker(accepts: Accepts) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen = Seen::default();
    let (port, state) = (listener.local_addr().expect("addr").port(), seen.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, accepts.clone(), state.clone(), port));
        }
    });
    (addr, seen)
}

/// The server side of one SCRAM exchange.
struct ScramServer {
    sha512: bool,
    client_first_bare: String,
    server_first: String,
}

/// One connection: ApiVersions, SaslHandshake, SaslAuthenticate…, then Metadata only once
/// authenticated (a broker drops anything else before authentication).
async fn serve(mut stream: TcpStream, accepts: Accepts, seen: Seen, port: u16) {
    let mut authenticated = false;
    let mut mechanism = String::new();
    let mut scram: Option<ScramServer> = None;
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut body = BytesMut::zeroed(u32::from_be_bytes(len) as usize);
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut body = body.freeze();
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).expect("api key");
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut body, key.request_header_version(version)).expect("header");
        let id = header.correlation_id;
        let reply = match key {
            ApiKey::ApiVersions => {
                seen.0.lock().expect("lock").0.push("ApiVersions");
                let api = |key: ApiKey, max| ApiVersion::default().with_api_key(key as i16).with_max_version(max);
                let response = ApiVersionsResponse::default().with_api_keys(vec![
                    api(ApiKey::ApiVersions, 3),
                    api(ApiKey::SaslHandshake, 1),
                    api(ApiKey::SaslAuthenticate, 2),
                    api(ApiKey::Metadata, 9),
                ]);
                encode(id, &response, version)
            }
            ApiKey::SaslHandshake => {
                seen.0.lock().expect("lock").0.push("SaslHandshake");
                let request = SaslHandshakeRequest::decode(&mut body, version).expect("handshake");
                mechanism = request.mechanism.to_string();
                let enabled = accepts.mechanisms.contains(&mechanism.as_str());
                let response = SaslHandshakeResponse::default()
                    .with_error_code(if enabled { 0 } else { 33 })
                    .with_mechanisms(accepts.mechanisms.iter().map(|m| StrBytes::from_static_str(m)).collect());
                encode(id, &response, version)
            }
            ApiKey::SaslAuthenticate => {
                seen.0.lock().expect("lock").0.push("SaslAuthenticate");
                let request = SaslAuthenticateRequest::decode(&mut body, version).expect("authenticate");
                seen.0.lock().expect("lock").1.push(request.auth_bytes.to_vec());
                let answer = authenticate(&mechanism, &request.auth_bytes, &accepts, &mut scram);
                authenticated |= answer.as_ref().is_ok_and(|(_, done)| *done);
                let response = match answer {
                    Ok((bytes, _)) => SaslAuthenticateResponse::default().with_auth_bytes(bytes),
                    Err(message) => SaslAuthenticateResponse::default()
                        .with_error_code(58)
                        .with_error_message(Some(StrBytes::from_string(message))),
                };
                encode(id, &response, version)
            }
            ApiKey::Metadata if authenticated => {
                seen.0.lock().expect("lock").0.push("Metadata");
                let broker = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(7))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(i32::from(port));
                encode(id, &MetadataResponse::default().with_brokers(vec![broker]), version)
            }
            _ => return, // unauthenticated or unexpected: close, as a broker does
        };
        if stream.write_all(&reply).await.is_err() {
            return;
        }
    }
}

/// The server's answer to one SaslAuthenticate token: `(bytes, authentication complete)` or
/// the reason for refusing.
fn authenticate(
    mechanism: &str,
    token: &[u8],
    accepts: &Accepts,
    scram: &mut Option<ScramServer>,
) -> Result<(Bytes, bool), String> {
    if mechanism == "PLAIN" {
        let expected = format!("\0{}\0{}", accepts.username, accepts.password);
        return if token == expected.as_bytes() {
            Ok((Bytes::new(), true))
        } else {
            Err("Authentication failed: Invalid username or password".into())
        };
    }
    let text = String::from_utf8(token.to_vec()).map_err(|_| "not UTF-8".to_owned())?;
    let sha512 = mechanism == "SCRAM-SHA-512";
    match scram.take() {
        None => {
            let bare = text.strip_prefix("n,,").ok_or("no gs2 header")?.to_owned();
            let nonce = bare.split(',').find_map(|p| p.strip_prefix("r=")).ok_or("no nonce")?;
            if bare.split(',').find_map(|p| p.strip_prefix("n=")) != Some(accepts.username) {
                return Err("Authentication failed: unknown user".into());
            }
            let server_first = format!("r={nonce}server-part,s={},i={ITERATIONS}", BASE64.encode(SALT));
            *scram = Some(ScramServer { sha512, client_first_bare: bare, server_first: server_first.clone() });
            Ok((Bytes::from(server_first), false))
        }
        Some(state) => {
            let (without_proof, proof) = text.rsplit_once(",p=").ok_or("no proof")?;
            let proof = BASE64.decode(proof).map_err(|_| "proof not base64")?;
            let auth_message = format!("{},{},{without_proof}", state.client_first_bare, state.server_first);
            let (pbkdf, mac_alg, digest_alg, len) = if state.sha512 {
                (pbkdf2::PBKDF2_HMAC_SHA512, hmac::HMAC_SHA512, &digest::SHA512, 64)
            } else {
                (pbkdf2::PBKDF2_HMAC_SHA256, hmac::HMAC_SHA256, &digest::SHA256, 32)
            };
            // What a broker stores: StoredKey and ServerKey, derived from the password.
            let mut salted = vec![0u8; len];
            pbkdf2::derive(
                pbkdf,
                ITERATIONS.try_into().expect("nonzero"),
                SALT,
                accepts.password.as_bytes(),
                &mut salted,
            );
            let mac = |key: &[u8], data: &[u8]| hmac::sign(&hmac::Key::new(mac_alg, key), data).as_ref().to_vec();
            let stored_key = digest::digest(digest_alg, &mac(&salted, b"Client Key")).as_ref().to_vec();
            let server_key = mac(&salted, b"Server Key");
            // Verification as RFC 5802 section 3 does it: recover ClientKey from the proof.
            let signature = mac(&stored_key, auth_message.as_bytes());
            let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
            if proof.len() != len || digest::digest(digest_alg, &client_key).as_ref() != stored_key.as_slice() {
                return Err(
                    "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM"
                        .into(),
                );
            }
            let server_signature = mac(&server_key, auth_message.as_bytes());
            Ok((Bytes::from(format!("v={}", BASE64.encode(server_signature))), true))
        }
    }
}

fn encode<R: Encodable + HeaderVersion>(correlation_id: i32, response: &R, version: i16) -> Vec<u8> {
    let mut frame = BytesMut::from(&[0u8; 4][..]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, R::header_version(version))
        .expect("encode header");
    response.encode(&mut frame, version).expect("encode response");
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame.to_vec()
}

fn sasl(mechanism: &str, username: &str, password: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("security.protocol".to_owned(), "SASL_PLAINTEXT".to_owned()),
        ("sasl.mechanism".to_owned(), mechanism.to_owned()),
        ("sasl.username".to_owned(), username.to_owned()),
        ("sasl.password".to_owned(), password.to_owned()),
    ])
}

const ALL: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[tokio::test]
async fn plain_sends_the_rfc_4616_token_after_the_handshake() {
    let (addr, seen) = fake_broker(Accepts { mechanisms: ALL.to_vec(), username: "alice", password: "pw" }).await;
    let cluster = Cluster::new(&addr, &sasl("PLAIN", "alice", "pw")).expect("cluster");
    let brokers = metadata::brokers(&cluster).await.expect("authenticated metadata");
    assert_eq!(brokers.len(), 1);
    assert_eq!(seen.requests(), ["ApiVersions", "SaslHandshake", "SaslAuthenticate", "Metadata"]);
    assert_eq!(seen.tokens(), [b"\0alice\0pw".to_vec()]);
}

#[tokio::test]
async fn scram_sha_256_and_512_authenticate_and_check_the_server() {
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let (addr, seen) = fake_broker(Accepts { mechanisms: ALL.to_vec(), username: "bob", password: "pencil" }).await;
        let cluster = Cluster::new(&addr, &sasl(mechanism, "bob", "pencil")).expect("cluster");
        metadata::brokers(&cluster).await.unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert_eq!(
            seen.requests(),
            ["ApiVersions", "SaslHandshake", "SaslAuthenticate", "SaslAuthenticate", "Metadata"]
        );
        let tokens = seen.tokens();
        assert!(String::from_utf8_lossy(&tokens[0]).starts_with("n,,n=bob,r="), "{mechanism}: client-first");
        assert!(String::from_utf8_lossy(&tokens[1]).starts_with("c=biws,r="), "{mechanism}: client-final");
    }
}

#[tokio::test]
async fn a_refusal_is_a_clear_authentication_error() {
    let accepts = Accepts { mechanisms: ALL.to_vec(), username: "alice", password: "right" };
    for mechanism in ALL {
        let (addr, seen) = fake_broker(accepts.clone()).await;
        let cluster = Cluster::new(&addr, &sasl(mechanism, "alice", "wrong")).expect("cluster");
        match metadata::brokers(&cluster).await {
            Err(e @ Error::Authentication { .. }) => {
                let message = e.to_string();
                assert!(message.contains(&format!("refused SASL {mechanism} authentication")), "{message}");
                assert!(message.contains("(code 58)"), "{message}");
                assert!(!e.is_retryable());
            }
            other => panic!("{mechanism}: expected an authentication error, got {other:?}"),
        }
        assert!(!seen.requests().contains(&"Metadata"), "{mechanism}: nothing asked before authentication");
    }

    // A mechanism the broker has not enabled: the error lists what it offers.
    let (addr, _) = fake_broker(Accepts { mechanisms: vec!["SCRAM-SHA-512"], ..accepts }).await;
    let cluster = Cluster::new(&addr, &sasl("PLAIN", "alice", "right")).expect("cluster");
    let e = metadata::brokers(&cluster).await.expect_err("mechanism not enabled");
    assert!(e.to_string().contains("mechanism not enabled (code 33); the broker offers [SCRAM-SHA-512]"), "{e}");
}
