//! Planner tests of rollback (`spec.rollbackOnFailedUpgrade`): what counts as stable, the
//! rollback of a new spec that fails before its first checkpoint, running the stable spec
//! without it looking like an upgrade, and the next spec change ending it.

use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::stream_job::StableSpec;
use sluice_crds::{Phase, StreamJobSpec, StreamJobStatus};

use super::observe::{Observed, ObservedPod, PodState, RuntimeObservation};
use super::plan::{Plan, Restore, plan};
use super::plan_tests::{HASH, at, deleted, launches, observed, pod, runtime_running, spec, status};
use super::rollback::effective_spec;

const NEW: &str = "h-new";

fn stable() -> StableSpec {
    StableSpec { hash: HASH.into(), spec: serde_json::to_string(&spec()).expect("json") }
}

/// The new spec: another parallelism, rollback asked for.
fn new_spec(rollback: bool) -> StreamJobSpec {
    let mut s = spec();
    s.parallelism = 3;
    s.rollback_on_failed_upgrade = Some(rollback);
    s
}

fn of_spec(mut p: ObservedPod, hash: &str) -> ObservedPod {
    p.spec_hash = Some(hash.into());
    p
}

/// Attempt 2 of the new spec, just launched by an upgrade from the stable spec.
fn upgraded() -> StreamJobStatus {
    let mut st = status(Phase::Deploying, 2);
    st.spec_hash = Some(NEW.into());
    st.last_stable_spec = Some(stable());
    st
}

fn failed_new_attempt() -> Observed {
    let mut o = observed(vec![of_spec(pod(2, PodState::Failed), NEW)]);
    o.desired_hash = NEW.into();
    o
}

fn cond(p: &Plan, t: T) -> Option<(bool, Reason)> {
    p.conditions.iter().find(|c| c.type_ == t).map(|c| (c.status, c.reason))
}

#[test]
fn a_spec_is_stable_once_its_attempt_completed_a_checkpoint() {
    let mut o = observed(vec![super::plan_tests::running(1)]);
    o.runtime = RuntimeObservation::Status(match runtime_running() {
        RuntimeObservation::Status(mut s) => {
            s.completed = 0;
            s
        }
        other => panic!("{other:?}"),
    });
    let p = plan(&spec(), &status(Phase::Running, 1), &o, at(0));
    assert_eq!(p.status.last_stable_spec, None, "running, but no checkpoint yet");
    o.runtime = runtime_running();
    let p = plan(&spec(), &p.status, &o, at(1));
    assert_eq!(p.status.last_stable_spec, Some(stable()));
    let back: StreamJobSpec = serde_json::from_str(&stable().spec).expect("decodes");
    assert_eq!(back, spec());
}

#[test]
fn a_new_spec_failing_before_its_first_checkpoint_rolls_back_to_the_stable_one() {
    let p = plan(&new_spec(true), &upgraded(), &failed_new_attempt(), at(10));
    assert_eq!(p.status.rolled_back_from.as_deref(), Some(NEW));
    assert_eq!(deleted(&p), vec!["demo-2-0".to_string()]);
    assert!(launches(&p).is_empty(), "the stable spec is launched by the next reconcile");
    assert!(p.events.iter().any(|e| e.warning && e.reason == Reason::RolledBack), "{:?}", p.events);
    assert_eq!(cond(&p, T::Degraded), Some((true, Reason::RolledBack)));

    // The controller now hands every step the stable spec.
    let effective = effective_spec(&p.status, NEW).expect("the stable spec");
    assert_eq!(effective, spec());
    assert_eq!(effective_spec(&p.status, "h-other"), None, "a changed spec is reconciled as it is");
    let mut o = observed(vec![]);
    o.desired_hash = HASH.into();
    let p = plan(&effective, &p.status, &o, at(600));
    assert_eq!(launches(&p), vec![(3, Restore::Latest)], "the latest checkpoint, stable spec");
    assert_eq!(p.status.spec_hash.as_deref(), Some(HASH));

    // Running the stable spec is not an upgrade in waiting, and says it was rolled back.
    let mut o = observed(vec![super::plan_tests::running(3)]);
    o.runtime = runtime_running();
    let p = plan(&effective, &p.status, &o, at(601));
    assert_eq!(p.status.phase, Phase::Running);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.status.operation, None);
    assert_eq!(cond(&p, T::Degraded), Some((true, Reason::RolledBack)));
    assert_eq!(p.status.rolled_back_from.as_deref(), Some(NEW));

    // The next spec change ends it: an ordinary upgrade to that spec.
    let mut changed = observed(vec![super::plan_tests::running(3)]);
    changed.desired_hash = "h-newer".into();
    let p = plan(&new_spec(true), &p.status, &changed, at(700));
    assert_eq!(p.status.rolled_back_from, None);
    assert_eq!(p.status.phase, Phase::Upgrading);
}

#[test]
fn without_the_flag_or_after_a_checkpoint_a_failure_is_an_ordinary_recovery() {
    // Not asked for.
    let p = plan(&new_spec(false), &upgraded(), &failed_new_attempt(), at(10));
    assert_eq!(p.status.rolled_back_from, None);
    assert_eq!(p.status.phase, Phase::Recovering);
    assert_eq!(cond(&p, T::Degraded).map(|c| c.1), Some(Reason::PodFailed));
    // The new spec completed a checkpoint: it is the stable one now, so nothing to go back to.
    let mut st = upgraded();
    st.last_stable_spec =
        Some(StableSpec { hash: NEW.into(), spec: serde_json::to_string(&new_spec(true)).expect("json") });
    let p = plan(&new_spec(true), &st, &failed_new_attempt(), at(10));
    assert_eq!(p.status.rolled_back_from, None);
    // No stable spec at all (the first deploy failing): nothing to go back to either.
    let mut st = upgraded();
    st.last_stable_spec = None;
    let p = plan(&new_spec(true), &st, &failed_new_attempt(), at(10));
    assert_eq!(p.status.rolled_back_from, None);
}
