//! How `sluice-runtime` says that it failed: the error once, in the job document's terms, and
//! an exit status per kind of failure (the constants of `sluice_crds::contract::control`).

use std::error::Error;

use sluice_crds::contract::control::{EXIT_FAILURE, EXIT_INVALID_JOB, EXIT_STOP_TIMEOUT};
use sluice_crds::contract::job_config::ValidationError;
use sluice_runtime::error::ErrorKind;
use sluice_runtime::job::JobError;

use crate::commands::supervisor::WorkerFailed;
use crate::signals::StopTimeout;

/// The error's chain as one message in which each level says only what it adds: a level whose
/// message ends with its cause's (`restore: <cause>`) contributes just its own words, so no text
/// is repeated however many times it was wrapped. A document with several problems lists them
/// one a line.
pub fn said_once(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let Some(inner) = cause.source().map(|s| s.to_string()) else {
            parts.push(leaf_text(cause, text));
            break;
        };
        match text.strip_suffix(&inner) {
            Some(own) => {
                let own = own.trim_end().trim_end_matches(':').trim_end();
                if !own.is_empty() {
                    parts.push(own.to_string());
                }
            }
            // The cause is quoted inside: this level says it all.
            None if text.contains(&inner) => {
                parts.push(text);
                break;
            }
            None => parts.push(text),
        }
    }
    parts.join(": ")
}

/// The last error of a chain: a validation error with several problems, one a line.
fn leaf_text(cause: &(dyn Error + 'static), text: String) -> String {
    match cause.downcast_ref::<ValidationError>() {
        Some(v) if v.errors.len() > 1 => {
            let lines: String = v.errors.iter().map(|f| format!("\n  {}: {}", f.path, f.message)).collect();
            format!("{} problems:{lines}", v.errors.len())
        }
        _ => text,
    }
}

/// The exit status for `e`: a supervised worker's own status when one failed the run, else
/// [`ErrorKind::DataLossRisk`]'s status (3) first, then a signal's
/// cancel that timed out (4), an invalid job document (65), else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    // `run --workers`: the failed worker's own status.
    if let Some(w) = e.chain().find_map(|c| c.downcast_ref::<WorkerFailed>()) {
        return w.code;
    }
    let job_error = e.chain().find_map(|c| c.downcast_ref::<JobError>());
    let invalid = job_error.is_some_and(JobError::is_invalid_job)
        || e.chain().any(|c| c.downcast_ref::<ValidationError>().is_some());
    let timeout = e.chain().any(|c| c.downcast_ref::<StopTimeout>().is_some());
    match job_error.map(JobError::kind) {
        Some(kind @ ErrorKind::DataLossRisk) => kind.exit_code(),
        _ if timeout => EXIT_STOP_TIMEOUT,
        _ if invalid => EXIT_INVALID_JOB,
        _ => EXIT_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner {0}")]
    struct Inner(u32);

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("outer: {0}")]
        Wraps(#[from] Inner),
        #[error("quoting ({0}) inside")]
        Quotes(#[source] Inner),
    }

    #[test]
    fn each_level_says_only_what_it_adds() {
        let e = anyhow::Error::from(Outer::Wraps(Inner(7))).context("job j failed");
        assert_eq!(format!("{e:#}"), "job j failed: outer: inner 7: inner 7", "anyhow repeats it");
        assert_eq!(said_once(&e), "job j failed: outer: inner 7");
        let e = anyhow::Error::from(Outer::Quotes(Inner(8))).context("job j failed");
        assert_eq!(said_once(&e), "job j failed: quoting (inner 8) inside");
        let e = anyhow::anyhow!("plain").context("a").context("b");
        assert_eq!(said_once(&e), "b: a: plain");
    }

    #[test]
    fn several_problems_are_listed_one_a_line() {
        let v = ValidationError {
            errors: vec![
                sluice_crds::contract::job_config::FieldError { path: "a".into(), message: "x".into() },
                sluice_crds::contract::job_config::FieldError { path: "b".into(), message: "y".into() },
            ],
        };
        let e = anyhow::Error::from(v).context("invalid job document j.yaml");
        assert_eq!(said_once(&e), "invalid job document j.yaml: 2 problems:\n  a: x\n  b: y");
        assert_eq!(exit_code(&e), 65);
        assert_eq!(exit_code(&anyhow::anyhow!("x")), 1);
    }
}
