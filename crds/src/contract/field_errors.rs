//! Field errors: what validation reports, each naming the field path
//! (`pipeline.nodes[2].parallelism`) so that a user can find the line to fix.

use std::fmt;

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `pipeline.nodes[2].parallelism`.
    pub path: String,
    /// What is wrong, e.g. `must be ≥ 1`.
    pub message: String,
}

/// Every problem found in a job document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// The problems, in document order.
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    /// An error about one field.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError { errors: vec![FieldError { path: path.into(), message: message.into() }] }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if e.path.is_empty() {
                write!(f, "{}", e.message)?;
            } else {
                write!(f, "{}: {}", e.path, e.message)?;
            }
        }
        Ok(())
    }
}

/// Field errors collected while validating.
#[derive(Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    /// `Ok` when nothing was recorded.
    pub(crate) fn into_result(self) -> Result<(), ValidationError> {
        if self.0.is_empty() { Ok(()) } else { Err(ValidationError { errors: self.0 }) }
    }

    /// Records that the field at `path` is wrong.
    pub(crate) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { path: path.into(), message: message.into() });
    }
}
