//! `Delayed<T>`: a lazy task, like `dask.delayed`.

use std::sync::Arc;

use super::node::{self, Node, Placement, Task, TaskContext};
use super::{TaskHandle, TaskKey};
use crate::error::{BoxError, Error, Result, TaskFailure};

/// A value that a task will compute: nothing runs until [`compute`](Delayed::compute) (or
/// [`submit`](Delayed::submit)) is called on it or on something built from it.
///
/// Build one with [`Cluster::delayed`](crate::Cluster::delayed) or
/// [`Cluster::value`](crate::Cluster::value), then grow the graph with [`map`](Delayed::map),
/// [`zip`](Delayed::zip) and [`Delayed::join_all`]. Cloning a `Delayed` shares the task: it
/// still runs once. See the [module docs](crate::graph) for how outputs are moved or cloned.
pub struct Delayed<T> {
    pub(crate) node: Arc<Node<T>>,
}

impl<T> Clone for Delayed<T> {
    fn clone(&self) -> Self {
        Delayed {
            node: self.node.clone(),
        }
    }
}

impl<T: Clone + Send + 'static> std::fmt::Debug for Delayed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delayed({})", self.node_task().core().key())
    }
}

/// Takes an input's output inside a task: moved on the last attempt when nobody else holds it.
pub(crate) fn fetch<T: Clone + Send + 'static>(
    slot: &mut Option<Arc<Node<T>>>,
    ctx: &TaskContext<'_>,
) -> Result<T, TaskFailure> {
    let node = if ctx.is_last_attempt() {
        slot.take()
    } else {
        slot.clone()
    };
    let node = node.ok_or_else(|| {
        TaskFailure::Error(Arc::new(Error::Invalid("input already consumed".into())))
    })?;
    node.output(true).map_err(TaskFailure::InputFailed)
}

/// Turns a user closure's error into a task failure.
pub(crate) fn user_error<E: Into<BoxError>>(e: E) -> TaskFailure {
    TaskFailure::Error(Arc::from(e.into()))
}

impl<T: Clone + Send + 'static> Delayed<T> {
    pub(crate) fn from_node(node: Arc<Node<T>>) -> Self {
        Delayed { node }
    }

    fn node_task(&self) -> &dyn Task {
        self.node.as_ref()
    }

    /// This task's key.
    pub fn key(&self) -> TaskKey {
        self.node_task().core().key()
    }

    /// Names the task (its *group* in progress and reports). The first label given stays.
    #[must_use]
    pub fn label(self, label: &str) -> Self {
        self.node_task().core().set_label(label);
        self
    }

    /// Runs the task up to `n` more times when it panics or returns an error.
    #[must_use]
    pub fn retries(self, n: u32) -> Self {
        self.node_task().core().set_retries(n);
        self
    }

    /// Counts this task's output in the cluster's [managed
    /// bytes](crate::Cluster::managed_bytes), measured by `size`, while the scheduler holds
    /// it. For collections whose outputs have a known size; the first size given stays.
    pub(crate) fn sized(self, size: fn(&T) -> usize) -> Self {
        self.node.set_size(size);
        self
    }

    /// Pins the task to the cluster's GPU `index` (for tasks made by
    /// [`Cluster::delayed_on_gpu`](crate::Cluster::delayed_on_gpu)).
    #[must_use]
    pub fn on_gpu(self, index: usize) -> Self {
        self.node_task().core().set_placement(Placement::Gpu(index));
        self
    }

    /// A task that applies `f` to this one's output.
    pub fn map<U, F>(self, mut f: F) -> Delayed<U>
    where
        U: Clone + Send + 'static,
        F: FnMut(T) -> U + Send + 'static,
    {
        self.try_map(move |x| Ok::<U, std::convert::Infallible>(f(x)))
    }

    /// A task that applies a fallible `f` to this one's output; its error fails the task.
    pub fn try_map<U, E, F>(self, mut f: F) -> Delayed<U>
    where
        U: Clone + Send + 'static,
        E: Into<BoxError>,
        F: FnMut(T) -> Result<U, E> + Send + 'static,
    {
        let cluster = self.node_task().core().cluster().clone();
        let input: Arc<dyn Task> = self.node.clone();
        let mut slot = Some(self.node);
        Delayed::from_node(Node::new(&cluster, vec![input], move |ctx| {
            f(fetch(&mut slot, ctx)?).map_err(user_error)
        }))
    }

    /// A task whose output is the pair of both outputs.
    pub fn zip<U: Clone + Send + 'static>(self, other: Delayed<U>) -> Delayed<(T, U)> {
        let cluster = self.node_task().core().cluster().clone();
        let inputs: Vec<Arc<dyn Task>> = vec![self.node.clone(), other.node.clone()];
        let (mut a, mut b) = (Some(self.node), Some(other.node));
        Delayed::from_node(Node::new(&cluster, inputs, move |ctx| {
            Ok((fetch(&mut a, ctx)?, fetch(&mut b, ctx)?))
        }))
    }

    /// A task whose output is the outputs of `items`, in order. An empty list gives an empty
    /// `Vec`, computed on the `cluster`.
    pub fn join_all(cluster: &crate::Cluster, items: Vec<Delayed<T>>) -> Delayed<Vec<T>> {
        Self::combine(cluster, items, Ok)
    }

    /// A task applying `f` to the outputs of `items`, in order: one task, where
    /// `join_all(..).map(f)` would make two.
    pub fn join_with<U, F>(cluster: &crate::Cluster, items: Vec<Delayed<T>>, mut f: F) -> Delayed<U>
    where
        U: Clone + Send + 'static,
        F: FnMut(Vec<T>) -> U + Send + 'static,
    {
        Self::combine(cluster, items, move |xs| Ok(f(xs)))
    }

    /// Makes this task start only after `other` has finished (an ordering edge: `other`'s
    /// output is not read; if it fails, so does this task). Returns false, changing nothing,
    /// once this task has been submitted.
    #[cfg_attr(not(feature = "frame"), allow(dead_code))]
    pub(crate) fn after<U: Clone + Send + 'static>(&self, other: &Delayed<U>) -> bool {
        self.node
            .core()
            .add_input(other.node.clone() as Arc<dyn Task>)
    }

    /// A task applying a fallible `f` to the outputs of `items` (the building block of tree
    /// reductions).
    pub(crate) fn combine<U, F>(
        cluster: &crate::Cluster,
        items: Vec<Delayed<T>>,
        mut f: F,
    ) -> Delayed<U>
    where
        U: Clone + Send + 'static,
        F: FnMut(Vec<T>) -> Result<U, TaskFailure> + Send + 'static,
    {
        let inputs: Vec<Arc<dyn Task>> = items
            .iter()
            .map(|d| d.node.clone() as Arc<dyn Task>)
            .collect();
        let mut slots: Vec<Option<Arc<Node<T>>>> =
            items.into_iter().map(|d| Some(d.node)).collect();
        Delayed::from_node(Node::new(cluster.inner(), inputs, move |ctx| {
            let values = slots
                .iter_mut()
                .map(|s| fetch(s, ctx))
                .collect::<Result<Vec<T>, _>>()?;
            f(values)
        }))
    }

    /// Like [`combine`](Delayed::combine), but the task runs on the cluster's GPU `gpu` and
    /// `f` gets that GPU's context. Without that GPU, the task fails with
    /// [`Error::NoGpu`](crate::Error::NoGpu).
    pub(crate) fn combine_on_gpu<U, F>(
        cluster: &crate::Cluster,
        items: Vec<Delayed<T>>,
        gpu: usize,
        mut f: F,
    ) -> Delayed<U>
    where
        U: Clone + Send + 'static,
        F: FnMut(&crate::gpu::GpuContext, Vec<T>) -> Result<U, TaskFailure> + Send + 'static,
    {
        let inputs: Vec<Arc<dyn Task>> = items
            .iter()
            .map(|d| d.node.clone() as Arc<dyn Task>)
            .collect();
        let mut slots: Vec<Option<Arc<Node<T>>>> =
            items.into_iter().map(|d| Some(d.node)).collect();
        let node = Node::new(cluster.inner(), inputs, move |ctx| {
            let g = ctx.gpu().ok_or_else(|| {
                TaskFailure::Error(Arc::new(Error::Invalid(
                    "a GPU task ran off its GPU worker".into(),
                )))
            })?;
            let values = slots
                .iter_mut()
                .map(|s| fetch(s, ctx))
                .collect::<Result<Vec<T>, _>>()?;
            f(g, values)
        });
        node.core().set_placement(Placement::Gpu(gpu));
        Delayed::from_node(node)
    }

    /// Runs the task and whatever it needs that has not run yet, on the cluster; returns the
    /// output. A task that already ran is not run again.
    pub fn compute(self) -> Result<T> {
        // Progress bars, when on (a terminal, not turned off): see `diagnostics::progress`.
        let _progress =
            crate::diagnostics::progress::for_compute(self.node_task().core().cluster());
        node::wait_for(self.node.clone()).map_err(|e| Error::Task((*e).clone()))?;
        self.node
            .output(true)
            .map_err(|e| Error::Task((*e).clone()))
    }

    /// Starts the task now and returns a handle to it (like Dask's `client.compute`).
    pub fn submit(self) -> TaskHandle<T> {
        node::submit(self.node.clone(), None);
        TaskHandle::from_node(self.node)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::Delayed;
    use crate::Cluster;

    #[test]
    fn after_orders_tasks_without_reading_outputs() {
        let cluster = Cluster::builder().threads(2).ignore_env().build().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let task = |name: &'static str, sleep_ms: u64| {
            let order = order.clone();
            cluster.delayed(move || {
                std::thread::sleep(std::time::Duration::from_millis(sleep_ms));
                order.lock().unwrap().push(name);
                name.len()
            })
        };
        // Without the edge the short task would finish first.
        let slow = task("slow", 60);
        let quick = task("q", 0);
        assert!(quick.after(&slow));
        let both = Delayed::join_all(&cluster, vec![quick, slow])
            .compute()
            .unwrap();
        assert_eq!(both, [1, 4]);
        assert_eq!(*order.lock().unwrap(), ["slow", "q"]);

        // A failed predecessor fails the task; a submitted task takes no new edge.
        let failing = cluster.try_delayed(|| Err::<u8, _>("no"));
        let next = cluster.delayed(|| 1u8);
        assert!(next.after(&failing));
        assert!(next.clone().compute().is_err());
        let done = cluster.delayed(|| 2u8);
        done.clone().compute().unwrap();
        assert!(!done.after(&cluster.delayed(|| 3u8)));
    }

    #[test]
    fn sized_outputs_count_once_and_leave_with_their_node() {
        let cluster = Cluster::builder().threads(2).ignore_env().build().unwrap();
        let len = |v: &Vec<u8>| v.len();
        // A ready value counts as soon as it is sized; a second size function is ignored.
        let v = cluster.value(vec![0u8; 10]).sized(len).sized(|_| 1000);
        assert_eq!(cluster.managed_bytes(), 10);
        // A task that fails once then succeeds counts its one stored output.
        let mut tries = 0;
        let t = cluster
            .try_delayed(move || {
                tries += 1;
                if tries == 1 {
                    Err("first try")
                } else {
                    Ok(vec![1u8; 5])
                }
            })
            .retries(1)
            .sized(len);
        let h = t.clone().submit();
        h.wait().unwrap();
        assert_eq!(cluster.managed_bytes(), 15);
        // Cloned out while another holder remains: still held, still counted.
        assert_eq!(t.clone().compute().unwrap(), vec![1u8; 5]);
        assert_eq!(cluster.managed_bytes(), 15);
        drop((t, h));
        assert_eq!(cluster.managed_bytes(), 10);
        // An unsized task counts nothing; a sized one whose task fails on every try neither.
        let plain = cluster.delayed(|| vec![0u8; 100]);
        let bad = cluster
            .try_delayed(|| Err::<Vec<u8>, _>("never"))
            .retries(2)
            .sized(len);
        assert!(plain.clone().zip(bad.clone()).compute().is_err());
        assert_eq!(cluster.managed_bytes(), 10);
        // The counter outlives the cluster handle: a value dropped after it still leaves.
        let counter = cluster.inner().managed.clone();
        drop(cluster);
        assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 10);
        drop((v, plain, bad));
        assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}
