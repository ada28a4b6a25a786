//! # onebox-run: job batches on one machine, on Slurm or on Dask
//!
//! Saturn Run's `run.yaml` and `tasks.yaml`, run on every core and GPU of this machine (on a
//! [`onebox::Cluster`]), as Slurm job arrays, or on a Dask scheduler; and the `onebox` command
//! (`onebox info`, `onebox run`, `onebox status`).
//!
//! A **batch** is a list of shell commands (tasks) that do not depend on each other: a
//! parameter sweep, one model per fold, one file per job. Two files describe it, accepted as
//! Saturn Run writes them:
//!
//! ```yaml
//! # run.yaml: how and where
//! executor:
//!   class_spec: DaskExecutor       # or LocalExecutor; SlurmExecutor for several machines
//!   cluster_class: LocalCluster
//! results:
//!   class_spec: LocalResults
//!   path: /tmp/results/{name}      # {name} is the run's name
//! ```
//!
//! ```yaml
//! # tasks.yaml: what
//! tasks:
//!   - command: julia fibonacci.jl 12
//!     name: fib-12                 # default: the task's index
//!   - command: [python, train.py, --fold, "3"]   # a list runs without a shell
//!     cpus: 4                      # onebox's additions: cpus, gpus, env, timeout, retries, workdir
//!     gpus: 1
//!     timeout: 2h
//!     retries: 2
//! ```
//!
//! `onebox run run.yaml tasks.yaml --name nightly` runs every task as a child process, as many
//! at once as the CPU slots and GPUs allow (a task that asks for GPUs gets its own, named in
//! `CUDA_VISIBLE_DEVICES`), and writes one directory per task under the results path (see
//! [`results`] for the layout). A failed task does not stop the others; the run fails if any
//! task failed. `--resume` runs only the tasks whose `status` is not `0`; `onebox status` shows
//! where each task stands. Each task sees `RESULTS_DIR` (its `results/` directory),
//! `ONEBOX_TASK_NAME`, `ONEBOX_RANK` (its index in the file) and, for scripts written for Saturn
//! Run, `SATURN_RUN_LOCAL_RANK` (its slot, or its first GPU's index when it has GPUs).
//!
//! On the command line:
//!
//! ```text
//! onebox run RUN_YAML TASKS_YAML --name N     # or --prefix P: P-20261126T124338Z
//!            [--resume | --overwrite] [--max-parallel K] [--dry-run] [-q]
//! onebox status --name N [--json]             # a run started on this machine
//! onebox status RUN_YAML --name N [--json]    # as `saturn collect`: run.yaml finds the results
//! onebox status --path RESULTS_DIR [--json]
//! ```
//!
//! `onebox run` exits 0 when every task exited 0, 1 when some task failed, 130 when it was
//! interrupted, and 2 when the batch could not run at all (bad input, results not writable).
//! A results path that is relative is taken from where `onebox run` is started.
//!
//! The same files run on Slurm with `class_spec: SlurmExecutor`: tasks become job arrays, and
//! the results directory (on a filesystem the nodes share) has the same layout. See [`slurm`].
//! With `class_spec: DaskExecutor` and a `scheduler_address`, they run on that Dask cluster
//! through a small Python client the crate ships. See [`dask`].
//!
//! From Rust:
//!
//! ```
//! use onebox_run::{self as run, RunOptions, ProgressMode};
//! let dir = tempfile::tempdir()?;
//! let spec = run::spec::parse_run(
//!     &format!("results:\n  class_spec: LocalResults\n  path: {}/{{name}}\n", dir.path().display()),
//!     "run.yaml",
//! )?;
//! let tasks = run::spec::parse_tasks("tasks:\n  - command: echo hi\n    name: hello\n", "tasks.yaml")?;
//! let opts = RunOptions { progress: ProgressMode::Quiet, ..RunOptions::new("demo") };
//! let report = run::run(&spec, &tasks, &opts)?;
//! assert!(report.succeeded());
//! let out = std::fs::read_to_string(dir.path().join("demo/hello/stdout"))?;
//! assert_eq!(out, "hi\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every running task is a task of one [`Cluster`](onebox::Cluster) (labelled with its name):
//! its pool has one thread per slot, and the thread waits on the child process. The slots and
//! GPUs come from the same hardware detection that sizes a cluster (`ONEBOX_THREADS` and
//! `ONEBOX_GPUS` apply).
//!
//! Inside, one bookkeeping loop (`batch`) keeps every batch, whatever runs it: the journal,
//! the progress bar, stopping with a grace period, `--resume` and the order of the records.
//! The executors ([`local`], [`slurm`], [`dask`]) are backends it drives: each starts the
//! tasks its own way, reports what started and ended when polled, and stops them when asked.

#![warn(missing_docs)]

mod batch;
pub mod dask;
pub mod local;
mod progress;
mod reaper;
pub mod results;
pub mod signals;
pub mod slurm;
pub mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use onebox::{Error, Result};

use batch::Backend;
pub use local::Slots;
pub use progress::ProgressMode;
pub use results::{ResultsDir, RunInfo, RunLock, Summary, TaskRecord, TaskState};
pub use spec::{Executor, RunSpec, Task};

/// How to run a batch: what `onebox run`'s flags set.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run's name (`{name}` in the results path).
    pub name: String,
    /// Skip the tasks whose `status` is `0` from an earlier run of the same name.
    pub resume: bool,
    /// Delete the earlier results of the same name first (without it, or `resume`, existing
    /// results are an error).
    pub overwrite: bool,
    /// At most this many tasks at once (default: the CPU budget).
    pub max_parallel: Option<usize>,
    /// Check everything and print what would run, without running or writing anything.
    pub dry_run: bool,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Stop the run as SIGINT would: set it from another thread to interrupt.
    pub stop: Arc<AtomicBool>,
    /// Serve the live dashboard of a local run at this address (`127.0.0.1:8787`, or a port).
    pub dashboard: Option<String>,
}

impl RunOptions {
    /// Options for a run called `name`, everything else by default.
    pub fn new(name: impl Into<String>) -> RunOptions {
        RunOptions {
            name: name.into(),
            resume: false,
            overwrite: false,
            max_parallel: None,
            dry_run: false,
            progress: ProgressMode::Auto,
            stop: Arc::new(AtomicBool::new(false)),
            dashboard: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run's name.
    pub name: String,
    /// Its results directory.
    pub results_dir: PathBuf,
    /// Every task, in `tasks.yaml` order (tasks skipped by `--resume` are `Done`).
    pub tasks: Vec<TaskRecord>,
    /// True when a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) or [`RunOptions::stop`] cut the run short.
    pub interrupted: bool,
}

impl RunReport {
    /// True when every task is done (exited 0).
    pub fn succeeded(&self) -> bool {
        !self.interrupted && self.tasks.iter().all(|t| t.state == TaskState::Done)
    }
    /// How many tasks are in `state`.
    pub fn count(&self, state: TaskState) -> usize {
        self.tasks.iter().filter(|t| t.state == state).count()
    }
}

/// A run name made of `prefix` and the current UTC time (`--prefix`).
pub fn name_from_prefix(prefix: &str) -> String {
    let stamp = results::compact_timestamp(SystemTime::now());
    if prefix.is_empty() || prefix.ends_with(['-', '_', '.']) {
        format!("{prefix}{stamp}")
    } else {
        format!("{prefix}-{stamp}")
    }
}

/// The results directory of the run `name`.
pub fn results_dir(spec: &RunSpec, name: &str) -> Result<ResultsDir> {
    spec::check_name(name).map_err(|why| Error::Invalid(format!("run name: {why}")))?;
    let path = spec::expand_home(&spec.results_path.replace("{name}", name));
    Ok(ResultsDir::new(path))
}

/// Runs a batch: checks it, prepares its results directory, syncs files, runs the tasks with
/// the spec's executor, and writes the summary. Task failures are in the report, not errors;
/// an error means the batch could not run (bad input, results not writable, Slurm refused it).
pub fn run(spec: &RunSpec, tasks: &[Task], opts: &RunOptions) -> Result<RunReport> {
    let dir = results_dir(spec, &opts.name)?;
    let engine = match &spec.executor {
        Executor::Local { slots } => {
            let s = Slots::detect(opts.max_parallel.or(*slots))?;
            s.check(tasks)?;
            Engine::Local(s)
        }
        Executor::Slurm(s) => Engine::Slurm(s),
        Executor::Dask(d) => Engine::Dask(d),
    };
    for f in &spec.file_syncs {
        if let Err(e) = std::fs::metadata(&f.src) {
            return Err(Error::Invalid(format!(
                "file_syncs: the source {} cannot be read: {e}",
                f.src.display()
            )));
        }
    }
    let skip: Vec<bool> = tasks
        .iter()
        .map(|t| opts.resume && dir.is_done(&t.name))
        .collect();
    if opts.dry_run {
        print_plan(spec, &engine, tasks, &skip, &dir);
        return Ok(RunReport {
            name: opts.name.clone(),
            results_dir: dir.root().to_owned(),
            tasks: tasks
                .iter()
                .map(|t| TaskRecord::pending(&t.name, t.index))
                .collect(),
            interrupted: false,
        });
    }
    let _lock = prepare(&dir, spec, tasks, opts)?;
    remember(&opts.name, &dir);
    sync_files(&spec.file_syncs)?;

    let to_run: Vec<Task> = tasks
        .iter()
        .zip(&skip)
        .filter(|(_, s)| !**s)
        .map(|(t, _)| t.clone())
        .collect();
    let mut backend: Box<dyn Backend> = match engine {
        Engine::Local(slots) => Box::new(local::Local::new(&dir, &to_run, &slots, opts)?),
        Engine::Slurm(s) => Box::new(slurm::Slurm::new(&dir, &to_run, s, &opts.name)),
        Engine::Dask(d) => Box::new(dask::Dask::new(&dir, &to_run, d)),
    };
    batch::run(
        backend.as_mut(),
        &dir,
        tasks,
        &skip,
        &to_run,
        executor_name(spec),
        opts,
    )
}

/// Where a checked batch will run: the executor of `run.yaml`, with the local slots sized.
enum Engine<'a> {
    Local(Slots),
    Slurm(&'a spec::SlurmOptions),
    Dask(&'a spec::DaskOptions),
}

fn executor_name(spec: &RunSpec) -> &'static str {
    match spec.executor {
        Executor::Local { .. } => "local",
        Executor::Slurm(_) => "slurm",
        Executor::Dask(_) => "dask",
    }
}

/// Creates the results directory and checks it can be written; refuses to mix a new run
/// with an old one of the same name unless asked to resume or overwrite.
fn prepare(dir: &ResultsDir, spec: &RunSpec, tasks: &[Task], opts: &RunOptions) -> Result<RunLock> {
    let root = dir.root();
    let cannot = |e: std::io::Error| {
        Error::Invalid(format!(
            "the results path {} cannot be written: {e}",
            root.display()
        ))
    };
    std::fs::create_dir_all(dir.state_dir()).map_err(cannot)?;
    let lock = dir.try_lock()?;
    let info = dir.read_run_info().ok().flatten();
    let jobs_queued = info
        .as_ref()
        .is_some_and(|i| !dir.summary_file().exists() && slurm_jobs_queued(i));
    let Some(lock) = lock.filter(|_| !jobs_queued) else {
        let who = match &info {
            Some(i) if jobs_queued => format!("Slurm jobs {}", i.slurm_jobs.join(",")),
            Some(i) => format!("process {} on {}", i.pid, i.host),
            None => "another onebox run".to_owned(),
        };
        return Err(Error::Invalid(format!(
            "run {} is already running ({who}); wait for it or stop it first",
            opts.name
        )));
    };
    let earlier = dir.summary_file().exists()
        || tasks
            .iter()
            .any(|t| dir.task(&t.name).join("status").exists());
    if earlier && !opts.resume {
        if !opts.overwrite {
            return Err(Error::Invalid(format!(
                "run {} already has results in {}: pass --resume to finish it, --overwrite to start over, or another --name",
                opts.name,
                root.display()
            )));
        }
        for t in tasks {
            let p = dir.task(&t.name);
            if p.exists() {
                std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        for p in [dir.summary_file(), dir.journal_file()] {
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    if !opts.resume && dir.journal_file().exists() && !earlier {
        let p = dir.journal_file();
        std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
    }
    let _ = std::fs::remove_file(dir.summary_file());
    let info = RunInfo {
        name: opts.name.clone(),
        executor: executor_name(spec).to_owned(),
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
        host: results::hostname(),
        pid: std::process::id(),
        started: results::rfc3339(SystemTime::now()),
        slurm_jobs: Vec::new(),
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Invalid(e.to_string()))?;
    results::write_atomic(&dir.run_info_file(), &json).map_err(|e| match e {
        Error::Io { source, .. } => cannot(source),
        other => other,
    })?;
    Ok(lock)
}

fn print_plan(spec: &RunSpec, engine: &Engine, tasks: &[Task], skip: &[bool], dir: &ResultsDir) {
    println!("results  {}", dir.root().display());
    match engine {
        Engine::Slurm(s) => println!(
            "executor slurm ({} task(s) per array element{})",
            s.tasks_per_job,
            s.partition
                .as_ref()
                .map(|p| format!(", partition {p}"))
                .unwrap_or_default()
        ),
        Engine::Dask(d) => println!("executor dask (scheduler {})", d.scheduler_address),
        Engine::Local(s) => println!(
            "executor local ({} CPU slots, at most {} at once, {} GPU(s))",
            s.cpus,
            s.max_parallel,
            s.gpus.len()
        ),
    }
    for f in &spec.file_syncs {
        println!("sync     {} -> {}", f.src.display(), f.dest.display());
    }
    for (t, &skipped) in tasks.iter().zip(skip) {
        let what = if skipped { "skip" } else { "run " };
        let mut extra = format!("cpus={}", t.cpus);
        if let Some(g) = t.gpus {
            extra.push_str(&format!(" gpus={g}"));
        }
        if let Some(d) = t.timeout {
            extra.push_str(&format!(" timeout={}s", d.as_secs_f64()));
        }
        if t.retries > 0 {
            extra.push_str(&format!(" retries={}", t.retries));
        }
        let cmd = match &t.command {
            spec::CommandLine::Text(s) => s.clone(),
            spec::CommandLine::Argv(a) => a
                .iter()
                .map(|w| spec::shell_quote(w))
                .collect::<Vec<_>>()
                .join(" "),
        };
        println!("{what}     {}  [{extra}]  {cmd}", t.name);
    }
}

/// Where onebox remembers which results directory each run name used (so that
/// `onebox status --name N` finds it): `$ONEBOX_STATE_DIR`, else `$XDG_STATE_HOME/onebox`,
/// else `~/.local/state/onebox`.
pub fn state_home() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("ONEBOX_STATE_DIR")
        .or_else(|| env("XDG_STATE_HOME").map(|p| p.join("onebox")))
        .or_else(|| env("HOME").map(|p| p.join(".local/state/onebox")))
}

/// Remembers that the run `name` writes to `dir` (best effort: the run does not depend on it).
fn remember(name: &str, dir: &ResultsDir) {
    if let Some(home) = state_home() {
        let runs = home.join("runs");
        if std::fs::create_dir_all(&runs).is_ok() {
            let _ = results::write_atomic(
                &runs.join(name),
                format!("{}\n", dir.root().display()).as_bytes(),
            );
        }
    }
}

/// The results directory the run `name` used, as remembered by `onebox run` on this machine.
pub fn find_run(name: &str) -> Result<ResultsDir> {
    spec::check_name(name).map_err(|why| Error::Invalid(format!("run name: {why}")))?;
    let remembered = state_home()
        .map(|h| h.join("runs").join(name))
        .and_then(|p| std::fs::read_to_string(p).ok());
    match remembered {
        Some(path) => Ok(ResultsDir::new(path.trim_end_matches('\n'))),
        None => Err(Error::Invalid(format!(
            "no run named {name} was started here; give its run.yaml (`onebox status run.yaml --name {name}`) or its results directory (`--path`)"
        ))),
    }
}

/// The records of the run `name`, from its results directory.
pub fn status(spec: &RunSpec, name: &str) -> Result<(ResultsDir, Vec<TaskRecord>)> {
    let dir = results_dir(spec, name)?;
    let records = status_at(&dir)?;
    Ok((dir, records))
}

/// The records of the run whose results directory is `dir`.
pub fn status_at(dir: &ResultsDir) -> Result<Vec<TaskRecord>> {
    let info = dir.read_run_info()?.ok_or_else(|| {
        Error::Invalid(format!(
            "{} holds no onebox run (no {}/run.json)",
            dir.root().display(),
            results::STATE_DIR
        ))
    })?;
    let live = dir.is_locked() || slurm_jobs_queued(&info);
    Ok(results::collect(dir, &info, live))
}

/// True while Slurm still lists jobs of the run (queued or running), whether or not the
/// `onebox run` that submitted them is alive.
fn slurm_jobs_queued(info: &RunInfo) -> bool {
    !info.slurm_jobs.is_empty() && slurm::queued(&info.slurm_jobs).unwrap_or(0) > 0
}

/// Copies `src` into `dest` for each entry: files that are missing or differ in size or
/// modification time are copied (and get `src`'s modification time), `.git` is skipped, and
/// an entry whose `src` and `dest` are the same place does nothing.
pub fn sync_files(syncs: &[spec::FileSync]) -> Result<()> {
    for s in syncs {
        let src = std::fs::canonicalize(&s.src).map_err(|e| Error::io(&s.src, e))?;
        let same = std::fs::canonicalize(&s.dest).is_ok_and(|d| d == src);
        if same {
            continue;
        }
        if s.dest.starts_with(&src) || s.dest.starts_with(&s.src) {
            return Err(Error::Invalid(format!(
                "file_syncs: dest {} is inside src {}",
                s.dest.display(),
                s.src.display()
            )));
        }
        copy_tree(&src, &s.dest)?;
    }
    Ok(())
}

fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(src).map_err(|e| Error::io(src, e))?;
    if meta.is_dir() {
        std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        let entries = std::fs::read_dir(src).map_err(|e| Error::io(src, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(src, e))?;
            if entry.file_name() == ".git" {
                continue;
            }
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
        return Ok(());
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| Error::io(src, e))?;
        if std::fs::read_link(dest).ok().as_ref() != Some(&target) {
            let _ = std::fs::remove_file(dest);
            std::os::unix::fs::symlink(&target, dest).map_err(|e| Error::io(dest, e))?;
        }
        return Ok(());
    }
    let up_to_date = std::fs::metadata(dest).is_ok_and(|d| {
        d.is_file() && d.len() == meta.len() && d.modified().ok() == meta.modified().ok()
    });
    if up_to_date {
        return Ok(());
    }
    std::fs::copy(src, dest).map_err(|e| Error::io(dest, e))?;
    if let Ok(mtime) = meta.modified() {
        let f = std::fs::File::options()
            .write(true)
            .open(dest)
            .map_err(|e| Error::io(dest, e))?;
        f.set_modified(mtime).map_err(|e| Error::io(dest, e))?;
    }
    Ok(())
}
