//! One module per group of commands.

pub mod bench;
pub mod run;
pub mod verify;
