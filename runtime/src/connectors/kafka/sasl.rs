//! SASL authentication of a protocol connection (KIP-152: SaslHandshake v1, then
//! SaslAuthenticate frames): PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677).

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use kafka_protocol::{
    messages::{SaslAuthenticateRequest, SaslHandshakeRequest},
    protocol::StrBytes,
};
use ring::{digest, hmac, pbkdf2};
use sluice_crds::contract::kafka_security::{SaslMechanism, SaslSettings};

use super::{Error, wire::Connection};

/// SaslHandshake v1: the authentication exchange that follows is framed as SaslAuthenticate
/// requests (v0 would send raw tokens).
const HANDSHAKE_VERSION_CAP: i16 = 1;
/// SaslAuthenticate v2 (flexible); v1 added the session lifetime, v0 suffices.
const AUTHENTICATE_VERSION_CAP: i16 = 2;
/// Most PBKDF2 iterations a server may ask for (Kafka's own limit is 16 384).
const MAX_ITERATIONS: u32 = 100_000;

/// Authenticates `connection` with `settings`. A refusal (unknown mechanism, wrong
/// credentials, a server that cannot prove it knows the password) is [`Error::Authentication`].
pub async fn authenticate(connection: &mut Connection, settings: &SaslSettings) -> Result<(), Error> {
    let mechanism = settings.mechanism.name();
    let refused = |addr: &str, message: String| Error::Authentication { addr: addr.to_owned(), mechanism, message };
    let version = connection.version::<SaslHandshakeRequest>("SaslHandshake", HANDSHAKE_VERSION_CAP)?;
    if version < 1 {
        return Err(refused(connection.addr(), "the broker supports only SaslHandshake v0 (unframed)".into()));
    }
    let request = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let response = connection.call(&request, version, "SaslHandshake").await?;
    if response.error_code != 0 {
        let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(refused(
            connection.addr(),
            format!("mechanism not enabled (code {}); the broker offers [{}]", response.error_code, enabled.join(", ")),
        ));
    }
    match settings.mechanism {
        SaslMechanism::Plain => {
            let token = format!("\0{}\0{}", settings.username, settings.password);
            exchange(connection, mechanism, token.into_bytes()).await?;
        }
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
            let scram = Scram::new(settings, &BASE64.encode(rand::random::<[u8; 24]>()));
            let server_first = exchange(connection, mechanism, scram.client_first().into_bytes()).await?;
            let server_first = String::from_utf8_lossy(&server_first).into_owned();
            let (client_final, server_signature) =
                scram.client_final(&server_first).map_err(|m| refused(connection.addr(), m))?;
            let server_final = exchange(connection, mechanism, client_final.into_bytes()).await?;
            Scram::verify_server_final(&String::from_utf8_lossy(&server_final), &server_signature)
                .map_err(|m| refused(connection.addr(), m))?;
        }
    }
    Ok(())
}

/// Sends one SaslAuthenticate token and returns the server's answer token.
async fn exchange(connection: &mut Connection, mechanism: &'static str, token: Vec<u8>) -> Result<Bytes, Error> {
    let version = connection.version::<SaslAuthenticateRequest>("SaslAuthenticate", AUTHENTICATE_VERSION_CAP)?;
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
    let response = connection.call(&request, version, "SaslAuthenticate").await?;
    if response.error_code != 0 {
        let message = response.error_message.as_ref().map_or("no reason given", |m| m.as_str());
        return Err(Error::Authentication {
            addr: connection.addr().to_owned(),
            mechanism,
            message: format!("{message} (code {})", response.error_code),
        });
    }
    Ok(response.auth_bytes)
}

/// The client side of one SCRAM exchange (no channel binding).
struct Scram<'a> {
    mechanism: SaslMechanism,
    password: &'a str,
    nonce: String,
    client_first_bare: String,
}

impl<'a> Scram<'a> {
    fn new(settings: &'a SaslSettings, nonce: &str) -> Self {
        let user = settings.username.replace('=', "=3D").replace(',', "=2C");
        Scram {
            mechanism: settings.mechanism,
            password: &settings.password,
            nonce: nonce.to_owned(),
            client_first_bare: format!("n={user},r={nonce}"),
        }
    }

    /// `client-first-message`: no channel binding, no authorization identity.
    fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// `client-final-message` answering `server_first`, and the server signature the
    /// server's final message must carry.
    fn client_final(&self, server_first: &str) -> Result<(String, Vec<u8>), String> {
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|part| part.strip_prefix(name))
                .ok_or_else(|| format!("the server's first SCRAM message lacks {name} ({server_first:?})"))
        };
        let nonce = field("r=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's SCRAM nonce does not extend ours".into());
        }
        let salt = BASE64.decode(field("s=")?).map_err(|e| format!("the server's SCRAM salt is not base64: {e}"))?;
        let iterations = field("i=")?
            .parse::<u32>()
            .ok()
            .filter(|i| *i <= MAX_ITERATIONS)
            .and_then(NonZeroU32::new)
            .ok_or_else(|| format!("the server asks for an unusable SCRAM iteration count ({server_first:?})"))?;
        let (pbkdf2_algorithm, hmac_algorithm, digest_algorithm, len) = match self.mechanism {
            SaslMechanism::ScramSha512 => (pbkdf2::PBKDF2_HMAC_SHA512, hmac::HMAC_SHA512, &digest::SHA512, 64),
            _ => (pbkdf2::PBKDF2_HMAC_SHA256, hmac::HMAC_SHA256, &digest::SHA256, 32),
        };
        let mut salted = vec![0u8; len];
        pbkdf2::derive(pbkdf2_algorithm, iterations, &salt, self.password.as_bytes(), &mut salted);
        let mac = |key: &[u8], data: &[u8]| hmac::sign(&hmac::Key::new(hmac_algorithm, key), data).as_ref().to_vec();
        let client_key = mac(&salted, b"Client Key");
        let stored_key = digest::digest(digest_algorithm, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = mac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_signature = mac(&mac(&salted, b"Server Key"), auth_message.as_bytes());
        Ok((format!("{without_proof},p={}", BASE64.encode(proof)), server_signature))
    }

    /// Checks the server's final message (`v=` its signature, or `e=` an error).
    fn verify_server_final(server_final: &str, expected: &[u8]) -> Result<(), String> {
        if let Some(error) = server_final.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        let signature = server_final
            .split(',')
            .find_map(|part| part.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or_else(|| format!("the server's final SCRAM message carries no signature ({server_final:?})"))?;
        if signature == expected {
            Ok(())
        } else {
            Err("the server's SCRAM signature is wrong: it does not know the password (not the broker we meant?)"
                .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mechanism: SaslMechanism, username: &str, password: &str) -> SaslSettings {
        SaslSettings { mechanism, username: username.into(), password: password.into() }
    }

    /// RFC 7677 section 3: the SCRAM-SHA-256 example exchange, byte for byte.
    #[test]
    fn scram_sha_256_matches_rfc_7677() {
        let s = settings(SaslMechanism::ScramSha256, "user", "pencil");
        let scram = Scram::new(&s, "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(scram.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (client_final, server_signature) = scram.client_final(server_first).expect("client final");
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        Scram::verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", &server_signature)
            .expect("server proves the password");
        let wrong = Scram::verify_server_final("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", &server_signature);
        assert!(wrong.expect_err("forged").contains("does not know the password"));
        let refused = Scram::verify_server_final("e=invalid-proof", &server_signature);
        assert_eq!(refused, Err("the server refused: invalid-proof".into()));
    }

    /// RFC 5802 section 5's SCRAM-SHA-1 example differs only in the hash; SHA-512 has no RFC
    /// vector, so check what tells it apart: a 64-byte proof and signature.
    #[test]
    fn scram_sha_512_uses_sha_512() {
        let s = settings(SaslMechanism::ScramSha512, "user", "pencil");
        let scram = Scram::new(&s, "abc");
        let (client_final, server_signature) = scram.client_final("r=abcdef,s=QSXCR+Q6sek8bf92,i=4096").expect("final");
        let proof = client_final.rsplit_once("p=").map(|(_, p)| BASE64.decode(p).expect("base64")).expect("proof");
        assert_eq!((proof.len(), server_signature.len()), (64, 64));
    }

    #[test]
    fn user_names_are_escaped_and_bad_server_messages_refused() {
        let s = settings(SaslMechanism::ScramSha256, "a=b,c", "p");
        let scram = Scram::new(&s, "nonce");
        assert_eq!(scram.client_first(), "n,,n=a=3Db=2Cc,r=nonce");
        for (server_first, expected) in [
            ("r=other,s=QSXCR+Q6sek8bf92,i=4096", "does not extend ours"),
            ("r=nonce,s=QSXCR+Q6sek8bf92,i=4096", "does not extend ours"),
            ("r=nonceX,i=4096", "lacks s="),
            ("r=nonceX,s=!!,i=4096", "not base64"),
            ("r=nonceX,s=QSXCR+Q6sek8bf92,i=0", "iteration count"),
            ("r=nonceX,s=QSXCR+Q6sek8bf92,i=100000000", "iteration count"),
        ] {
            let e = scram.client_final(server_first).expect_err(server_first);
            assert!(e.contains(expected), "{server_first}: {e}");
        }
    }
}
