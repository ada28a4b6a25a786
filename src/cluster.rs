//! The cluster: the CPU pool, the GPU workers and the memory budget of one machine.
//!
//! [`Cluster::local`] detects the [`Hardware`], turns it into a [`Plan`] (how many pool threads,
//! which GPUs with how many streams, how much memory), and starts it. That takes a few
//! milliseconds: a rayon pool, plus one thread per GPU whose CUDA context opens in the
//! background. The plan is a pure function of a `Hardware` description and [`Settings`], so
//! the policy is tested on machines we do not have (see `Plan::new`).
//!
//! Settings come, in this order of precedence, from the builder, from the environment
//! (`ONEBOX_THREADS`, `ONEBOX_GPUS`, `ONEBOX_STREAMS`, `ONEBOX_MEMORY_LIMIT`), and from the
//! hardware:
//!
//! | setting      | default                                                     |
//! |--------------|-------------------------------------------------------------|
//! | threads      | the CPU budget (affinity and cgroup quota applied)          |
//! | GPUs         | every GPU in `CUDA_VISIBLE_DEVICES` order                   |
//! | streams      | 4 per GPU of compute capability 8.0 or newer, else 2        |
//! | memory limit | 80% of the memory available at start (like Dask's `"auto"`) |
//! | GPU memory   | 80% of each card (like dask-cuda)                           |
//!
//! ```
//! use onebox::prelude::*;
//! let cluster = Cluster::builder().threads(2).memory_limit("1GB").build()?;
//! assert_eq!(cluster.plan().cpu_threads, 2);
//! assert_eq!(cluster.plan().memory_limit, 1_000_000_000);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! A `Cluster` is a cheap handle (clone it freely). The threads stop, and are joined, when the
//! last handle and the last task that needs them are gone. Several clusters may live in one
//! process; [`Cluster::global`] is a lazily made default one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

use crate::diagnostics::{Event, EventBus};
use crate::error::{BoxError, Error, Result, TaskFailure};
use crate::gpu::GpuContext;
use crate::gpu::worker::GpuWorker;
use crate::graph::node::{self, Node, Task, lock};
use crate::graph::{Delayed, Placement, TaskHandle, Worker};
use crate::hardware::Hardware;

/// What a user asked for; `None` means "decide from the hardware".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// CPU pool threads.
    pub threads: Option<usize>,
    /// How many GPUs to use (the first `n` visible ones).
    pub gpu_count: Option<usize>,
    /// Exactly these GPUs (indices among the visible ones).
    pub gpu_indices: Option<Vec<usize>>,
    /// Streams per GPU.
    pub streams_per_gpu: Option<usize>,
    /// The memory budget, as written (`"16GB"`, `"512MiB"`, `"0.5"` or `"50%"` of the total).
    pub memory_limit: Option<String>,
}

impl Settings {
    /// Settings from the environment: `ONEBOX_THREADS`, `ONEBOX_GPUS` (a count, `all` or
    /// `none`), `ONEBOX_STREAMS`, `ONEBOX_MEMORY_LIMIT`.
    pub fn from_env() -> Result<Settings> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Settings from any variable lookup (what [`Settings::from_env`] uses, testable).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let count = |name: &str| -> Result<Option<usize>> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::config(name, &v, "expected a whole number")),
            }
        };
        let gpu_count = match get("ONEBOX_GPUS").map(|v| v.trim().to_ascii_lowercase()) {
            None => None,
            Some(v) if v.is_empty() || v == "all" => None,
            Some(v) if v == "none" => Some(0),
            Some(v) => Some(v.parse().map_err(|_| {
                Error::config(
                    "ONEBOX_GPUS",
                    &v,
                    "expected a count, `all` or `none` (use CUDA_VISIBLE_DEVICES to pick devices)",
                )
            })?),
        };
        Ok(Settings {
            threads: count("ONEBOX_THREADS")?,
            gpu_count,
            gpu_indices: None,
            streams_per_gpu: count("ONEBOX_STREAMS")?,
            memory_limit: get("ONEBOX_MEMORY_LIMIT").filter(|v| !v.trim().is_empty()),
        })
    }

    /// `self`, with every setting `self` leaves open taken from `fallback`.
    pub fn or(self, fallback: Settings) -> Settings {
        Settings {
            threads: self.threads.or(fallback.threads),
            gpu_count: self.gpu_count.or(if self.gpu_indices.is_some() {
                None
            } else {
                fallback.gpu_count
            }),
            gpu_indices: self.gpu_indices.or(fallback.gpu_indices),
            streams_per_gpu: self.streams_per_gpu.or(fallback.streams_per_gpu),
            memory_limit: self.memory_limit.or(fallback.memory_limit),
        }
    }
}

/// How a cluster is sized: the outcome of the sizing policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Threads in the CPU pool.
    pub cpu_threads: usize,
    /// The GPUs used, as indices into [`Hardware::gpus`].
    pub gpus: Vec<usize>,
    /// Streams per GPU worker.
    pub streams_per_gpu: usize,
    /// Memory budget for data the cluster holds, in bytes.
    pub memory_limit: u64,
    /// Device memory budget of each used GPU, in bytes (same order as `gpus`).
    pub gpu_memory_limits: Vec<u64>,
}

/// The largest pool we agree to start: far beyond any machine, low enough to catch typos.
const MAX_THREADS: usize = 4096;
const MAX_STREAMS: usize = 64;

impl Plan {
    /// The sizing policy: a pure function of the machine and the settings.
    pub fn new(hw: &Hardware, settings: &Settings) -> Result<Plan> {
        let cpu_threads = match settings.threads {
            None => hw.cpu_budget.max(1),
            Some(0) => {
                return Err(Error::config(
                    "threads",
                    0,
                    "a cluster needs at least 1 thread",
                ));
            }
            Some(n) if n > MAX_THREADS => {
                return Err(Error::config(
                    "threads",
                    n,
                    format!("at most {MAX_THREADS} threads"),
                ));
            }
            Some(n) => n,
        };
        let available = hw.gpus.len();
        let gpus: Vec<usize> = match (&settings.gpu_indices, settings.gpu_count) {
            (Some(indices), _) => {
                for (pos, &i) in indices.iter().enumerate() {
                    if i >= available {
                        return Err(Error::NoGpu {
                            what: "the cluster".into(),
                            requested: i.to_string(),
                            available,
                        });
                    }
                    if indices[..pos].contains(&i) {
                        return Err(Error::config(
                            "gpus",
                            format!("{indices:?}"),
                            format!("GPU {i} is listed twice"),
                        ));
                    }
                }
                indices.clone()
            }
            (None, Some(n)) if n > available => {
                return Err(Error::NoGpu {
                    what: "the cluster".into(),
                    requested: format!("{n} GPUs"),
                    available,
                });
            }
            (None, Some(n)) => (0..n).collect(),
            (None, None) => (0..available).collect(),
        };
        let streams_per_gpu = match settings.streams_per_gpu {
            Some(s) if s == 0 || s > MAX_STREAMS => {
                return Err(Error::config(
                    "streams per GPU",
                    s,
                    format!("between 1 and {MAX_STREAMS}"),
                ));
            }
            Some(s) => s,
            None if gpus.iter().all(|&i| hw.gpus[i].compute_capability.0 >= 8) => 4,
            None => 2,
        };
        let memory_limit = match &settings.memory_limit {
            None => (hw.memory_available as f64 * 0.8) as u64,
            Some(text) => parse_memory(text, hw.memory_total)?,
        };
        let gpu_memory_limits = gpus
            .iter()
            .map(|&i| (hw.gpus[i].memory_total as f64 * 0.8) as u64)
            .collect();
        Ok(Plan {
            cpu_threads,
            gpus,
            streams_per_gpu,
            memory_limit,
            gpu_memory_limits,
        })
    }
}

/// Parses a memory size: `16GB` (decimal units, as Dask), `16GiB` (binary), `123456` bytes,
/// or a fraction of `total` as `0.5` or `50%`.
pub fn parse_memory(text: &str, total: u64) -> Result<u64> {
    let bad = |why: &str| Error::config("memory limit", text, why.to_string());
    let t = text.trim();
    let bytes = if let Some(pct) = t.strip_suffix('%') {
        let p: f64 = pct
            .trim()
            .parse()
            .map_err(|_| bad("expected a percentage such as 80%"))?;
        if !(p > 0.0 && p <= 100.0) {
            return Err(bad("a percentage must be above 0 and at most 100"));
        }
        (total as f64 * p / 100.0) as u64
    } else {
        let split = t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).len();
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .trim()
            .parse()
            .map_err(|_| bad("expected a size such as 16GB, 512MiB or 0.8"))?;
        let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" if n > 0.0 && n <= 1.0 && num.contains('.') => return Ok((total as f64 * n) as u64),
            "" | "b" => 1.0,
            "k" | "kb" => 1e3,
            "m" | "mb" => 1e6,
            "g" | "gb" => 1e9,
            "t" | "tb" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024f64.powi(2),
            "gib" => 1024f64.powi(3),
            "tib" => 1024f64.powi(4),
            _ => {
                return Err(bad(
                    "unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
                ));
            }
        };
        if !n.is_finite() || n <= 0.0 {
            return Err(bad("must be positive"));
        }
        (n * scale) as u64
    };
    if bytes == 0 {
        return Err(bad("must be at least 1 byte"));
    }
    Ok(bytes)
}

/// Builds a [`Cluster`]: every setting left out is taken from the environment, then from the
/// hardware. `build` returns an error naming any value it cannot use.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClusterBuilder {
    settings: Settings,
    hardware: Option<Hardware>,
    ignore_env: bool,
    // Diagnostics (see `crate::diagnostics`).
    progress: Option<bool>,
    dashboard: Option<String>,
}

impl ClusterBuilder {
    /// Threads in the CPU pool (at least 1).
    pub fn threads(mut self, n: usize) -> Self {
        self.settings.threads = Some(n);
        self
    }
    /// Use the first `n` visible GPUs (0 for none).
    pub fn gpus(mut self, n: usize) -> Self {
        self.settings.gpu_count = Some(n);
        self
    }
    /// Use exactly these GPUs (indices among the visible ones, as `onebox info` lists them).
    pub fn gpu_indices(mut self, indices: impl IntoIterator<Item = usize>) -> Self {
        self.settings.gpu_indices = Some(indices.into_iter().collect());
        self
    }
    /// Streams per GPU worker (1 to 64).
    pub fn streams_per_gpu(mut self, n: usize) -> Self {
        self.settings.streams_per_gpu = Some(n);
        self
    }
    /// The memory budget: `"16GB"`, `"512MiB"`, `"0.5"` or `"50%"` of the machine's memory.
    pub fn memory_limit(mut self, limit: impl Into<String>) -> Self {
        self.settings.memory_limit = Some(limit.into());
        self
    }
    /// Size the cluster for this machine description instead of detecting one.
    pub fn hardware(mut self, hw: Hardware) -> Self {
        self.hardware = Some(hw);
        self
    }
    /// Ignore the `ONEBOX_*` environment variables.
    pub fn ignore_env(mut self) -> Self {
        self.ignore_env = true;
        self
    }

    /// Progress bars for long computes on a terminal (on by default unless
    /// `ONEBOX_PROGRESS=0`; see [`diagnostics::progress`](crate::diagnostics::progress)).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = Some(on);
        self
    }
    /// Serves the live dashboard on `addr` (`"127.0.0.1:8787"`; a bare port binds to
    /// loopback) for the cluster's lifetime. See [`diagnostics::dashboard`](crate::diagnostics::dashboard).
    pub fn dashboard(mut self, addr: impl Into<String>) -> Self {
        self.dashboard = Some(addr.into());
        self
    }

    /// Starts the cluster.
    pub fn build(self) -> Result<Cluster> {
        let started = Instant::now();
        let env = if self.ignore_env {
            Settings::default()
        } else {
            Settings::from_env()?
        };
        let settings = self.settings.or(env);
        let hardware = self.hardware.unwrap_or_else(Hardware::detect);
        let plan = Plan::new(&hardware, &settings)?;
        let cluster = Cluster::start(hardware, plan, started)?;
        let progress = match self.progress {
            Some(false) => false,
            Some(true) => crate::diagnostics::progress::default_enabled(None, stderr_is_terminal()),
            None if self.ignore_env => {
                crate::diagnostics::progress::default_enabled(None, stderr_is_terminal())
            }
            None => crate::diagnostics::progress::enabled_from_env(),
        };
        cluster
            .inner
            .progress
            .store(progress, std::sync::atomic::Ordering::Relaxed);
        if let Some(addr) = &self.dashboard {
            let dashboard = crate::diagnostics::Dashboard::start(&cluster, addr)?;
            let _ = cluster.inner.dashboard.set(dashboard);
        }
        Ok(cluster)
    }
}

fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// The shared state behind every [`Cluster`] handle and every task.
pub(crate) struct ClusterInner {
    hardware: Hardware,
    plan: Plan,
    pool: Option<rayon::ThreadPool>,
    pool_threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    gpus: Vec<GpuWorker>,
    pub(crate) events: EventBus,
    pub(crate) started: Instant,
    // Diagnostics: progress bars on computes, and the dashboard started by the builder.
    pub(crate) progress: std::sync::atomic::AtomicBool,
    pub(crate) dashboard: OnceLock<crate::diagnostics::Dashboard>,
    /// Bytes of finished task outputs the scheduler holds, for the outputs whose size is
    /// known (see [`Cluster::managed_bytes`]).
    /// Shared with the diagnostics collector, which must not keep the cluster alive.
    pub(crate) managed: Arc<std::sync::atomic::AtomicUsize>,
}

impl ClusterInner {
    /// Hands a ready task to the worker its placement names.
    pub(crate) fn dispatch(&self, task: Arc<dyn Task>) {
        let gpu = match task.core().placement() {
            Placement::Cpu => {
                if let Some(pool) = &self.pool {
                    pool.spawn(move || {
                        let worker = Worker::Cpu(rayon::current_thread_index().unwrap_or(0));
                        node::run(task, worker, None)
                    });
                }
                return;
            }
            Placement::AnyGpu => (0..self.gpus.len()).min_by_key(|&g| self.gpus[g].queued()),
            Placement::Gpu(i) => Some(i).filter(|&i| i < self.gpus.len()),
        };
        match gpu {
            Some(g) => self.gpus[g].send(task),
            None => {
                let requested = match task.core().placement() {
                    Placement::Gpu(i) => i.to_string(),
                    _ => "any".into(),
                };
                let e = Error::NoGpu {
                    what: format!("task {}", task.core().key()),
                    requested,
                    available: self.gpus.len(),
                };
                node::fail(task, TaskFailure::Error(Arc::new(e)));
            }
        }
    }

    pub(crate) fn is_pool_thread(&self) -> bool {
        self.pool
            .as_ref()
            .is_some_and(|p| p.current_thread_index().is_some())
    }

    /// Keeps the pool's other threads awake while the returned guard lives: each runs a task
    /// that polls for work, running what it finds, until the guard is dropped.
    ///
    /// For a loop of short parallel steps with serial work between them (a training loop):
    /// a thread that found nothing to do goes to sleep after a few microseconds and must be
    /// woken for the next step, which costs microseconds on bare metal and, on a virtual
    /// machine whose host has stopped the idle vCPU, up to milliseconds. The price is that the
    /// other threads keep their cores busy while the loop's serial parts run, as OpenMP's
    /// active wait policy does. `None` (nothing to keep awake) off the pool or on a pool of
    /// one thread.
    pub(crate) fn spin_others(&self) -> Option<Spinning> {
        let pool = self.pool.as_ref()?;
        let me = pool.current_thread_index()?;
        if pool.current_num_threads() < 2 {
            return None;
        }
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        pool.spawn_broadcast(move |ctx| {
            // The caller's own thread must not run a loop that only its caller can end.
            if ctx.index() == me {
                return;
            }
            while !flag.load(Ordering::Acquire) {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::hint::spin_loop();
                }
            }
        });
        Some(Spinning(done))
    }
}

/// The guard of [`ClusterInner::spin_others`]: dropping it lets the threads sleep again.
pub(crate) struct Spinning(Arc<AtomicBool>);

impl Drop for Spinning {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Drop for ClusterInner {
    fn drop(&mut self) {
        for g in &mut self.gpus {
            g.stop();
        }
        let on_own_thread = self.is_pool_thread();
        drop(self.pool.take()); // tells the threads to exit once idle
        if !on_own_thread {
            for t in std::mem::take(&mut *lock(&self.pool_threads)) {
                let _ = t.join();
            }
        }
    }
}

/// One machine as a cluster: a work-stealing CPU pool, a worker per GPU, a memory budget, and
/// the scheduler that runs every task graph on them. See the [module docs](self).
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("plan", &self.inner.plan)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster sized for this machine (and the `ONEBOX_*` environment variables).
    pub fn local() -> Result<Cluster> {
        Cluster::builder().build()
    }

    /// A builder to choose threads, GPUs, streams and memory.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// The process-wide default cluster, made on first use with [`Cluster::local`].
    pub fn global() -> Result<Cluster> {
        static GLOBAL: OnceLock<Cluster> = OnceLock::new();
        if let Some(c) = GLOBAL.get() {
            return Ok(c.clone());
        }
        let made = Cluster::local()?;
        Ok(GLOBAL.get_or_init(|| made).clone())
    }

    fn start(hardware: Hardware, plan: Plan, started: Instant) -> Result<Cluster> {
        let threads = Arc::new(Mutex::new(Vec::with_capacity(plan.cpu_threads)));
        let handles = threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.cpu_threads)
            .spawn_handler(move |t| {
                let name = format!("onebox-cpu-{}", t.index());
                // 8 MiB, like a main thread: polars' query planner recurses deeply.
                let handle = std::thread::Builder::new()
                    .name(name)
                    .stack_size(8 << 20)
                    .spawn(move || t.run())?;
                lock(&handles).push(handle);
                Ok(())
            })
            .build()
            .map_err(|e| {
                Error::config(
                    "threads",
                    plan.cpu_threads,
                    format!("the pool could not start: {e}"),
                )
            })?;
        let mut gpus = Vec::with_capacity(plan.gpus.len());
        for (index, &hw_index) in plan.gpus.iter().enumerate() {
            let info = hardware.gpus[hw_index].clone();
            let worker = GpuWorker::start(
                index,
                info,
                plan.streams_per_gpu,
                plan.gpu_memory_limits[index],
            )
            .map_err(|e| Error::Gpu {
                gpu: index,
                message: format!("could not start its worker thread: {e}"),
            })?;
            gpus.push(worker);
        }
        let inner = ClusterInner {
            hardware,
            plan,
            pool: Some(pool),
            pool_threads: threads,
            gpus,
            events: EventBus::new(started),
            started,
            progress: std::sync::atomic::AtomicBool::new(false),
            dashboard: OnceLock::new(),
            managed: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        Ok(Cluster {
            inner: Arc::new(inner),
        })
    }

    pub(crate) fn inner(&self) -> &Arc<ClusterInner> {
        &self.inner
    }

    /// The *managed bytes*: what the finished task outputs the scheduler still holds take, for
    /// the outputs whose size is known (array blocks, bag and frame partitions), like Dask's
    /// managed memory. An output counts from when its task stores it until a consumer takes it
    /// or it is dropped. Outputs of plain [`delayed`](Cluster::delayed) tasks carry no size
    /// and are not counted; process RSS is the whole picture.
    pub fn managed_bytes(&self) -> u64 {
        self.inner
            .managed
            .load(std::sync::atomic::Ordering::Relaxed) as u64
    }

    /// The machine this cluster was sized for.
    pub fn hardware(&self) -> &Hardware {
        &self.inner.hardware
    }

    /// How this cluster was sized.
    pub fn plan(&self) -> &Plan {
        &self.inner.plan
    }

    /// Runs `f` on one of the pool's threads and returns its result, the calling thread
    /// blocking meanwhile (rayon's `install`). A loop of many small computations belongs
    /// there: a pool thread that waits for a graph runs the graph's tasks itself, where a
    /// thread outside the pool sleeps and must be woken for every result, which on some
    /// machines costs tens of microseconds each time.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.inner.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Threads in the CPU pool.
    pub fn threads(&self) -> usize {
        self.inner.plan.cpu_threads
    }

    /// GPUs this cluster uses.
    pub fn gpu_count(&self) -> usize {
        self.inner.gpus.len()
    }

    /// Subscribes to this cluster's [`Event`]s, from now on.
    pub fn events(&self) -> crossbeam::channel::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A lazy task running `f` on the CPU pool.
    pub fn delayed<T, F>(&self, mut f: F) -> Delayed<T>
    where
        T: Clone + Send + 'static,
        F: FnMut() -> T + Send + 'static,
    {
        Delayed::from_node(Node::new(&self.inner, Vec::new(), move |_| Ok(f())))
    }

    /// A lazy task running a fallible `f`; its error fails the task.
    pub fn try_delayed<T, E, F>(&self, mut f: F) -> Delayed<T>
    where
        T: Clone + Send + 'static,
        E: Into<BoxError>,
        F: FnMut() -> std::result::Result<T, E> + Send + 'static,
    {
        Delayed::from_node(Node::new(&self.inner, Vec::new(), move |_| {
            f().map_err(crate::graph::user_error)
        }))
    }

    /// A lazy task on a GPU worker (the least busy one; [`Delayed::on_gpu`] pins one). `f`
    /// gets the GPU's [`GpuContext`]. Without a GPU, computing it fails at once with
    /// [`Error::NoGpu`].
    pub fn delayed_on_gpu<T, F>(&self, mut f: F) -> Delayed<T>
    where
        T: Clone + Send + 'static,
        F: FnMut(&GpuContext) -> std::result::Result<T, BoxError> + Send + 'static,
    {
        let node = Node::new(&self.inner, Vec::new(), move |ctx| match ctx.gpu() {
            Some(gpu) => f(gpu).map_err(crate::graph::user_error),
            None => Err(TaskFailure::Error(Arc::new(Error::Invalid(
                "a GPU task ran off its GPU worker".into(),
            )))),
        });
        node.core().set_placement(Placement::AnyGpu);
        Delayed::from_node(node)
    }

    /// A value already known, as a finished task (to feed other tasks).
    pub fn value<T: Clone + Send + 'static>(&self, value: T) -> Delayed<T> {
        Delayed::from_node(Node::ready_value(&self.inner, value))
    }

    /// Starts `f` now on the CPU pool (like Dask's `client.submit`).
    pub fn submit<T, F>(&self, f: F) -> TaskHandle<T>
    where
        T: Clone + Send + 'static,
        F: FnMut() -> T + Send + 'static,
    {
        self.delayed(f).submit()
    }

    /// Starts `f` now on a GPU worker. See [`Cluster::delayed_on_gpu`].
    pub fn submit_on_gpu<T, F>(&self, f: F) -> TaskHandle<T>
    where
        T: Clone + Send + 'static,
        F: FnMut(&GpuContext) -> std::result::Result<T, BoxError> + Send + 'static,
    {
        self.delayed_on_gpu(f).submit()
    }

    /// Starts one task per item (like Dask's `client.map`): a handle each, in order. For many
    /// tiny items prefer [`Cluster::map`], which groups items into a few tasks.
    pub fn submit_map<I, T, U, F>(&self, items: I, f: F) -> Vec<TaskHandle<U>>
    where
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        U: Clone + Send + 'static,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        items
            .into_iter()
            .map(|item| {
                let (f, mut item) = (f.clone(), Some(item));
                let node = Node::new(&self.inner, Vec::new(), move |_| match item.take() {
                    Some(x) => Ok(f(x)),
                    None => Err(TaskFailure::Error(Arc::new(Error::Invalid(
                        "the item was consumed by an earlier attempt; submit_map tasks cannot retry".into(),
                    )))),
                });
                Delayed::from_node(node).label("map").submit()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn spinning_threads_run_tasks_and_stop_with_their_guard() -> Result<()> {
        let cluster = Cluster::builder().threads(2).build()?;
        assert!(cluster.inner.spin_others().is_none(), "off the pool");
        let (sums, flag) = cluster.install(|| {
            let guard = cluster.inner.spin_others().expect("a pool of two threads");
            let flag = Arc::downgrade(&guard.0);
            let sums = cluster.map(0..64_u64, |i| (0..i).sum::<u64>());
            // A second guard while one lives (nested loops) is fine too.
            drop(cluster.inner.spin_others());
            drop(guard);
            (sums, flag)
        });
        let expected: Vec<u64> = (0..64_u64).map(|i| (0..i).sum()).collect();
        assert_eq!(sums?, expected);
        // Every spinning loop holds the flag: once they have all seen it, none is left.
        let waited = Instant::now();
        while flag.strong_count() > 0 {
            if waited.elapsed() > Duration::from_secs(10) {
                // Dropping the cluster would wait for the spinning thread forever.
                std::mem::forget(cluster);
                panic!("a pool thread still spins 10 s after its guard was dropped");
            }
            std::thread::sleep(Duration::from_millis(1));
        }

        let single = Cluster::builder().threads(1).build()?;
        assert!(single.install(|| single.inner.spin_others().is_none()));
        Ok(())
    }
}
