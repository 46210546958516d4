//! Leader election through a `coordination.k8s.io/v1` Lease, so two operator replicas never
//! both act. Optimistic concurrency (resourceVersion) makes take-overs race-free: of two
//! replicas replacing the same expired Lease, the API server accepts one.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

/// What to do with the Lease as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it or the holder's term ran out: take it over.
    TakeOver,
    /// Someone else holds a valid Lease.
    Wait,
}

/// Pure decision over the Lease's spec.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp, duration: Duration) -> Decision {
    let Some(spec) = spec else { return Decision::TakeOver };
    match spec.holder_identity.as_deref() {
        Some(h) if h == identity => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let valid_for = spec.lease_duration_seconds.map_or(duration, |s| Duration::from_secs(s.max(0) as u64));
            let expires = spec
                .renew_time
                .as_ref()
                .and_then(|t| t.0.checked_add(jiff::SignedDuration::try_from(valid_for).ok()?).ok());
            match expires {
                Some(e) if e > now => Decision::Wait,
                _ => Decision::TakeOver,
            }
        }
    }
}

/// A Lease-based lock.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaseLock {
    /// The lock `namespace/name` held as `identity` for `duration` per renewal.
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        LeaseLock { api: Api::namespaced(client, namespace), name: name.into(), identity: identity.into(), duration }
    }

    /// Takes or renews the Lease; `Ok(true)` when this replica holds it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.name).await?;
        let decision = decide(existing.as_ref().and_then(|l| l.spec.as_ref()), &self.identity, now, self.duration);
        if decision == Decision::Wait {
            return Ok(false);
        }
        let old = existing.as_ref().and_then(|l| l.spec.clone()).unwrap_or_default();
        let spec = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            renew_time: Some(MicroTime(now)),
            acquire_time: if decision == Decision::Renew { old.acquire_time.clone() } else { Some(MicroTime(now)) },
            lease_transitions: Some(old.lease_transitions.unwrap_or(0) + i32::from(decision == Decision::TakeOver)),
            ..old
        };
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: existing.as_ref().and_then(|l| l.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        };
        let result = match existing {
            None => self.api.create(&PostParams::default(), &lease).await.map(|_| ()),
            Some(_) => self.api.replace(&self.name, &PostParams::default(), &lease).await.map(|_| ()),
        };
        match result {
            Ok(()) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election: cannot read the Lease"),
            }
            tokio::time::sleep(self.duration / 3).await;
        }
    }

    /// Renews the Lease until a renewal fails for longer than the Lease lasts; then returns
    /// (the caller must stop acting: another replica may take over).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "leader election: renewal failed"),
            }
            if last_ok.elapsed() >= self.duration {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("valid")
    }

    fn held_by(who: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_respected() {
        let d = Duration::from_secs(15);
        assert_eq!(decide(Some(&held_by("b", 100)), "a", at(110), d), Decision::Wait);
        assert_eq!(decide(Some(&held_by("b", 100)), "a", at(116), d), Decision::TakeOver);
        assert_eq!(decide(Some(&held_by("a", 100)), "a", at(110), d), Decision::Renew);
        assert_eq!(decide(None, "a", at(0), d), Decision::TakeOver);
    }
}
