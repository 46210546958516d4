//! `sluice-operator`: reconciles StreamJobs into runtime pods.

fn main() {}
