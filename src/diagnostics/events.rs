//! The event stream: what happened to every task, and when.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, unbounded};

use crate::graph::{TaskKey, Worker};

/// Something that happened in a cluster.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A task was submitted: it will run once its inputs are done.
    Submitted {
        /// The task.
        key: TaskKey,
    },
    /// A task ran (all its attempts) and ended.
    Task(TaskEvent),
}

/// One task's run.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    /// The task.
    pub key: TaskKey,
    /// Where it ran.
    pub worker: Worker,
    /// When it started, since the cluster started.
    pub start: Duration,
    /// When it ended, since the cluster started.
    pub end: Duration,
    /// How it ended.
    pub outcome: TaskOutcome,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// It returned a value.
    Ok,
    /// It failed; the error's message.
    Failed(String),
}

/// Fans events out to subscribers; free when there are none.
#[derive(Default)]
pub(crate) struct EventBus {
    listeners: AtomicUsize,
    senders: Mutex<Vec<Sender<Event>>>,
}

impl EventBus {
    /// True while someone listens: callers skip clock reads otherwise.
    #[inline]
    pub(crate) fn is_enabled(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
    }

    /// Sends the event `make` builds to every subscriber; `make` runs only if there is one.
    #[inline]
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.is_enabled() {
            self.send(make());
        }
    }

    fn send(&self, event: Event) {
        let mut senders = crate::graph::lock_unpoisoned(&self.senders);
        senders.retain(|tx| tx.send(event.clone()).is_ok());
        self.listeners.store(senders.len(), Ordering::Relaxed);
    }

    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = unbounded();
        let mut senders = crate::graph::lock_unpoisoned(&self.senders);
        senders.push(tx);
        self.listeners.store(senders.len(), Ordering::Relaxed);
        rx
    }
}
