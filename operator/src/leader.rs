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

    /// How long a leader goes on without a successful renewal: two thirds of the Lease
    /// duration, so it stops acting before another replica may take the Lease over (as
    /// client-go's renew deadline, 10 s of a 15 s Lease).
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Renews the Lease until renewals have not succeeded for [`LeaseLock::renew_deadline`] or
    /// another replica holds it; then returns (the caller must stop acting). A renewal that
    /// hangs counts as failed when the deadline passes: it is never waited for beyond it.
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.duration / 3).await;
            let left = self.renew_deadline().saturating_sub(last_ok.elapsed());
            match tokio::time::timeout(left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
                Ok(Ok(false)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "leader election: renewal failed"),
                Err(_) => tracing::warn!(deadline = ?self.renew_deadline(), "leader election: renewal timed out"),
            }
            if last_ok.elapsed() >= self.renew_deadline() {
                return;
            }
        }
    }

    /// Gives the Lease up (on shutdown), so another replica takes over at once instead of
    /// after the Lease expires. Does nothing when another replica holds it.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let Some(spec) = lease.spec.as_mut() else { return Ok(()) };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e),
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

    #[tokio::test]
    async fn a_hung_renewal_ends_leadership_at_the_renew_deadline() {
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        // A short Lease keeps the test quick; nothing below depends on how long it takes.
        let lock =
            LeaseLock::new(kube::Client::new(service, "default"), "ns", "lease", "me", Duration::from_millis(300));
        let hold = tokio::spawn(async move { lock.hold().await });
        // The renewal's GET reaches the API server and is never answered.
        let (request, never_answered) = handle.next_request().await.expect("a renewal");
        assert!(request.uri().path().ends_with("/leases/lease"), "{}", request.uri());
        // hold() gives up on its own while the request still hangs (without the renew
        // deadline it would wait for the answer forever).
        tokio::time::timeout(Duration::from_secs(60), hold).await.expect("hold returned").expect("joins");
        drop(never_answered);
    }

    #[tokio::test]
    async fn release_gives_up_only_our_own_lease() {
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let lock = LeaseLock::new(kube::Client::new(service, "default"), "ns", "lease", "me", Duration::from_secs(15));
        let lease = |holder: &str| {
            serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "lease", "namespace": "ns", "resourceVersion": "9"},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z"}})
        };
        let respond = |send: tower_test::mock::SendResponse<http::Response<kube::client::Body>>,
                       v: serde_json::Value| {
            send.send_response(http::Response::new(kube::client::Body::from(serde_json::to_vec(&v).expect("json"))));
        };
        let task = tokio::spawn(async move {
            let mine = lock.release().await;
            (lock, mine)
        });
        let (_, send) = handle.next_request().await.expect("GET");
        respond(send, lease("me"));
        let (put, send) = handle.next_request().await.expect("PUT");
        assert_eq!(put.method(), http::Method::PUT);
        let body = put.into_body().collect_bytes().await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["metadata"]["resourceVersion"], "9", "conditional on the version read");
        assert!(body["spec"]["holderIdentity"].is_null(), "{body}");
        assert_eq!(body["spec"]["leaseDurationSeconds"], 1);
        respond(send, body);
        let (lock, mine) = task.await.expect("joins");
        mine.expect("released");
        let task = tokio::spawn(async move { lock.release().await });
        let (_, send) = handle.next_request().await.expect("GET");
        respond(send, lease("other"));
        task.await.expect("joins").expect("nothing to release");
        assert!(handle.next_request().await.is_none(), "another replica's Lease is not touched");
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
