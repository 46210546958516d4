//! Reading and writing the StreamJob: a read that names a missing job plainly, and a
//! conditional write (a merge patch carrying the `resourceVersion` it was decided on) that reads
//! again and decides again when another writer got there first (409 Conflict).

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use sluice_crds::StreamJob;

use crate::Error;

/// The field manager of every write this plugin makes (`metadata.managedFields` shows it).
pub const FIELD_MANAGER: &str = "kubectl-sluice";

/// How many conditional writes are tried before giving up on a job that keeps changing.
pub const MAX_WRITE_ATTEMPTS: u32 = 5;

/// What a conditional write did.
#[derive(Debug)]
pub enum Written {
    /// The patch was applied; the job as the API server returned it.
    Patched(Box<StreamJob>),
    /// The job already was as asked; nothing was written.
    Unchanged(Box<StreamJob>),
}

/// The StreamJobs of one namespace.
#[derive(Clone)]
pub struct Jobs {
    api: Api<StreamJob>,
    namespace: String,
}

impl Jobs {
    /// The StreamJobs of `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        Jobs { api: Api::namespaced(client, namespace), namespace: namespace.to_string() }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Reads job `name`; a job that does not exist is [`Error::NotFound`].
    pub async fn get(&self, name: &str) -> Result<StreamJob, Error> {
        self.api.get(name).await.map_err(|e| self.error("reading", name, e))
    }

    /// Reads job `name` and asks `decide` for a merge patch; `None` means the job already is as
    /// wanted. The patch is sent with the `resourceVersion` that was read, so it applies only to
    /// the job `decide` saw; on 409 Conflict the job is read and decided on again, up to
    /// [`MAX_WRITE_ATTEMPTS`] times.
    pub async fn patch_if_unchanged(
        &self,
        name: &str,
        decide: impl Fn(&StreamJob) -> Option<Value>,
    ) -> Result<Written, Error> {
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() };
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let job = self.get(name).await?;
            let Some(mut patch) = decide(&job) else {
                return Ok(Written::Unchanged(Box::new(job)));
            };
            if let (Some(obj), Some(version)) = (patch.as_object_mut(), job.metadata.resource_version.clone()) {
                let meta = obj.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert("resourceVersion".into(), Value::String(version));
                }
            }
            match self.api.patch(name, &params, &Patch::Merge(&patch)).await {
                Ok(written) => return Ok(Written::Patched(Box::new(written))),
                Err(kube::Error::Api(s)) if s.is_conflict() => continue,
                Err(e) => return Err(self.error("patching", name, e)),
            }
        }
        Err(Error::Conflicts {
            name: name.to_string(),
            namespace: self.namespace.clone(),
            attempts: MAX_WRITE_ATTEMPTS,
        })
    }

    fn error(&self, step: &'static str, name: &str, e: kube::Error) -> Error {
        match e {
            kube::Error::Api(s) if s.is_not_found() => {
                Error::NotFound { name: name.to_string(), namespace: self.namespace.clone() }
            }
            source => {
                Error::Api { step, name: name.to_string(), namespace: self.namespace.clone(), source: Box::new(source) }
            }
        }
    }
}
