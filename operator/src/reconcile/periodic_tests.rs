//! Planner tests of periodic savepoints (`spec.periodicSavepointInterval`): the schedule starts
//! counting when the job is first seen running, fires once per interval, skips its turn while
//! the job is not running, yields to a user's trigger, and its savepoints go through the same
//! history and disposal rules as any other.

use std::time::Duration;

use sluice_crds::contract::control::{SavepointState as RuntimeState, SavepointStatus};
use sluice_crds::savepoints::{SavepointDisposal, SavepointHistory, SavepointInfo, SavepointState, SavepointTrigger};
use sluice_crds::{Phase, StreamJobSpec, StreamJobStatus};

use super::absorb::{Outcome, absorb};
use super::observe::{Observed, PodState, SavepointPoll};
use super::plan::{Action, Plan, plan};
use super::plan_tests::{at, observed, pod, running, runtime_running, spec, status};

fn periodic(every: &str) -> StreamJobSpec {
    let mut s = spec();
    s.periodic_savepoint_interval = Some(every.parse().expect("a duration"));
    s
}

fn live() -> Observed {
    let mut o = observed(vec![running(1)]);
    o.runtime = runtime_running();
    o
}

fn last(p: &Plan) -> Option<SavepointInfo> {
    p.status.savepoints.as_ref().and_then(|s| s.last.clone())
}

fn triggers(p: &Plan) -> usize {
    p.actions.iter().filter(|a| matches!(a, Action::TriggerSavepoint { .. })).count()
}

/// Takes the savepoint `p` recorded through to completion, as the runtime would answer.
fn complete(spec: &StreamJobSpec, p: &Plan, now: i64) -> Plan {
    let mut o = live();
    let path = last(p).and_then(|l| l.path).expect("a path");
    let mut asked = plan(spec, &p.status, &o, at(now));
    assert_eq!(triggers(&asked), 1, "the runtime is asked once the trigger is persisted");
    let answer = |state| SavepointStatus {
        version: 1,
        id: format!("sp-{now}"),
        state,
        location: Some(path.clone()),
        error: None,
    };
    absorb(&mut asked, vec![Outcome::Triggered(Ok(answer(RuntimeState::Pending)))], at(now));
    o.savepoint_poll = Some(SavepointPoll::Status(answer(RuntimeState::Completed)));
    plan(spec, &asked.status, &o, at(now + 1))
}

#[test]
fn the_schedule_starts_when_the_job_runs_and_fires_once_per_interval() {
    let s = periodic("60s");
    let p = plan(&s, &status(Phase::Running, 1), &live(), at(5));
    assert!(last(&p).is_none(), "no savepoint at once");
    assert_eq!(p.status.savepoints.as_ref().and_then(|sp| sp.last_periodic.clone()).map(|t| t.0), Some(at(5)));
    assert!(p.requeue_after <= Duration::from_secs(60), "back in time for the first one");
    let p = plan(&s, &p.status, &live(), at(30));
    assert!(last(&p).is_none());
    assert!(p.requeue_after <= Duration::from_secs(35), "{:?}", p.requeue_after);
    let p = plan(&s, &p.status, &live(), at(65));
    let l = last(&p).expect("due at 65");
    assert_eq!((l.trigger, l.state), (SavepointTrigger::Periodic, SavepointState::Pending));
    assert!(l.path.as_deref().is_some_and(|x| x.starts_with("s3://bucket/demo/savepoints/")), "{l:?}");
    let done = complete(&s, &p, 66);
    let sp = done.status.savepoints.clone().expect("savepoints");
    assert_eq!(sp.history.len(), 1);
    assert_eq!(sp.history[0].trigger, SavepointTrigger::Periodic);
    // Counted from the trigger at 65: nothing new at 100, the next one at 125.
    let p = plan(&s, &done.status, &live(), at(100));
    assert_eq!(last(&p).map(|l| l.state), Some(SavepointState::Completed), "no new trigger before 125");
    let p = plan(&s, &p.status, &live(), at(125));
    assert_eq!(last(&p).map(|l| (l.trigger, l.state)), Some((SavepointTrigger::Periodic, SavepointState::Pending)));
}

#[test]
fn a_job_that_is_not_running_skips_its_turn_without_a_failure() {
    let s = periodic("60s");
    let mut st = status(Phase::Running, 1);
    st.savepoints = Some(Default::default());
    st.savepoints.as_mut().expect("set").last_periodic =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
    // The pod is not ready: no trigger, nothing recorded as failed.
    let not_ready = observed(vec![pod(1, PodState::Running { ready: false })]);
    let p = plan(&s, &st, &not_ready, at(90));
    assert!(last(&p).is_none(), "{:?}", last(&p));
    // Ready again: the overdue savepoint is taken now.
    let p = plan(&s, &p.status, &live(), at(95));
    assert_eq!(last(&p).map(|l| l.trigger), Some(SavepointTrigger::Periodic));
}

#[test]
fn a_users_trigger_goes_first_and_periodic_savepoints_obey_the_history_bounds() {
    let mut s = periodic("60s");
    s.savepoint_history = Some(SavepointHistory { max_count: Some(2), max_age: None });
    s.savepoint_disposal = Some(SavepointDisposal::Delete);
    let mut st: StreamJobStatus = status(Phase::Running, 1);
    st.savepoints = Some(Default::default());
    st.savepoints.as_mut().expect("set").observed_annotation = Some("old".into());
    let mut o = live();
    let p = plan(&s, &st, &o, at(0));
    o.annotation = Some("mine".into());
    // Due and asked for at once: the annotation wins; the periodic one waits for it.
    let p = plan(&s, &p.status, &o, at(70));
    assert_eq!(last(&p).map(|l| l.trigger), Some(SavepointTrigger::Annotation));
    let mine = last(&p).and_then(|l| l.path).expect("a path");
    let mut done = complete(&s, &p, 71);
    let mut periodic_paths = Vec::new();
    // Three periodic savepoints later, history holds two and the oldest is queued for disposal.
    for round in 0..3 {
        let t = 200 + round * 100;
        let p = plan(&s, &done.status, &live(), at(t));
        assert_eq!(last(&p).map(|l| l.trigger), Some(SavepointTrigger::Periodic), "round {round}");
        periodic_paths.extend(last(&p).and_then(|l| l.path));
        done = complete(&s, &p, t + 1);
    }
    let sp = done.status.savepoints.clone().expect("savepoints");
    let kept: Vec<_> = sp.history.iter().filter_map(|h| h.path.clone()).collect();
    assert_eq!(kept, vec![periodic_paths[2].clone(), periodic_paths[1].clone()], "newest first, two kept");
    assert_eq!(sp.pending_disposal, vec![mine, periodic_paths[0].clone()], "the two that fell out are deleted");
}
