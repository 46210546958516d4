//! Planner tests of what the kubelet and scheduler report (issue 14, items 8 and 10): a pod
//! that does not start says why in status and once as a Warning, fails its attempt after the
//! deploy timeout (also ending a savepoint upgrade stuck on it), and a pod whose deletion is
//! overdue (unreachable node) is force-deleted.

use sluice_crds::Phase;
use sluice_crds::conditions::{ConditionType as T, Reason};
use sluice_crds::stream_job::UpgradeMode;

use super::observe::{ObservedPod, PodState};
use super::plan::{Action, DEPLOY_TIMEOUT, STUCK_AFTER, plan};
use super::plan_tests::{at, deleted, launches, observed, pod, spec, status};

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).expect("small")
}

fn pulling(created: i64) -> ObservedPod {
    let mut p = pod(1, PodState::Pending);
    p.waiting = Some("container runtime ImagePullBackOff: Back-off pulling image \"x:1\"".into());
    p.created_at = Some(at(created));
    p
}

#[test]
fn a_pod_that_does_not_start_says_why_once_then_fails_its_attempt_at_the_deploy_timeout() {
    let o = observed(vec![pulling(0)]);
    let p = plan(&spec(), &status(Phase::Deploying, 1), &o, at(10));
    assert_eq!(p.status.phase, Phase::Deploying);
    let ready = p.conditions.iter().find(|c| c.type_ == T::Ready).expect("Ready");
    assert_eq!(ready.reason, Reason::PodPending);
    assert!(ready.message.contains("ImagePullBackOff"), "{}", ready.message);
    assert_eq!(p.events.iter().filter(|e| e.warning && e.reason == Reason::PodPending).count(), 1);
    assert!(p.actions.is_empty(), "nothing to do yet: {:?}", p.actions);
    // The next reconcile, same cause: no second Warning.
    let next = crate::reconcile::status::next_status(&status(Phase::Deploying, 1), &p, at(10));
    let p = plan(&spec(), &next, &o, at(20));
    assert!(p.events.is_empty(), "{:?}", p.events);
    // At the deploy timeout the attempt has failed: its pod goes, recovery says why.
    let p = plan(&spec(), &next, &o, at(secs(DEPLOY_TIMEOUT)));
    assert_eq!(p.status.phase, Phase::Recovering);
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let why = p.status.recovery.as_ref().and_then(|r| r.reason.clone()).expect("reason");
    assert!(why.contains("did not start within 300s") && why.contains("ImagePullBackOff"), "{why}");
}

#[test]
fn a_savepoint_upgrade_waiting_on_a_pod_that_never_ran_ends_at_the_deploy_timeout() {
    let mut s = spec();
    s.upgrade_mode = UpgradeMode::Savepoint;
    s.last_state_fallback = Some(false);
    let mut o = observed(vec![pulling(0)]);
    o.desired_hash = "h2".into();
    // No savepoint can be taken from a pod that never ran, and no fallback is allowed: wait.
    let p = plan(&s, &status(Phase::Deploying, 1), &o, at(10));
    assert!(p.actions.is_empty() && p.status.operation.is_none(), "{:?}", p.actions);
    // The deploy timeout fails the old attempt; its replacement starts with the new spec.
    let p = plan(&s, &p.status, &o, at(secs(DEPLOY_TIMEOUT)));
    assert_eq!(deleted(&p), vec!["demo-1-0".to_string()]);
    let gone = super::observe::Observed { pods: vec![], ..o };
    let mut st = p.status.clone();
    if let Some(r) = st.recovery.as_mut() {
        r.failed_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
    }
    let p = plan(&s, &st, &gone, at(secs(DEPLOY_TIMEOUT) + 600));
    assert_eq!(launches(&p).len(), 1, "{:?}", p.actions);
    assert_eq!(p.status.spec_hash.as_deref(), Some("h2"));
}

#[test]
fn a_pod_whose_deletion_is_overdue_is_force_deleted() {
    let mut terminating = pod(1, PodState::Running { ready: true });
    terminating.terminating = true;
    terminating.deletion_at = Some(at(100));
    let o = observed(vec![terminating]);
    let forced = |now: i64| {
        plan(&spec(), &status(Phase::Running, 1), &o, at(now)).actions.iter().find_map(|a| match a {
            Action::DeletePods { names, force } => Some((names.clone(), *force)),
            _ => None,
        })
    };
    // Within the grace period and a little after: the kubelet is trusted to kill it.
    assert_eq!(forced(100), None);
    assert_eq!(forced(100 + secs(STUCK_AFTER) - 1), None);
    // Overdue: its node does not answer; it is removed with a zero grace period.
    assert_eq!(forced(100 + secs(STUCK_AFTER)), Some((vec!["demo-1-0".to_string()], true)));
}
