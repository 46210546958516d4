//! Tasks, channels, barriers and watermarks. Knows nothing of Kafka or S3.
//!
//! A task runs one chain of nodes for one subtask. Between tasks, records travel as batches on
//! bounded channels (backpressure); barriers and watermarks travel in the same channels, in
//! order with the data. Channels are behind [`channel::MessageSender`]/[`channel::MessageReceiver`]
//! so a network exchange can replace the in-process one when a job spans several pods.

pub mod barrier;
pub mod cancel;
pub mod capture;
pub mod channel;
pub mod message;
pub mod metrics;
pub mod net;
pub mod operator;
pub mod router;
pub mod task;
pub mod watermark;

pub use message::{Barrier, BarrierKind, Message, TaskAck, TaskControl, TaskEvent, TaskId};
