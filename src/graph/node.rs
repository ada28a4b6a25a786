//! The scheduler's core: task nodes, their life cycle, and dependency counting.
//!
//! ```text
//!            submit()               last input done           picked by a worker
//!   Lazy ───────────────▶ Waiting ─────────────────▶ Queued ───────────────────▶ Running
//!    │                      │                          │                           │
//!    │ cancel / input failed│                          │ cancel                    ├─▶ Done
//!    └──────────────────────┴──────────────────────────┴──────────▶ Failed ◀───────┘
//! ```
//!
//! Invariants, each kept under the node's state lock:
//!
//! - A node is *scheduled* (handed to the CPU pool or a GPU worker) exactly once: by whoever
//!   moves it from `Waiting` to `Queued`.
//! - `pending` counts inputs not yet finished, plus one guard held by `submit` while it
//!   registers the node with its inputs; the decrement that reaches zero makes the node ready.
//! - Once `Done` or `Failed`, a node never changes phase again, and its dependents list has been
//!   taken: whoever registers later reads the phase instead of waiting for a notification.
//! - A node's closure is dropped as soon as it has run, releasing its inputs; a finished node
//!   holds only its own output, which its last consumer moves out (see [`Node::output`]).
//! - A sized node's stored output is counted in the cluster's managed bytes exactly while it is
//!   stored: `held` is set when it is stored and cleared (subtracting it) when it is moved out
//!   or the node is dropped, both under the output's lock or with the node owned.
//!
//! Failure propagation walks an explicit work list, never the call stack, so a chain of a
//! million failing tasks cannot overflow it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use super::TaskKey;
use crate::cluster::ClusterInner;
use crate::diagnostics::{Ran, SubmitTally};
use crate::error::{Error, TaskError, TaskFailure};
use crate::gpu::GpuContext;

/// Locks a mutex, ignoring poisoning: user code never runs while our locks are held, so a
/// poisoned lock can only come from a bug in onebox itself, and the data is still consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a task must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// On the CPU pool.
    Cpu,
    /// On whichever GPU worker has the shortest queue.
    AnyGpu,
    /// On this GPU (index in the cluster).
    Gpu(usize),
}

impl Placement {
    fn encode(self) -> usize {
        match self {
            Placement::Cpu => 0,
            Placement::AnyGpu => 1,
            Placement::Gpu(i) => i + 2,
        }
    }
    fn decode(v: usize) -> Self {
        match v {
            0 => Placement::Cpu,
            1 => Placement::AnyGpu,
            i => Placement::Gpu(i - 2),
        }
    }
}

/// Where a task ran: a CPU pool thread, or a stream of a GPU worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Worker {
    /// The CPU pool's thread with this index.
    Cpu(usize),
    /// The worker of GPU `gpu`, on its stream `stream`.
    Gpu {
        /// The GPU's index in the cluster.
        gpu: usize,
        /// The stream's index on that GPU.
        stream: usize,
    },
}

/// What a running task may know about itself: its key, its attempt, and on a GPU worker the
/// GPU's context and the stream it was given.
pub struct TaskContext<'a> {
    key: &'a TaskKey,
    attempt: u32,
    last_attempt: bool,
    worker: Worker,
    gpu: Option<&'a GpuContext>,
}

impl<'a> TaskContext<'a> {
    /// The task's key.
    pub fn key(&self) -> &TaskKey {
        self.key
    }
    /// 1 for the first run, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// Where the task runs.
    pub fn worker(&self) -> Worker {
        self.worker
    }
    /// The GPU this task runs on, when it asked for one.
    pub fn gpu(&self) -> Option<&'a GpuContext> {
        self.gpu
    }
    /// True on the last attempt the task will get: inputs may then be moved, not copied.
    pub(crate) fn is_last_attempt(&self) -> bool {
        self.last_attempt
    }
}

pub(crate) enum Phase {
    Lazy,
    Waiting,
    Queued,
    Running,
    Done,
    Failed(Arc<TaskError>),
}

/// Someone to tell when a node finishes.
pub(crate) enum Dependent {
    Task(Arc<dyn Task>),
    Waiter(Arc<dyn Waiter>),
}

/// A non-task listener for a node's end (a blocked `compute`, an `as_completed` iterator).
pub(crate) trait Waiter: Send + Sync {
    fn done(&self, result: &Result<(), Arc<TaskError>>);
}

struct State {
    phase: Phase,
    /// Inputs, kept only until the node is submitted (to find lazy ancestors).
    inputs: Vec<Arc<dyn Task>>,
    dependents: Vec<Dependent>,
    /// Failures of the compute this node was submitted with.
    log: Option<Arc<RunLog>>,
}

/// The parts of a node that do not depend on its output type.
pub(crate) struct Core {
    id: u64,
    label: OnceLock<Arc<str>>,
    retries: AtomicU32,
    placement: AtomicUsize,
    pending: AtomicUsize,
    state: Mutex<State>,
    cluster: Arc<ClusterInner>,
}

impl Core {
    /// Makes a node that has not been submitted also wait for `other` (whose output it does
    /// not read). Returns false, changing nothing, once the node has been submitted.
    #[cfg_attr(not(feature = "frame"), allow(dead_code))]
    pub(crate) fn add_input(&self, other: Arc<dyn Task>) -> bool {
        let mut st = lock(&self.state);
        if matches!(st.phase, Phase::Lazy) {
            st.inputs.push(other);
            true
        } else {
            false
        }
    }

    pub(crate) fn key(&self) -> TaskKey {
        TaskKey::new(self.id, self.label.get().cloned())
    }
    pub(crate) fn cluster(&self) -> &Arc<ClusterInner> {
        &self.cluster
    }
    pub(crate) fn set_label(&self, label: &str) {
        let _ = self.label.set(Arc::from(label));
    }
    pub(crate) fn set_retries(&self, n: u32) {
        self.retries.store(n, Ordering::Relaxed);
    }
    pub(crate) fn set_placement(&self, p: Placement) {
        self.placement.store(p.encode(), Ordering::Relaxed);
    }
    pub(crate) fn placement(&self) -> Placement {
        Placement::decode(self.placement.load(Ordering::Relaxed))
    }
    /// `None` while lazy (not submitted); otherwise whether it has finished.
    pub(crate) fn submitted_and_finished(&self) -> Option<bool> {
        match lock(&self.state).phase {
            Phase::Lazy => None,
            Phase::Done | Phase::Failed(_) => Some(true),
            _ => Some(false),
        }
    }
    pub(crate) fn is_finished(&self) -> bool {
        matches!(lock(&self.state).phase, Phase::Done | Phase::Failed(_))
    }
}

/// A node with its output type erased: what the scheduler moves around.
pub(crate) trait Task: Send + Sync + 'static {
    fn core(&self) -> &Core;
    /// Runs the closure on this thread, with retries; stores the output on success.
    /// Returns the last failure and the number of attempts otherwise.
    fn execute(&self, worker: Worker, gpu: Option<&GpuContext>) -> Result<(), (TaskFailure, u32)>;
    /// Drops the closure (and with it the inputs it holds) of a node that will never run.
    fn release(&self);
}

type TaskFn<T> = Box<dyn FnMut(&TaskContext<'_>) -> Result<T, TaskFailure> + Send>;

/// A task producing a `T`.
pub(crate) struct Node<T> {
    core: Core,
    func: Mutex<Option<TaskFn<T>>>,
    output: Mutex<Option<T>>,
    /// How many bytes an output holds, when the node's maker knows (see [`Node::set_size`]).
    size: OnceLock<fn(&T) -> usize>,
    /// The bytes of the stored output counted in the cluster's managed bytes (0 when none
    /// is stored or the node is unsized). Changed only under the `output` lock.
    held: AtomicUsize,
}

impl<T: Send + 'static> Node<T> {
    /// A lazy node that will run `func` once `inputs` are done.
    pub(crate) fn new(
        cluster: &Arc<ClusterInner>,
        inputs: Vec<Arc<dyn Task>>,
        func: impl FnMut(&TaskContext<'_>) -> Result<T, TaskFailure> + Send + 'static,
    ) -> Arc<Self> {
        Self::with_phase(cluster, inputs, Some(Box::new(func)), None, Phase::Lazy)
    }

    /// A node that is already done, holding `value`.
    pub(crate) fn ready_value(cluster: &Arc<ClusterInner>, value: T) -> Arc<Self> {
        Self::with_phase(cluster, Vec::new(), None, Some(value), Phase::Done)
    }

    fn with_phase(
        cluster: &Arc<ClusterInner>,
        inputs: Vec<Arc<dyn Task>>,
        func: Option<TaskFn<T>>,
        output: Option<T>,
        phase: Phase,
    ) -> Arc<Self> {
        Arc::new(Node {
            core: Core {
                id: TaskKey::next_id(),
                label: OnceLock::new(),
                retries: AtomicU32::new(0),
                placement: AtomicUsize::new(0),
                pending: AtomicUsize::new(0),
                state: Mutex::new(State {
                    phase,
                    inputs,
                    dependents: Vec::new(),
                    log: None,
                }),
                cluster: cluster.clone(),
            },
            func: Mutex::new(func),
            output: Mutex::new(output),
            size: OnceLock::new(),
            held: AtomicUsize::new(0),
        })
    }

    /// Gives the node a size function: from now on its stored output counts in the cluster's
    /// managed bytes, from when it is stored until it is moved out or dropped. The first size
    /// function given stays. An output already stored (a ready value) is counted at once.
    pub(crate) fn set_size(&self, size: fn(&T) -> usize) {
        if self.size.set(size).is_err() {
            return;
        }
        let out = lock(&self.output);
        if let Some(value) = out.as_ref()
            && self.held.load(Ordering::Relaxed) == 0
        {
            self.count(size(value));
        }
    }

    /// Adds `bytes` held by this node's output to the cluster's managed bytes (under the
    /// `output` lock).
    fn count(&self, bytes: usize) {
        if bytes > 0 {
            self.held.store(bytes, Ordering::Relaxed);
            self.core
                .cluster
                .managed
                .fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Takes this node's output out of the managed bytes (under the `output` lock).
    fn uncount(&self) {
        // A plain load first: an unsized node pays for a read and a branch, not a swap.
        let bytes = self.held.load(Ordering::Relaxed);
        if bytes > 0 {
            self.held.store(0, Ordering::Relaxed);
            self.core
                .cluster
                .managed
                .fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Stores a finished output, counting its bytes when the node is sized.
    fn store(&self, value: T) {
        let mut out = lock(&self.output);
        if let Some(size) = self.size.get() {
            self.uncount();
            self.count(size(&value));
        }
        *out = Some(value);
    }

    /// The output of a finished node: moved out when `may_move` and nobody else holds this
    /// node (so nobody else could ever ask), cloned otherwise. Fails with the node's error.
    pub(crate) fn output(self: Arc<Self>, may_move: bool) -> Result<T, Arc<TaskError>>
    where
        T: Clone,
    {
        if let Phase::Failed(e) = &lock(&self.core.state).phase {
            return Err(e.clone());
        }
        let sole_owner = Arc::strong_count(&self) == 1;
        let mut out = lock(&self.output);
        let value = if may_move && sole_owner {
            self.uncount();
            out.take()
        } else {
            out.clone()
        };
        drop(out);
        value.ok_or_else(|| {
            // Unreachable by the invariants above; reported rather than panicking.
            Arc::new(TaskError::new(
                self.core.key(),
                TaskFailure::Error(Arc::new(Error::Invalid(
                    "output read before the task finished".into(),
                ))),
                0,
            ))
        })
    }
}

impl<T: Send + 'static> Task for Node<T> {
    fn core(&self) -> &Core {
        &self.core
    }

    fn execute(&self, worker: Worker, gpu: Option<&GpuContext>) -> Result<(), (TaskFailure, u32)> {
        let Some(mut func) = lock(&self.func).take() else {
            return Err((
                TaskFailure::Error(Arc::new(Error::Invalid("task ran twice".into()))),
                0,
            ));
        };
        let key = self.core.key();
        let tries = self.core.retries.load(Ordering::Relaxed).saturating_add(1);
        let mut last = TaskFailure::Cancelled;
        let _quiet = QuietPanics::enter();
        for attempt in 1..=tries {
            let ctx = TaskContext {
                key: &key,
                attempt,
                last_attempt: attempt == tries,
                worker,
                gpu,
            };
            match catch_unwind(AssertUnwindSafe(|| func(&ctx))) {
                Ok(Ok(value)) => {
                    self.store(value);
                    return Ok(());
                }
                Ok(Err(failure)) => last = failure,
                Err(payload) => last = TaskFailure::Panic(panic_message(payload.as_ref())),
            }
        }
        Err((last, tries))
    }

    fn release(&self) {
        drop(lock(&self.func).take());
    }
}

impl<T> Drop for Node<T> {
    /// An output nobody took leaves the managed bytes with its node.
    fn drop(&mut self) {
        let bytes = *self.held.get_mut();
        if bytes > 0 {
            self.core
                .cluster
                .managed
                .fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

thread_local! {
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While alive, panics on this thread are a task's failure, reported as an error: the panic
/// hook stays silent for them instead of printing a message and backtrace on stderr.
struct QuietPanics {
    was: bool,
}

impl QuietPanics {
    fn enter() -> QuietPanics {
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !IN_TASK.with(|t| t.get()) {
                    previous(info);
                }
            }));
        });
        QuietPanics {
            was: IN_TASK.with(|t| t.replace(true)),
        }
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        IN_TASK.with(|t| t.set(self.was));
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is described as such).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// One compute's bookkeeping: its failures, so that the first error can point at the others,
/// and how many of its tasks have not ended, so that a failed compute returns only once the
/// rest of its work has settled (nothing it started is still running behind the caller's back).
#[derive(Default)]
pub(crate) struct RunLog {
    failures: Mutex<Vec<Arc<TaskError>>>,
    outstanding: Mutex<usize>,
    settled: Condvar,
}

impl RunLog {
    /// `first` with every other failure of this compute attached.
    pub(crate) fn attach_others(&self, first: &TaskError) -> TaskError {
        let root = first.root_cause().key().id();
        let others = lock(&self.failures)
            .iter()
            .filter(|e| e.key().id() != root)
            .cloned()
            .collect();
        first.clone().with_also(others)
    }

    fn task_ended(&self) {
        let mut n = lock(&self.outstanding);
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.settled.notify_all();
        }
    }

    /// Blocks until every task of this compute has ended.
    fn wait_settled(&self, cluster: &ClusterInner) {
        block_until(cluster, &self.outstanding, &self.settled, |n| {
            (*n == 0).then_some(())
        });
    }
}

/// Submits `root` and every lazy task it depends on; starts those whose inputs are done.
pub(crate) fn submit(root: Arc<dyn Task>, log: Option<Arc<RunLog>>) {
    let mut stack = vec![root];
    let mut ready = Vec::new();
    let mut failed = Vec::new();
    let mut tally = SubmitTally::default();
    while let Some(node) = stack.pop() {
        let inputs = {
            let mut st = lock(&node.core().state);
            if !matches!(st.phase, Phase::Lazy) {
                continue;
            }
            st.phase = Phase::Waiting;
            if let Some(log) = &log {
                *lock(&log.outstanding) += 1;
                st.log = Some(log.clone());
            }
            std::mem::take(&mut st.inputs)
        };
        let core = node.core();
        tally.note(&core.cluster.events, core.id, core.label.get());
        core.pending.store(inputs.len() + 1, Ordering::Release);
        let mut input_error = None;
        for input in inputs {
            let mut st = lock(&input.core().state);
            match &st.phase {
                Phase::Done => {
                    core.pending.fetch_sub(1, Ordering::AcqRel);
                }
                Phase::Failed(e) => {
                    input_error.get_or_insert_with(|| e.clone());
                    core.pending.fetch_sub(1, Ordering::AcqRel);
                }
                phase => {
                    let lazy = matches!(phase, Phase::Lazy);
                    st.dependents.push(Dependent::Task(node.clone()));
                    drop(st);
                    if lazy {
                        stack.push(input);
                    }
                }
            }
        }
        if let Some(e) = input_error {
            failed.push((node, TaskFailure::InputFailed(root_of(&e))));
        } else if core.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            ready.push(node);
        }
    }
    // Sent before any of these tasks can start (they are dispatched below), so that whoever
    // counts them sees them submitted before it sees them end.
    tally.flush();
    for (node, failure) in failed {
        fail(node, failure);
    }
    for node in ready {
        make_ready(node);
    }
}

/// Moves a waiting node whose inputs are all done to `Queued` and hands it to a worker.
fn make_ready(node: Arc<dyn Task>) {
    {
        let mut st = lock(&node.core().state);
        if !matches!(st.phase, Phase::Waiting) {
            return;
        }
        st.phase = Phase::Queued;
    }
    let cluster = node.core().cluster.clone();
    cluster.dispatch(node);
}

/// Runs a queued node on the current thread (a pool thread or a GPU worker) and finishes it.
pub(crate) fn run(node: Arc<dyn Task>, worker: Worker, gpu: Option<&GpuContext>) {
    {
        let mut st = lock(&node.core().state);
        if !matches!(st.phase, Phase::Queued) {
            return; // cancelled while queued
        }
        st.phase = Phase::Running;
    }
    let core = node.core();
    let events = &core.cluster.events;
    let start = events.is_enabled().then(|| events.now());
    let result = node.execute(worker, gpu).map_err(|(failure, attempts)| {
        let e = Arc::new(TaskError::new(core.key(), failure, attempts));
        if let Some(log) = &lock(&core.state).log {
            lock(&log.failures).push(e.clone());
        }
        e
    });
    // A task that started before anyone listened still reports its end (without a start):
    // a wait that began meanwhile counts it.
    if start.is_some() || events.is_enabled() {
        events.ran(Ran {
            id: core.id,
            label: core.label.get().cloned(),
            worker,
            start,
            end: events.now(),
            failure: result.as_ref().err().cloned(),
        });
    }
    finish(node, result);
}

/// Fails a node that has not run (cancelled, or an input failed) and everything downstream.
/// Returns false when the node had already started or finished.
pub(crate) fn fail(node: Arc<dyn Task>, failure: TaskFailure) -> bool {
    let e = {
        let st = lock(&node.core().state);
        if !matches!(st.phase, Phase::Lazy | Phase::Waiting | Phase::Queued) {
            return false;
        }
        Arc::new(TaskError::new(node.core().key(), failure, 0))
    };
    finish(node, Err(e));
    true
}

/// Records a node's end and tells its dependents, failing downstream nodes iteratively.
fn finish(node: Arc<dyn Task>, result: Result<(), Arc<TaskError>>) {
    let mut work = vec![(node, result)];
    while let Some((node, result)) = work.pop() {
        let (dependents, log) = {
            let mut st = lock(&node.core().state);
            if matches!(st.phase, Phase::Done | Phase::Failed(_)) {
                continue;
            }
            st.phase = match &result {
                Ok(()) => Phase::Done,
                Err(e) => Phase::Failed(e.clone()),
            };
            st.inputs.clear();
            (std::mem::take(&mut st.dependents), st.log.take())
        };
        if let Some(log) = log {
            log.task_ended();
        }
        if result.is_err() {
            // A failed node will never run: release its closure and the inputs it holds.
            node.release();
        }
        // Let go of this node before waking consumers, so the last one can move its output.
        drop(node);
        for dependent in dependents {
            match dependent {
                Dependent::Waiter(w) => w.done(&result),
                Dependent::Task(t) => match &result {
                    Ok(()) => {
                        if t.core().pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                            make_ready(t);
                        }
                    }
                    Err(e) => {
                        let skipped = {
                            let st = lock(&t.core().state);
                            matches!(st.phase, Phase::Lazy | Phase::Waiting | Phase::Queued)
                        };
                        if skipped {
                            let key = t.core().key();
                            let err = Arc::new(TaskError::new(
                                key,
                                TaskFailure::InputFailed(root_of(e)),
                                0,
                            ));
                            work.push((t, Err(err)));
                        }
                    }
                },
            }
        }
    }
}

/// The error of the task whose own code failed. Skipped tasks point straight at it, so error
/// chains stay one level deep however long the graph (no deep recursion to print or drop).
fn root_of(e: &Arc<TaskError>) -> Arc<TaskError> {
    match e.failure() {
        TaskFailure::InputFailed(inner) => inner.clone(),
        _ => e.clone(),
    }
}

/// Calls `waiter` when `node` ends (at once if it already has).
pub(crate) fn add_waiter(node: &Arc<dyn Task>, waiter: Arc<dyn Waiter>) {
    let result = {
        let mut st = lock(&node.core().state);
        match &st.phase {
            Phase::Done => Ok(()),
            Phase::Failed(e) => Err(e.clone()),
            _ => {
                st.dependents.push(Dependent::Waiter(waiter));
                return;
            }
        }
    };
    waiter.done(&result);
}

/// A one-shot signal a thread can block on until a node ends.
#[derive(Default)]
pub(crate) struct Latch {
    result: Mutex<Option<Result<(), Arc<TaskError>>>>,
    cond: Condvar,
}

impl Waiter for Latch {
    fn done(&self, result: &Result<(), Arc<TaskError>>) {
        *lock(&self.result) = Some(result.clone());
        self.cond.notify_all();
    }
}

impl Latch {
    /// Blocks until the node ends.
    pub(crate) fn wait(&self, cluster: &ClusterInner) -> Result<(), Arc<TaskError>> {
        block_until(cluster, &self.result, &self.cond, |r| r.clone())
    }
}

/// How many times a waiting pool thread with nothing to run yields before it sleeps: about
/// the tens of microseconds by which sibling tasks (a training step's replicas) finish apart,
/// so that it does not sleep, to be woken at a cost, for so short a wait.
const SPINS: u32 = 64;

/// Blocks until `ready` returns a value for the state behind `mutex` (re-checked whenever
/// `cond` is notified). On a pool thread of `cluster` it runs other tasks meanwhile instead of
/// sleeping, so a task that computes a graph inside never starves the pool.
fn block_until<S, R>(
    cluster: &ClusterInner,
    mutex: &Mutex<S>,
    cond: &Condvar,
    ready: impl Fn(&S) -> Option<R>,
) -> R {
    if cluster.is_pool_thread() {
        let mut idle = 0u32;
        loop {
            if let Some(r) = ready(&lock(mutex)) {
                return r;
            }
            if matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle < SPINS {
                std::thread::yield_now();
                continue;
            }
            // Nothing to run here: wait for the signal, looking for new work now and then.
            let guard = lock(mutex);
            if let Some(r) = ready(&guard) {
                return r;
            }
            drop(cond.wait_timeout(guard, std::time::Duration::from_micros(50)));
        }
    }
    let mut guard = lock(mutex);
    loop {
        if let Some(r) = ready(&guard) {
            return r;
        }
        guard = cond.wait(guard).unwrap_or_else(PoisonError::into_inner);
    }
}

/// Waits for `node`, submitting it first if it is lazy; returns its end.
pub(crate) fn wait_for(node: Arc<dyn Task>) -> Result<(), Arc<TaskError>> {
    let cluster = node.core().cluster.clone();
    let log = Arc::new(RunLog::default());
    submit(node.clone(), Some(log.clone()));
    let latch = Arc::new(Latch::default());
    add_waiter(&node, latch.clone());
    drop(node);
    latch.wait(&cluster).map_err(|e| {
        log.wait_settled(&cluster);
        Arc::new(log.attach_others(&e))
    })
}
