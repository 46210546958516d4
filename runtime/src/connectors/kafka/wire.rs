//! One Kafka protocol connection (plain TCP or TLS, SASL-authenticated when the cluster asks
//! for it): length-prefixed frames, request headers, correlation ids, and API version
//! negotiation (ApiVersions once per connection).

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::{
    messages::{ApiVersionsRequest, RequestHeader, ResponseHeader},
    protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use super::{Error, sasl, security::Security};

/// Client id sent in every request header.
const CLIENT_ID: &str = "sluice";
/// ApiVersions version used for negotiation (flexible; every broker since Kafka 2.4).
const API_VERSIONS_VERSION: i16 = 3;
/// Largest response frame accepted (a Fetch answer is bounded by its max_bytes).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The byte stream under a connection: TCP or TLS over TCP.
trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// A connection to one broker, with the API version ranges it advertised.
pub struct Connection {
    addr: String,
    stream: Box<dyn Transport>,
    correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("addr", &self.addr).field("correlation_id", &self.correlation_id).finish()
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) as `security` says (TLS handshake, then ApiVersions,
    /// then SASL authentication) and negotiates API versions.
    pub async fn connect(addr: &str, security: &Security) -> Result<Self, Error> {
        let tcp = TcpStream::connect(addr).await.map_err(|source| Error::Io {
            addr: addr.to_owned(),
            step: "connect",
            source,
        })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Transport> =
            if security.uses_tls() { Box::new(security.tls(addr, tcp).await?) } else { Box::new(tcp) };
        let mut connection = Self { addr: addr.to_owned(), stream, correlation_id: 0, versions: HashMap::new() };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response = connection.call(&request, API_VERSIONS_VERSION, "ApiVersions").await?;
        Error::check("ApiVersions", response.error_code, None)?;
        connection.versions =
            response.api_keys.iter().map(|key| (key.api_key, (key.min_version, key.max_version))).collect();
        if let Some(settings) = security.sasl() {
            sasl::authenticate(&mut connection, settings).await?;
        }
        Ok(connection)
    }

    /// The broker address this connection talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The highest version of `R` that both sides support, capped at `cap` (the newest
    /// version whose semantics the caller implements).
    pub fn version<R: Request>(&self, api: &'static str, cap: i16) -> Result<i16, Error> {
        let unsupported = || Error::Unsupported { addr: self.addr.clone(), api, key: R::KEY };
        let (broker_min, broker_max) = *self.versions.get(&R::KEY).ok_or_else(unsupported)?;
        let ours = <R as Message>::VERSIONS;
        let max = broker_max.min(ours.max).min(cap);
        let min = broker_min.max(ours.min);
        if max < min {
            return Err(unsupported());
        }
        Ok(max)
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        step: &'static str,
    ) -> Result<R::Response, Error> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, R::header_version(version))
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| protocol(step, format!("encode: {e:#}")))?;
        let len = u32::try_from(frame.len() - 4).map_err(|_| protocol(step, "request too large".into()))?;
        frame[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&frame).await.map_err(|source| self.io(step, source))?;

        let mut body = self.read_frame(step).await?;
        let response_header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| protocol(step, format!("decode response header: {e:#}")))?;
        if response_header.correlation_id != self.correlation_id {
            return Err(protocol(
                step,
                format!("correlation id {} answered request {}", response_header.correlation_id, self.correlation_id),
            ));
        }
        R::Response::decode(&mut body, version).map_err(|e| protocol(step, format!("decode response: {e:#}")))
    }

    async fn read_frame(&mut self, step: &'static str) -> Result<Bytes, Error> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.map_err(|source| self.io(step, source))?;
        let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if len > MAX_FRAME {
            return Err(protocol(step, format!("response frame of {len} bytes")));
        }
        let mut body = BytesMut::zeroed(len);
        self.stream.read_exact(&mut body).await.map_err(|source| self.io(step, source))?;
        Ok(body.freeze())
    }

    fn io(&self, step: &'static str, source: std::io::Error) -> Error {
        Error::Io { addr: self.addr.clone(), step, source }
    }
}

fn protocol(step: &'static str, message: String) -> Error {
    Error::Protocol { step, message }
}

/// Reads a big-endian integer at `at` of `buf`, or `None` past its end.
pub(crate) fn be_i64(buf: &[u8], at: usize) -> Option<i64> {
    let mut slice = buf.get(at..at + 8)?;
    Some(slice.get_i64())
}

/// Reads a big-endian `i32` at `at` of `buf`, or `None` past its end.
pub(crate) fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let mut slice = buf.get(at..at + 4)?;
    Some(slice.get_i32())
}

/// Reads a big-endian `i16` at `at` of `buf`, or `None` past its end.
pub(crate) fn be_i16(buf: &[u8], at: usize) -> Option<i16> {
    let mut slice = buf.get(at..at + 2)?;
    Some(slice.get_i16())
}
