//! What must hold (`always`), what must happen (`eventually`), and what must be reachable
//! (`sometimes`, so that the `always` checks are not vacuous).

use stateright::{Model, Property};

use super::ProtocolModel;
use super::run::finished;
use super::state::{Rec, State, TxnStatus};

/// Exactly once, at the end of the job, in every sink.
pub const EXACTLY_ONCE: &str = "finished job: every input committed exactly once in every sink";
/// Never a duplicate, at any time.
pub const NO_DUPLICATE: &str = "no input is ever committed twice in a sink";
/// Nothing from an uncompleted checkpoint is committed.
pub const ONLY_PUBLISHED_COMMITTED: &str = "only transactions a published manifest lists are committed";
/// A completed checkpoint's transactions are never thrown away.
pub const PUBLISHED_NEVER_ABORTED: &str = "no transaction a published manifest lists is ever aborted";
/// A completed checkpoint's transactions are committed by the end.
pub const PUBLISHED_COMMITTED: &str = "finished job: every transaction a published manifest lists is committed";
/// No transaction left pre-committed (it would hold back Kafka's last stable offset, and a
/// broker timeout would abort it).
pub const NONE_LEFT_OPEN: &str = "finished job: no transaction left open or pre-committed";
/// One publish per checkpoint id.
pub const ONE_PUBLISH: &str = "at most one attempt publishes a given checkpoint id";
/// Only the attempt's own workers count towards its checkpoints.
pub const NO_FOREIGN_ACK: &str = "a worker of another attempt never contributes an ack to a checkpoint";
/// The protocol never gets stuck.
pub const NO_DEADLOCK: &str = "every state without a protocol step is the finished job";
/// The protocol terminates (liveness, on acyclic paths).
pub const FINISHES: &str = "the job finishes";

/// Sometimes: a crash after a publish, before its commits.
pub const S_CRASH_AFTER_PUBLISH: &str = "sometimes: crash after publish, before commit";
/// Sometimes: a crash between sink 0's and sink 1's commits.
pub const S_CRASH_BETWEEN_SINKS: &str = "sometimes: crash between the commits of two sinks";
/// Sometimes: a crash during sink recovery.
pub const S_CRASH_DURING_RECOVERY: &str = "sometimes: crash during recovery";
/// Sometimes: recovery commits a pending transaction.
pub const S_RECOVERY_COMMIT: &str = "sometimes: recovery commits a pre-committed transaction";
/// Sometimes: recovery aborts a pre-committed transaction.
pub const S_RECOVERY_ABORT: &str = "sometimes: recovery aborts a pre-committed transaction";
/// Sometimes: alignment blocks an input that still has records.
pub const S_BLOCKED: &str = "sometimes: alignment blocks an input";
/// Sometimes: the job finishes after a crash.
pub const S_FINISHED_AFTER_CRASH: &str = "sometimes: the job finishes after a crash";
/// Sometimes: an attempt loses a publish race.
pub const S_RACE_LOST: &str = "sometimes: a zombie's publish race is lost";
/// Sometimes: a fenced attempt stops.
pub const S_FENCED: &str = "sometimes: a zombie is fenced by a sink";
/// Sometimes: the job finishes while a zombie was launched.
pub const S_FINISHED_WITH_ZOMBIE: &str = "sometimes: the job finishes after a zombie relaunch";

/// Sometimes: the job finishes after a single worker crashed.
pub const S_FINISHED_AFTER_WORKER_CRASH: &str = "sometimes: the job finishes after one worker crashed alone";
/// Sometimes: the job finishes after a dropped connection.
pub const S_FINISHED_AFTER_DROP: &str = "sometimes: the job finishes after a connection dropped";
/// Sometimes: a dropped connection loses a message in flight.
pub const S_LOST_IN_FLIGHT: &str = "sometimes: a dropped connection loses a message in flight";
/// Sometimes: the rest of a failed attempt runs on beside its relaunch.
pub const S_REMNANT_STEP: &str = "sometimes: a worker of a failed attempt takes a step after the relaunch";
/// Sometimes: a worker process of an older attempt tries to join and is refused.
pub const S_JOIN_REFUSED: &str = "sometimes: a worker of an older attempt is refused";

/// Whether the operator's current attempt finished the job (worker 0 reports the outcome).
pub fn done(s: &State) -> bool {
    let last = &s.attempts[s.attempts.len() - 1];
    match &last.phase {
        super::state::Phase::Running(r) => last.alive && r.up[0] && finished(r),
        _ => false,
    }
}

fn committed_counts(m: &ProtocolModel, s: &State, sink: usize) -> Vec<(Rec, usize)> {
    let mut out = Vec::new();
    for src in 0..m.sources as u8 {
        for seq in 0..m.records {
            let rec = (src, seq);
            let n = s
                .txns
                .iter()
                .filter(|t| t.sink == sink && t.status == TxnStatus::Committed)
                .map(|t| t.records.iter().filter(|r| **r == rec).count())
                .sum();
            out.push((rec, n));
        }
    }
    out
}

fn listed(s: &State) -> impl Iterator<Item = usize> + '_ {
    s.manifests.values().flat_map(|m| m.committables.iter().flatten().map(|(_, t)| *t))
}

fn exactly_once(m: &ProtocolModel, s: &State) -> bool {
    !done(s) || (0..m.sinks).all(|j| committed_counts(m, s, j).iter().all(|(_, n)| *n == 1))
}

fn no_duplicate(m: &ProtocolModel, s: &State) -> bool {
    (0..m.sinks).all(|j| committed_counts(m, s, j).iter().all(|(_, n)| *n <= 1))
}

fn only_published_committed(_: &ProtocolModel, s: &State) -> bool {
    let listed: Vec<usize> = listed(s).collect();
    s.txns.iter().enumerate().all(|(t, txn)| txn.status != TxnStatus::Committed || listed.contains(&t))
}

fn published_never_aborted(_: &ProtocolModel, s: &State) -> bool {
    !s.seen.commit_of_aborted && listed(s).all(|t| s.txns[t].status != TxnStatus::Aborted)
}

fn published_committed(_: &ProtocolModel, s: &State) -> bool {
    !done(s) || listed(s).all(|t| s.txns[t].status == TxnStatus::Committed)
}

fn none_left_open(_: &ProtocolModel, s: &State) -> bool {
    !done(s) || s.txns.iter().all(|t| matches!(t.status, TxnStatus::Committed | TxnStatus::Aborted))
}

fn one_publish(_: &ProtocolModel, s: &State) -> bool {
    s.publishes.values().all(|n| *n <= 1)
}

fn no_deadlock(m: &ProtocolModel, s: &State) -> bool {
    let mut actions = Vec::new();
    m.actions(s, &mut actions);
    done(s) || actions.iter().any(|a| !a.is_environment())
}

/// Every property of `m`'s configuration.
pub fn all(m: &ProtocolModel) -> Vec<Property<ProtocolModel>> {
    let mut p = vec![
        Property::always(EXACTLY_ONCE, exactly_once),
        Property::always(NO_DUPLICATE, no_duplicate),
        Property::always(ONLY_PUBLISHED_COMMITTED, only_published_committed),
        Property::always(PUBLISHED_NEVER_ABORTED, published_never_aborted),
        Property::always(PUBLISHED_COMMITTED, published_committed),
        Property::always(NONE_LEFT_OPEN, none_left_open),
        Property::always(ONE_PUBLISH, one_publish),
        Property::always(NO_FOREIGN_ACK, |_, s: &State| !s.seen.foreign_ack),
        Property::always(NO_DEADLOCK, no_deadlock),
        Property::eventually(FINISHES, |_, s: &State| done(s)),
        Property::sometimes(S_BLOCKED, |_, s: &State| s.seen.aligned_with_block),
    ];
    if m.crashes > 0 {
        p.extend([
            Property::sometimes(S_CRASH_AFTER_PUBLISH, |_, s: &State| s.seen.crash_after_publish_before_commit),
            Property::sometimes(S_RECOVERY_COMMIT, |_, s: &State| s.seen.recovery_commit),
            Property::sometimes(S_RECOVERY_ABORT, |_, s: &State| s.seen.recovery_abort_precommitted),
            Property::sometimes(S_FINISHED_AFTER_CRASH, |_, s: &State| done(s) && s.crashes > 0),
        ]);
        if m.sinks >= 2 {
            p.push(Property::sometimes(S_CRASH_BETWEEN_SINKS, |_, s: &State| s.seen.crash_between_sinks));
            p.push(Property::sometimes(S_CRASH_DURING_RECOVERY, |_, s: &State| s.seen.crash_during_recovery));
        }
    }
    if m.zombies > 0 {
        p.extend([
            Property::sometimes(S_RACE_LOST, |_, s: &State| s.seen.publish_race_lost),
            Property::sometimes(S_FENCED, |_, s: &State| s.seen.fenced),
            Property::sometimes(S_FINISHED_WITH_ZOMBIE, |_, s: &State| done(s) && s.zombies > 0),
        ]);
    }
    if m.worker_crashes > 0 {
        p.push(Property::sometimes(S_FINISHED_AFTER_WORKER_CRASH, |_, s: &State| done(s) && s.worker_crashes > 0));
    }
    if m.drops > 0 {
        p.push(Property::sometimes(S_FINISHED_AFTER_DROP, |_, s: &State| done(s) && s.drops > 0));
    }
    if m.worker_crashes + m.drops > 0 {
        p.push(Property::sometimes(S_LOST_IN_FLIGHT, |_, s: &State| s.seen.lost_in_flight));
        p.push(Property::sometimes(S_REMNANT_STEP, |_, s: &State| s.seen.remnant_step));
    }
    if m.workers > 1 && m.crashes > 0 {
        p.push(Property::sometimes(S_JOIN_REFUSED, |_, s: &State| s.seen.join_refused));
    }
    p
}
