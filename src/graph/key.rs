//! Task keys: how a task is named in errors, events and reports.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The name of a task: a process-wide unique id plus an optional label given by the user or by
/// the collection that made the task (`"map"`, `"bag-count"`). Tasks with the same label form a
/// *task group* in progress bars and reports.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    id: u64,
    label: Option<Arc<str>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl TaskKey {
    pub(crate) fn next_id() -> u64 {
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn new(id: u64, label: Option<Arc<str>>) -> Self {
        TaskKey { id, label }
    }

    /// The unique id (unique within this process).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The label, if one was given.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// The task group: the label, or `"task"` when there is none.
    pub fn group(&self) -> &str {
        self.label().unwrap_or("task")
    }
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.group(), self.id)
    }
}

impl fmt::Debug for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
