//! The wire format of the control connection between worker 0 (the coordinator) and each
//! other worker of an attempt. Same framing as the exchange (`engine::net::frame`): a
//! length-prefixed frame, a kind byte; then the attempt id, on *every* frame, so a message of
//! another attempt is refused wherever it turns up, not only at the handshake.
//!
//! ```text
//! frame     = len:u32 LE · kind:u8 · attempt:bytes · body
//! task      = chain:varint · subtask:varint
//! HELLO      1  magic "SLUICECT" · version:u16 LE · worker:varint · count:varint
//! WELCOME    2
//! REFUSE     3  reason:bytes
//! START      4  restore:opt-bytes            (0 = none, 1 + bytes = manifest or savepoint URI)
//! READY      5                               (the worker's tasks are wired, its exchange is up)
//! CONTROL    6  task · control:u8 · …        (trigger: checkpoint:varint · barrier kind:u8;
//!                                             complete, abort: checkpoint:varint)
//! CANCEL     7  keep-up-to:opt-varint        (set the cancel flag before the tasks' Cancel)
//! ACK        8  checkpoint:varint · task · alignment-us:varint · records:varint · states:bytes (JSON)
//! DECLINE    9  checkpoint:varint · task · reason:bytes
//! FINISHED  10  task                         (a source has no more data)
//! ENDED     11  task · 0 | 1 · kind:u8 · symptom:u8 · message:bytes   (ok | failed)
//! HEARTBEAT 12
//! BYE       13                               (worker 0: the run is over)
//! ```

use sluice_crds::CheckpointId;
use sluice_crds::contract::manifest::TaskState;

use crate::engine::message::{Barrier, BarrierKind, TaskAck, TaskControl, TaskEvent, TaskId};
use crate::error::ErrorKind;
use crate::value::{DecodeError, read_bytes, read_varint, write_bytes, write_varint};

/// The first bytes of a control hello.
pub const MAGIC: &[u8; 8] = b"SLUICECT";
/// The protocol version the hello carries.
pub const VERSION: u16 = 2;

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const REFUSE: u8 = 3;
const START: u8 = 4;
const READY: u8 = 5;
const CONTROL: u8 = 6;
const CANCEL: u8 = 7;
const ACK: u8 = 8;
const DECLINE: u8 = 9;
const FINISHED: u8 = 10;
const ENDED: u8 = 11;
const HEARTBEAT: u8 = 12;
const BYE: u8 = 13;

/// How a task on another worker failed, as that worker said it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFailure {
    /// What the failure means for the run.
    pub kind: ErrorKind,
    /// A symptom of another failure (a closed downstream channel), not a cause.
    pub symptom: bool,
    /// The failure in the job document's terms.
    pub message: String,
}

/// One message on the control connection.
#[derive(Debug)]
pub enum ControlMsg {
    /// Handshake, from a worker to worker 0.
    Hello {
        /// Protocol version.
        version: u16,
        /// The connecting worker's index.
        worker: u32,
        /// The attempt's worker count as the connecting worker knows it.
        count: u32,
        /// A digest of the job document the connecting worker runs ([`super::job_digest`]):
        /// workers of one attempt must plan the same graph.
        job: u64,
    },
    /// Handshake accepted.
    Welcome,
    /// Handshake refused, and why.
    Refuse(String),
    /// Worker 0 chose the restore point and recovered the sinks: load this one and wire.
    Start {
        /// The manifest or savepoint URI to restore, none for a fresh start.
        restore: Option<String>,
    },
    /// The worker's tasks are wired and its exchange connections are up.
    Ready,
    /// A coordinator command for one task.
    Control(TaskId, TaskControl),
    /// The job is cancelled: transactions up to this checkpoint are kept.
    Cancel(Option<CheckpointId>),
    /// A task's report to the coordinator.
    Event(TaskEvent),
    /// A task ended: `None` when it finished cleanly.
    Ended(TaskId, Option<RemoteFailure>),
    /// Nothing else to say; the connection is alive.
    Heartbeat,
    /// Worker 0: the run is over.
    Bye,
}

/// A control frame that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed control frame: {0}")]
pub struct ProtocolError(pub String);

impl From<DecodeError> for ProtocolError {
    fn from(e: DecodeError) -> ProtocolError {
        ProtocolError(e.0)
    }
}

fn put_task(out: &mut Vec<u8>, t: TaskId) {
    write_varint(out, t.chain as u64);
    write_varint(out, u64::from(t.subtask));
}

fn put_opt_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            write_bytes(out, b);
        }
    }
}

fn barrier_kind_byte(k: BarrierKind) -> u8 {
    match k {
        BarrierKind::Checkpoint => 0,
        BarrierKind::Final => 1,
        BarrierKind::Savepoint => 2,
        BarrierKind::StopSavepoint => 3,
    }
}

fn kind_byte(k: ErrorKind) -> u8 {
    match k {
        ErrorKind::Retryable => 0,
        ErrorKind::BadInput => 1,
        ErrorKind::DataLossRisk => 2,
    }
}

/// Appends `msg` of `attempt` as one frame to `out`.
pub fn encode(out: &mut Vec<u8>, attempt: &str, msg: &ControlMsg) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let kind = match msg {
        ControlMsg::Hello { .. } => HELLO,
        ControlMsg::Welcome => WELCOME,
        ControlMsg::Refuse(_) => REFUSE,
        ControlMsg::Start { .. } => START,
        ControlMsg::Ready => READY,
        ControlMsg::Control(..) => CONTROL,
        ControlMsg::Cancel(_) => CANCEL,
        ControlMsg::Event(TaskEvent::Ack(_)) => ACK,
        ControlMsg::Event(TaskEvent::Decline { .. }) => DECLINE,
        ControlMsg::Event(TaskEvent::SourceFinished(_)) => FINISHED,
        ControlMsg::Ended(..) => ENDED,
        ControlMsg::Heartbeat => HEARTBEAT,
        ControlMsg::Bye => BYE,
    };
    out.push(kind);
    write_bytes(out, attempt.as_bytes());
    match msg {
        ControlMsg::Hello { version, worker, count, job } => {
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&version.to_le_bytes());
            write_varint(out, u64::from(*worker));
            write_varint(out, u64::from(*count));
            write_varint(out, *job);
        }
        ControlMsg::Refuse(reason) => write_bytes(out, reason.as_bytes()),
        ControlMsg::Start { restore } => put_opt_bytes(out, restore.as_deref().map(str::as_bytes)),
        ControlMsg::Control(task, c) => {
            put_task(out, *task);
            match c {
                TaskControl::Trigger(b) => {
                    out.push(0);
                    write_varint(out, b.id.0);
                    out.push(barrier_kind_byte(b.kind));
                }
                TaskControl::Complete(id) => {
                    out.push(1);
                    write_varint(out, id.0);
                }
                TaskControl::Abort(id) => {
                    out.push(2);
                    write_varint(out, id.0);
                }
                TaskControl::EndInput => out.push(3),
                TaskControl::Cancel => out.push(4),
            }
        }
        ControlMsg::Cancel(keep) => match keep {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                write_varint(out, id.0);
            }
        },
        ControlMsg::Event(TaskEvent::Ack(a)) => {
            write_varint(out, a.checkpoint.0);
            put_task(out, a.task);
            write_varint(out, a.alignment_us);
            write_varint(out, a.records);
            // The states are the manifest's own serde types: JSON, as in the manifest.
            let states = serde_json::to_vec(&a.states).unwrap_or_default();
            write_bytes(out, &states);
        }
        ControlMsg::Event(TaskEvent::Decline { checkpoint, task, reason }) => {
            write_varint(out, checkpoint.0);
            put_task(out, *task);
            write_bytes(out, reason.as_bytes());
        }
        ControlMsg::Event(TaskEvent::SourceFinished(task)) => put_task(out, *task),
        ControlMsg::Ended(task, failure) => {
            put_task(out, *task);
            match failure {
                None => out.push(0),
                Some(f) => {
                    out.push(1);
                    out.push(kind_byte(f.kind));
                    out.push(u8::from(f.symptom));
                    write_bytes(out, f.message.as_bytes());
                }
            }
        }
        ControlMsg::Welcome | ControlMsg::Ready | ControlMsg::Heartbeat | ControlMsg::Bye => {}
    }
    let len = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

fn get_u8(input: &mut &[u8]) -> Result<u8, ProtocolError> {
    let (&b, rest) = input.split_first().ok_or_else(|| ProtocolError("truncated".into()))?;
    *input = rest;
    Ok(b)
}

fn get_u32(input: &mut &[u8], what: &str) -> Result<u32, ProtocolError> {
    let v = read_varint(input)?;
    u32::try_from(v).map_err(|_| ProtocolError(format!("{what} {v} out of range")))
}

fn get_string(input: &mut &[u8]) -> Result<String, ProtocolError> {
    let b = read_bytes(input)?;
    String::from_utf8(b.to_vec()).map_err(|e| ProtocolError(e.to_string()))
}

fn get_task(input: &mut &[u8]) -> Result<TaskId, ProtocolError> {
    let chain = read_varint(input)?;
    let chain = usize::try_from(chain).map_err(|_| ProtocolError(format!("chain {chain} out of range")))?;
    Ok(TaskId { chain, subtask: get_u32(input, "subtask")? })
}

fn get_checkpoint(input: &mut &[u8]) -> Result<CheckpointId, ProtocolError> {
    Ok(CheckpointId(read_varint(input)?))
}

fn get_control(input: &mut &[u8]) -> Result<TaskControl, ProtocolError> {
    Ok(match get_u8(input)? {
        0 => {
            let id = get_checkpoint(input)?;
            let kind = match get_u8(input)? {
                0 => BarrierKind::Checkpoint,
                1 => BarrierKind::Final,
                2 => BarrierKind::Savepoint,
                3 => BarrierKind::StopSavepoint,
                k => return Err(ProtocolError(format!("unknown barrier kind {k}"))),
            };
            TaskControl::Trigger(Barrier { id, kind })
        }
        1 => TaskControl::Complete(get_checkpoint(input)?),
        2 => TaskControl::Abort(get_checkpoint(input)?),
        3 => TaskControl::EndInput,
        4 => TaskControl::Cancel,
        k => return Err(ProtocolError(format!("unknown task control {k}"))),
    })
}

/// Decodes a frame body (the bytes after the length prefix): its attempt and its message.
pub fn decode(body: &[u8]) -> Result<(String, ControlMsg), ProtocolError> {
    let mut input = body;
    let kind = get_u8(&mut input)?;
    let attempt = get_string(&mut input)?;
    let msg = match kind {
        HELLO => {
            if input.len() < MAGIC.len() + 2 || &input[..MAGIC.len()] != MAGIC {
                return Err(ProtocolError("not a Sluice control hello".into()));
            }
            let version = u16::from_le_bytes([input[8], input[9]]);
            input = &input[10..];
            let worker = get_u32(&mut input, "worker")?;
            let count = get_u32(&mut input, "worker count")?;
            ControlMsg::Hello { version, worker, count, job: read_varint(&mut input)? }
        }
        WELCOME => ControlMsg::Welcome,
        REFUSE => ControlMsg::Refuse(get_string(&mut input)?),
        START => ControlMsg::Start {
            restore: match get_u8(&mut input)? {
                0 => None,
                _ => Some(get_string(&mut input)?),
            },
        },
        READY => ControlMsg::Ready,
        CONTROL => {
            let task = get_task(&mut input)?;
            ControlMsg::Control(task, get_control(&mut input)?)
        }
        CANCEL => ControlMsg::Cancel(match get_u8(&mut input)? {
            0 => None,
            _ => Some(get_checkpoint(&mut input)?),
        }),
        ACK => {
            let checkpoint = get_checkpoint(&mut input)?;
            let task = get_task(&mut input)?;
            let alignment_us = read_varint(&mut input)?;
            let records = read_varint(&mut input)?;
            let states: Vec<TaskState> = serde_json::from_slice(read_bytes(&mut input)?)
                .map_err(|e| ProtocolError(format!("task states: {e}")))?;
            ControlMsg::Event(TaskEvent::Ack(TaskAck { checkpoint, task, states, alignment_us, records }))
        }
        DECLINE => {
            let checkpoint = get_checkpoint(&mut input)?;
            let task = get_task(&mut input)?;
            ControlMsg::Event(TaskEvent::Decline { checkpoint, task, reason: get_string(&mut input)? })
        }
        FINISHED => ControlMsg::Event(TaskEvent::SourceFinished(get_task(&mut input)?)),
        ENDED => {
            let task = get_task(&mut input)?;
            let failure = match get_u8(&mut input)? {
                0 => None,
                _ => {
                    let kind = match get_u8(&mut input)? {
                        0 => ErrorKind::Retryable,
                        1 => ErrorKind::BadInput,
                        2 => ErrorKind::DataLossRisk,
                        k => return Err(ProtocolError(format!("unknown error kind {k}"))),
                    };
                    let symptom = get_u8(&mut input)? != 0;
                    Some(RemoteFailure { kind, symptom, message: get_string(&mut input)? })
                }
            };
            ControlMsg::Ended(task, failure)
        }
        HEARTBEAT => ControlMsg::Heartbeat,
        BYE => ControlMsg::Bye,
        k => return Err(ProtocolError(format!("unknown control frame kind {k}"))),
    };
    if !input.is_empty() {
        return Err(ProtocolError(format!("{} bytes left over after the frame body", input.len())));
    }
    Ok((attempt, msg))
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
