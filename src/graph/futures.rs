//! Task handles: tasks that start as soon as they are submitted, like Dask futures.

use std::sync::Arc;

use crossbeam::channel::{Receiver, Sender, unbounded};

use super::node::{self, Node, Task, Waiter};
use super::{Delayed, TaskKey};
use crate::diagnostics::progress;
use crate::error::{Error, Result, TaskError, TaskFailure};

/// A task that has been started: [`Cluster::submit`](crate::Cluster::submit) and
/// [`Delayed::submit`] return one. Not a `std::future::Future`: waiting blocks the thread (on a
/// pool thread it runs other tasks meanwhile).
///
/// A handle can feed more tasks ([`map`](TaskHandle::map), or
/// [`into_delayed`](TaskHandle::into_delayed) to combine it lazily), and several handles are
/// collected with [`gather`], [`as_completed`] or [`wait`].
pub struct TaskHandle<T> {
    node: Arc<Node<T>>,
}

impl<T> Clone for TaskHandle<T> {
    fn clone(&self) -> Self {
        TaskHandle {
            node: self.node.clone(),
        }
    }
}

impl<T: Clone + Send + 'static> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TaskHandle({})", self.key())
    }
}

impl<T: Clone + Send + 'static> TaskHandle<T> {
    pub(crate) fn from_node(node: Arc<Node<T>>) -> Self {
        TaskHandle { node }
    }

    fn task(&self) -> Arc<dyn Task> {
        self.node.clone()
    }

    /// The task's key.
    pub fn key(&self) -> TaskKey {
        self.node.core().key()
    }

    /// True once the task has finished, successfully or not.
    pub fn is_done(&self) -> bool {
        self.node.core().is_finished()
    }

    /// Blocks until the task ends; its error if it failed.
    pub fn wait(&self) -> Result<()> {
        let task = self.task();
        let _progress = progress::for_wait(task.core().cluster(), std::slice::from_ref(&task));
        node::wait_for(task).map_err(|e| Error::Task((*e).clone()))
    }

    /// Waits for the task and returns its output.
    pub fn result(self) -> Result<T> {
        self.wait()?;
        self.node
            .output(true)
            .map_err(|e| Error::Task((*e).clone()))
    }

    /// Cancels the task if it has not started; its dependents then fail. Returns false when
    /// it is already running or finished (a running task is never interrupted).
    pub fn cancel(&self) -> bool {
        node::fail(self.task(), TaskFailure::Cancelled)
    }

    /// Starts a task applying `f` to this one's output.
    pub fn map<U, F>(self, f: F) -> TaskHandle<U>
    where
        U: Clone + Send + 'static,
        F: FnMut(T) -> U + Send + 'static,
    {
        self.into_delayed().map(f).submit()
    }

    /// The same task as a [`Delayed`], to build a lazy graph on top of it.
    pub fn into_delayed(self) -> Delayed<T> {
        Delayed::from_node(self.node)
    }
}

/// Waits for every handle; the first failure (in list order) with the others attached.
pub fn wait<T: Clone + Send + 'static>(handles: &[TaskHandle<T>]) -> Result<()> {
    let _progress = watch(handles.iter().map(TaskHandle::task).collect());
    let mut failures: Vec<Arc<TaskError>> = Vec::new();
    for h in handles {
        if let Err(Error::Task(e)) = h.wait() {
            failures.push(Arc::new(e));
        }
    }
    match failures.split_first() {
        None => Ok(()),
        Some((first, rest)) => Err(Error::Task((**first).clone().with_also(rest.to_vec()))),
    }
}

/// Progress for a wait on these tasks (see [`progress::for_wait`]).
fn watch(tasks: Vec<Arc<dyn Task>>) -> Option<progress::ComputeProgress> {
    let cluster = tasks.first()?.core().cluster().clone();
    progress::for_wait(&cluster, &tasks)
}

/// Waits for every handle and returns their outputs in order (like Dask's `client.gather`).
pub fn gather<T: Clone + Send + 'static>(
    handles: impl IntoIterator<Item = TaskHandle<T>>,
) -> Result<Vec<T>> {
    let handles: Vec<TaskHandle<T>> = handles.into_iter().collect();
    wait(&handles)?;
    handles.into_iter().map(TaskHandle::result).collect()
}

/// Yields `(index, result)` for each handle as it finishes, in completion order; `index` is
/// the handle's position in the input.
pub fn as_completed<T: Clone + Send + 'static>(
    handles: impl IntoIterator<Item = TaskHandle<T>>,
) -> AsCompleted<T> {
    let (tx, rx) = unbounded();
    let handles: Vec<Option<TaskHandle<T>>> = handles.into_iter().map(Some).collect();
    for (index, h) in handles.iter().enumerate() {
        if let Some(h) = h {
            node::submit(h.task(), None);
            node::add_waiter(
                &h.task(),
                Arc::new(Notify {
                    tx: tx.clone(),
                    index,
                }),
            );
        }
    }
    let progress = watch(handles.iter().flatten().map(TaskHandle::task).collect());
    AsCompleted {
        remaining: handles.len(),
        handles,
        rx,
        progress,
    }
}

struct Notify {
    tx: Sender<usize>,
    index: usize,
}

impl Waiter for Notify {
    fn done(&self, _: &Result<(), Arc<TaskError>>) {
        let _ = self.tx.send(self.index);
    }
}

/// The iterator returned by [`as_completed`].
pub struct AsCompleted<T> {
    handles: Vec<Option<TaskHandle<T>>>,
    rx: Receiver<usize>,
    remaining: usize,
    /// Progress bars while results remain (see [`progress::for_wait`]).
    progress: Option<progress::ComputeProgress>,
}

impl<T: Clone + Send + 'static> Iterator for AsCompleted<T> {
    type Item = (usize, Result<T>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            self.progress = None;
            return None;
        }
        let index = self.rx.recv().ok()?;
        self.remaining -= 1;
        if self.remaining == 0 {
            self.progress = None;
        }
        let handle = self.handles.get_mut(index)?.take()?;
        Some((index, handle.result()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}
