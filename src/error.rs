//! One error type for the whole crate.
//!
//! Every fallible call in onebox returns [`Result<T>`]. The variants say *what kind* of thing
//! went wrong and carry the data a program needs to react (a task's key, a path, the value that
//! did not parse), while the `Display` text is written for a person: it names the thing and, where
//! there is one, the fix.
//!
//! A task that fails inside a graph becomes an [`Error::Task`]: a [`TaskError`] that names the
//! task (its label and unique id), says whether it panicked, returned an error, was cancelled or
//! was skipped because an input failed, and keeps the other failures of the same compute
//! reachable through [`TaskError::also_failed`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::graph::TaskKey;

/// The result type of every fallible onebox call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed error from user code: what a task closure may return as its failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in onebox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task in a graph failed (panicked, returned an error, was cancelled, or an input failed).
    #[error(transparent)]
    Task(#[from] TaskError),

    /// A configuration value (a builder argument or an environment variable) is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Config {
        /// The setting, e.g. `ONEBOX_THREADS` or `threads`.
        what: String,
        /// The value that was given, as text.
        value: String,
        /// Why it is refused and, where possible, what would be accepted.
        reason: String,
    },

    /// Work asked for GPUs that this cluster does not have.
    #[error(
        "{what} needs GPU {requested}, but this cluster has {available} GPU(s){hint}",
        hint = if *.available == 0 { " (no NVIDIA driver or device was found; `onebox info` shows what was detected)" } else { "" }
    )]
    NoGpu {
        /// What asked for the GPU (a task key, a job name, ...).
        what: String,
        /// The GPU index or count that was asked for, as text.
        requested: String,
        /// How many GPUs the cluster has.
        available: usize,
    },

    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// Input that cannot be used as given: a shape, a parameter, a file's contents.
    #[error("{0}")]
    Invalid(String),

    /// The GPU driver or a CUDA library reported an error.
    #[error("GPU {gpu}: {message}")]
    Gpu {
        /// The GPU's index in this cluster.
        gpu: usize,
        /// What the driver said.
        message: String,
    },
}

impl Error {
    /// A [`Error::Config`] for `what` = `value`, refused because of `reason`.
    pub fn config(
        what: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            what: what.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The [`TaskError`] inside, if this error is a task failure.
    pub fn as_task(&self) -> Option<&TaskError> {
        match self {
            Error::Task(t) => Some(t),
            _ => None,
        }
    }
}

/// Why a task did not produce a value.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TaskFailure {
    /// The task's code panicked; the payload's message.
    Panic(String),
    /// The task's code returned an error.
    Error(Arc<dyn std::error::Error + Send + Sync + 'static>),
    /// The task was cancelled before it started.
    Cancelled,
    /// The task did not run because a task it depends on (directly or further up) failed:
    /// the error of that task, whose own code failed.
    InputFailed(Arc<TaskError>),
}

/// The failure of one task, naming it. Returned inside [`Error::Task`].
#[derive(Debug, Clone)]
pub struct TaskError {
    key: TaskKey,
    failure: TaskFailure,
    attempts: u32,
    also: Vec<Arc<TaskError>>,
}

impl TaskError {
    pub(crate) fn new(key: TaskKey, failure: TaskFailure, attempts: u32) -> Self {
        TaskError {
            key,
            failure,
            attempts,
            also: Vec::new(),
        }
    }

    pub(crate) fn with_also(mut self, also: Vec<Arc<TaskError>>) -> Self {
        self.also = also;
        self
    }

    /// The key of the task that failed.
    pub fn key(&self) -> &TaskKey {
        &self.key
    }

    /// What went wrong.
    pub fn failure(&self) -> &TaskFailure {
        &self.failure
    }

    /// How many times the task ran (1 plus the retries used); 0 when it never started.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// True when the task's own code panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.failure, TaskFailure::Panic(_))
    }

    /// True when the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.failure, TaskFailure::Cancelled)
    }

    /// The task whose own code failed: this one, or the first failed input up the graph.
    pub fn root_cause(&self) -> &TaskError {
        match &self.failure {
            TaskFailure::InputFailed(inner) => inner.root_cause(),
            _ => self,
        }
    }

    /// Other tasks of the same compute that failed too (independently of this one).
    pub fn also_failed(&self) -> &[Arc<TaskError>] {
        &self.also
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            TaskFailure::Panic(msg) => write!(f, "task {} panicked: {msg}", self.key)?,
            TaskFailure::Error(e) => write!(f, "task {} failed: {e}", self.key)?,
            TaskFailure::Cancelled => write!(f, "task {} was cancelled", self.key)?,
            TaskFailure::InputFailed(inner) => write!(
                f,
                "task {} did not run because an input failed: {inner}",
                self.key
            )?,
        }
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        if !self.also.is_empty() {
            write!(
                f,
                " ({} more task(s) failed in the same compute)",
                self.also.len()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.failure {
            TaskFailure::Error(e) => Some(e.as_ref()),
            TaskFailure::InputFailed(inner) => Some(inner.as_ref()),
            _ => None,
        }
    }
}
