//! One module per group of commands.

pub mod bench;
pub mod control;
pub mod control_format;
pub mod run;
pub mod supervisor;
pub mod verify;
pub mod worker;
