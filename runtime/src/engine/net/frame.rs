//! The wire format of the network exchange: length-delimited frames.
//!
//! ```text
//! frame   = len:u32 LE (bytes after this field, ≤ MAX_FRAME) · kind:u8 · body
//! channel = edge:varint · from:varint · to:varint
//! DATA      1  channel · count:varint · count × (key:Value · ts:zigzag varint · value:Value)
//! WATERMARK 2  channel · watermark:zigzag varint
//! BARRIER   3  channel · checkpoint:varint · kind:u8 (0 checkpoint, 1 final, 2 savepoint, 3 stop)
//! END       4  channel
//! CREDIT    5  channel · credits:varint            (receiver → sender)
//! CLOSE     6  channel                             (receiver → sender: the receiving task is gone)
//! HELLO    16  magic "SLUICENX" · version:u16 LE · from:varint · to:varint · count:varint · attempt:bytes
//! WELCOME  17  worker:varint · attempt:bytes
//! REFUSE   18  reason:bytes
//! ```
//!
//! `Value` is the binary encoding of `value.rs` (lists and maps nested at most
//! [`codec::MAX_DEPTH`] deep); `bytes` is a varint length and the bytes. A sender encodes a
//! batch in one pass ([`codec`]) into a buffer of its own and hands it to the connection's
//! writer, which sends whatever accumulated in one write. The connection's reader
//! ([`FrameReader`]) reads large chunks, cuts them into frames and routes each by its channel
//! ([`decode_incoming`]): the records of a data frame stay encoded until the receiving task
//! takes them and decodes them ([`codec::BatchDecoder`]), so decoding runs on the receiving
//! tasks' threads, in parallel across channels, and the records are dropped where they were
//! made.

use bytes::{Buf, BytesMut};
use sluice_crds::CheckpointId;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::codec::{self, BatchDecoder};

use crate::engine::channel::ChannelId;
use crate::engine::message::{Barrier, BarrierKind, Message};
use crate::value::{DecodeError, read_bytes, read_varint, write_bytes, write_varint};

/// The largest frame accepted (a batch of 1024 records stays far below it).
pub const MAX_FRAME: usize = 256 << 20;
/// The first bytes of a handshake.
pub const MAGIC: &[u8; 8] = b"SLUICENX";
/// The protocol version the handshake carries.
pub const VERSION: u16 = 1;

const DATA: u8 = 1;
const WATERMARK: u8 = 2;
const BARRIER: u8 = 3;
const END: u8 = 4;
const CREDIT: u8 = 5;
const CLOSE: u8 = 6;
const HELLO: u8 = 16;
const WELCOME: u8 = 17;
const REFUSE: u8 = 18;

/// Input that is not a well-formed frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than [`MAX_FRAME`] bytes.
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    TooLarge(usize),
    /// The input ends inside a frame.
    #[error("the input ends inside a frame")]
    Truncated,
    /// An empty frame or an unknown kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The body does not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Bytes left over after the body.
    #[error("{0} bytes left over after the frame body")]
    Trailing(usize),
    /// A value to send nests lists and maps deeper than [`codec::MAX_DEPTH`].
    #[error("a value nests lists and maps deeper than {}", codec::MAX_DEPTH)]
    TooDeep,
}

impl From<DecodeError> for FrameError {
    fn from(e: DecodeError) -> FrameError {
        FrameError::Malformed(e.0)
    }
}

/// The first frame on a connection, from the connecting worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// The connecting worker's index.
    pub from: u32,
    /// The index of the worker it means to reach.
    pub to: u32,
    /// The number of workers of the attempt.
    pub count: u32,
    /// The job attempt.
    pub attempt: String,
}

/// A decoded frame.
#[derive(Debug)]
pub enum Frame {
    /// An in-band message of a channel (data, watermark, barrier, end).
    Message(ChannelId, Message),
    /// The receiver of a channel grants this many more messages.
    Credit(ChannelId, u32),
    /// The receiver of a channel is gone: its sender sees `Closed`.
    Close(ChannelId),
    /// Handshake, connecting side.
    Hello(Hello),
    /// Handshake accepted: the accepting worker's index and attempt.
    Welcome(u32, String),
    /// Handshake refused, and why.
    Refuse(String),
}

/// Starts a frame of `kind` in `out`; [`finish`] writes its length.
fn start(out: &mut Vec<u8>, kind: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    at
}

/// Writes the length of the frame started at `at`. A frame over [`MAX_FRAME`] is taken back out.
fn finish(out: &mut Vec<u8>, at: usize) -> Result<(), FrameError> {
    let len = out.len() - at - 4;
    if len > MAX_FRAME {
        out.truncate(at);
        return Err(FrameError::TooLarge(len));
    }
    out[at..at + 4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

fn put_channel(out: &mut Vec<u8>, c: ChannelId) {
    write_varint(out, c.edge as u64);
    write_varint(out, u64::from(c.from));
    write_varint(out, u64::from(c.to));
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn barrier_kind_byte(k: BarrierKind) -> u8 {
    match k {
        BarrierKind::Checkpoint => 0,
        BarrierKind::Final => 1,
        BarrierKind::Savepoint => 2,
        BarrierKind::StopSavepoint => 3,
    }
}

/// Appends the frame of message `msg` on `channel` to `out`.
pub fn encode_message(out: &mut Vec<u8>, channel: ChannelId, msg: &Message) -> Result<(), FrameError> {
    let at = match msg {
        Message::Batch(batch) => {
            let at = start(out, DATA);
            put_channel(out, channel);
            if let Err(e) = codec::encode_batch(out, batch) {
                out.truncate(at);
                return Err(e);
            }
            at
        }
        Message::Watermark(w) => {
            let at = start(out, WATERMARK);
            put_channel(out, channel);
            write_varint(out, zigzag(*w));
            at
        }
        Message::Barrier(b) => {
            let at = start(out, BARRIER);
            put_channel(out, channel);
            write_varint(out, b.id.0);
            out.push(barrier_kind_byte(b.kind));
            at
        }
        Message::End => {
            let at = start(out, END);
            put_channel(out, channel);
            at
        }
    };
    finish(out, at)
}

/// Appends a credit grant of `credits` messages on `channel`.
pub fn encode_credit(out: &mut Vec<u8>, channel: ChannelId, credits: u32) {
    let at = start(out, CREDIT);
    put_channel(out, channel);
    write_varint(out, u64::from(credits));
    let _ = finish(out, at);
}

/// Appends a close notice for `channel`.
pub fn encode_close(out: &mut Vec<u8>, channel: ChannelId) {
    let at = start(out, CLOSE);
    put_channel(out, channel);
    let _ = finish(out, at);
}

/// Appends a handshake hello.
pub fn encode_hello(out: &mut Vec<u8>, h: &Hello) {
    let at = start(out, HELLO);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&h.version.to_le_bytes());
    write_varint(out, u64::from(h.from));
    write_varint(out, u64::from(h.to));
    write_varint(out, u64::from(h.count));
    write_bytes(out, h.attempt.as_bytes());
    let _ = finish(out, at);
}

/// Appends a handshake welcome from worker `worker` of `attempt`.
pub fn encode_welcome(out: &mut Vec<u8>, worker: u32, attempt: &str) {
    let at = start(out, WELCOME);
    write_varint(out, u64::from(worker));
    write_bytes(out, attempt.as_bytes());
    let _ = finish(out, at);
}

/// Appends a handshake refusal.
pub fn encode_refuse(out: &mut Vec<u8>, reason: &str) {
    let at = start(out, REFUSE);
    write_bytes(out, reason.as_bytes());
    let _ = finish(out, at);
}

fn u32_of(v: u64, what: &str) -> Result<u32, FrameError> {
    u32::try_from(v).map_err(|_| FrameError::Malformed(format!("{what} {v} out of range")))
}

fn get_channel(input: &mut &[u8]) -> Result<ChannelId, FrameError> {
    let edge = read_varint(input)?;
    let edge = usize::try_from(edge).map_err(|_| FrameError::Malformed(format!("edge {edge} out of range")))?;
    let from = u32_of(read_varint(input)?, "subtask")?;
    let to = u32_of(read_varint(input)?, "subtask")?;
    Ok(ChannelId { edge, from, to })
}

fn get_u8(input: &mut &[u8]) -> Result<u8, FrameError> {
    let (&b, rest) = input.split_first().ok_or(FrameError::Truncated)?;
    *input = rest;
    Ok(b)
}

fn get_string(input: &mut &[u8]) -> Result<String, FrameError> {
    let b = read_bytes(input)?;
    String::from_utf8(b.to_vec()).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Decodes a frame body (the bytes after the length prefix).
pub fn decode(body: &[u8]) -> Result<Frame, FrameError> {
    let mut input = body;
    let kind = *input.first().ok_or(FrameError::UnknownKind(0))?;
    input = &input[1..];
    let frame = match kind {
        DATA => {
            let c = get_channel(&mut input)?;
            let batch = BatchDecoder::default().decode_batch(input)?;
            input = &[];
            Frame::Message(c, Message::Batch(batch))
        }
        WATERMARK => {
            let c = get_channel(&mut input)?;
            Frame::Message(c, Message::Watermark(unzigzag(read_varint(&mut input)?)))
        }
        BARRIER => {
            let c = get_channel(&mut input)?;
            let id = CheckpointId(read_varint(&mut input)?);
            let kind = match get_u8(&mut input)? {
                0 => BarrierKind::Checkpoint,
                1 => BarrierKind::Final,
                2 => BarrierKind::Savepoint,
                3 => BarrierKind::StopSavepoint,
                k => return Err(FrameError::Malformed(format!("unknown barrier kind {k}"))),
            };
            Frame::Message(c, Message::Barrier(Barrier { id, kind }))
        }
        END => Frame::Message(get_channel(&mut input)?, Message::End),
        CREDIT => {
            let c = get_channel(&mut input)?;
            Frame::Credit(c, u32_of(read_varint(&mut input)?, "credit")?)
        }
        CLOSE => Frame::Close(get_channel(&mut input)?),
        HELLO => {
            if input.len() < MAGIC.len() + 2 || &input[..MAGIC.len()] != MAGIC {
                return Err(FrameError::Malformed("not a Sluice exchange hello".into()));
            }
            let version = u16::from_le_bytes([input[8], input[9]]);
            input = &input[10..];
            let from = u32_of(read_varint(&mut input)?, "worker")?;
            let to = u32_of(read_varint(&mut input)?, "worker")?;
            let count = u32_of(read_varint(&mut input)?, "worker count")?;
            let attempt = get_string(&mut input)?;
            Frame::Hello(Hello { version, from, to, count, attempt })
        }
        WELCOME => {
            let worker = u32_of(read_varint(&mut input)?, "worker")?;
            Frame::Welcome(worker, get_string(&mut input)?)
        }
        REFUSE => Frame::Refuse(get_string(&mut input)?),
        k => return Err(FrameError::UnknownKind(k)),
    };
    if !input.is_empty() {
        return Err(FrameError::Trailing(input.len()));
    }
    Ok(frame)
}

/// A frame as the connection's reader routes it.
#[derive(Debug)]
pub enum Incoming {
    /// A data frame: its channel and its records, still encoded (`count · records`, for a
    /// [`BatchDecoder`]).
    Data(ChannelId, Vec<u8>),
    /// Any other frame, decoded.
    Frame(Frame),
}

/// Decodes a frame body as the connection's reader needs it: a data frame only as far as its
/// channel (its records are checked when they are decoded), any other frame whole.
pub fn decode_incoming(body: &[u8]) -> Result<Incoming, FrameError> {
    if body.first() == Some(&DATA) {
        let mut input = &body[1..];
        let c = get_channel(&mut input)?;
        return Ok(Incoming::Data(c, input.to_vec()));
    }
    decode(body).map(Incoming::Frame)
}

/// Why a frame could not be read from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream failed or ended inside a frame.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a frame.
    #[error("{0}")]
    Frame(#[from] FrameError),
}

/// Reads the next frame's body into `buf` (reused across calls); `Ok(false)` when the stream
/// ends cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<bool, ReadError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(false) } else { Err(FrameError::Truncated.into()) };
        }
        got += n;
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len).into());
    }
    buf.clear();
    buf.resize(len, 0);
    match r.read_exact(buf).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated.into()),
        Err(e) => Err(e.into()),
    }
}

/// Reads frames from a stream in large chunks (one read brings many frames) into one buffer,
/// reused across frames.
pub struct FrameReader {
    buf: BytesMut,
    chunk: usize,
    /// The bytes of the frame returned last, dropped at the next call.
    consumed: usize,
}

impl FrameReader {
    /// A reader whose reads ask for at least `chunk` bytes.
    pub fn new(chunk: usize) -> FrameReader {
        FrameReader { buf: BytesMut::with_capacity(chunk), chunk, consumed: 0 }
    }

    /// The next frame's body, valid until the next call; `Ok(None)` when the stream ends
    /// cleanly between frames.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<&[u8]>, ReadError> {
        self.buf.advance(std::mem::take(&mut self.consumed));
        let len = loop {
            if let Some(head) = self.buf.first_chunk::<4>() {
                let len = u32::from_le_bytes(*head) as usize;
                if len > MAX_FRAME {
                    return Err(FrameError::TooLarge(len).into());
                }
                if self.buf.len() >= 4 + len {
                    break len;
                }
                // Room for the rest of this frame, and a chunk more.
                self.buf.reserve(4 + len - self.buf.len() + self.chunk);
            } else if self.buf.capacity() - self.buf.len() < self.chunk {
                self.buf.reserve(self.chunk);
            }
            if r.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() { Ok(None) } else { Err(FrameError::Truncated.into()) };
            }
        };
        self.consumed = 4 + len;
        Ok(Some(&self.buf[4..4 + len]))
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
