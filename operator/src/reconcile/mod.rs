//! One reconcile: read ([`observe`]) → decide ([`plan`], pure) → write ([`apply`], [`status`]).

pub mod absorb;
pub mod apply;
mod failure;
mod flow;
pub mod observe;
pub mod plan;
pub mod rollback;
mod running;
pub mod status;
mod triggers;

#[cfg(test)]
mod identity_tests;
#[cfg(test)]
mod kubelet_tests;
#[cfg(test)]
mod periodic_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod rollback_tests;
#[cfg(test)]
mod savepoint_tests;
#[cfg(test)]
mod workers_tests;
