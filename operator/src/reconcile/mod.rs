//! One reconcile: read ([`observe`]) → decide ([`plan`], pure) → write ([`apply`], [`status`]).

pub mod apply;
pub mod observe;
pub mod plan;
pub mod status;

#[cfg(test)]
mod plan_tests;
