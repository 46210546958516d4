//! `sluice-runtime`: runs a job document.

fn main() {}
