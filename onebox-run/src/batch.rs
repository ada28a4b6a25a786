//! The one bookkeeping loop of a batch, and the [`Backend`] trait it drives.
//!
//! Wherever a batch runs (child processes on this machine, Slurm job arrays, a Dask
//! scheduler), it is kept the same way: tasks already done are skipped on `--resume`; each task
//! that ends gets a line in the journal and a tick of the progress bar; a signal or
//! [`RunOptions::stop`] stops the running tasks, gently first and for good after a grace
//! period; the records come back in `tasks.yaml` order and the summary is written. That is
//! this module, written once.
//!
//! What differs between executors is behind [`Backend`]: how the tasks are started (and
//! retried, and their files written), how the loop learns what started and what ended, and how
//! running tasks are stopped. A backend places the whole batch itself, because placement is
//! where executors differ most: the local one admits each task as slots free up, on the pool
//! thread that freed them (no other thread wakes between two tasks); Slurm takes a batch as
//! job arrays; Dask as one future per task.
//!
//! ```text
//!   run()  ->  skip what --resume finds done  ->  backend.start()
//!              loop: stop asked? backend.stop(gentle), after its grace backend.stop(hard)
//!                    backend.poll(tick) -> Started / Ended / messages -> journal, progress
//!              backend.unreported(..) for tasks that never said they ended
//!              records in file order (skipped tasks from the journal) -> summary.json
//! ```

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use onebox::{Error, Result};

use crate::progress::Progress;
use crate::results::{self, ResultsDir, Summary, TaskRecord, TaskState, append_journal};
use crate::spec::Task;
use crate::{RunOptions, RunReport, signals};

/// How long the loop waits for news before it looks at signals and the progress bar again.
const TICK: Duration = Duration::from_millis(100);

/// What a backend tells the loop when polled.
pub(crate) enum News {
    /// The task at this position (of the tasks the backend was given) started.
    Started(usize),
    /// The task at this position ended; its `status` file is written.
    Ended(usize, TaskRecord),
    /// Something worth seeing unless progress is off (an array submitted).
    Info(String),
    /// Something always shown (a task's infrastructure error, a client's stray output).
    Problem(String),
}

/// An executor, as the loop drives it. Positions are indices into the tasks the backend was
/// built with (the tasks that run, not those `--resume` skipped).
pub(crate) trait Backend {
    /// Starts the batch: the tasks that fit now, or every task handed to the engine.
    fn start(&mut self, news: &mut Vec<News>) -> Result<()>;

    /// Waits at most about `wait` for news and adds it to `news`. Returns `false` once nothing
    /// more will come: every started task has ended, and nothing else will start.
    fn poll(&mut self, wait: Duration, news: &mut Vec<News>) -> Result<bool>;

    /// Stops the running tasks and starts no more: gently first (SIGTERM, `scancel`, the Dask
    /// client's stop event), then, with `hard`, for good (SIGKILL; stop waiting).
    fn stop(&mut self, hard: bool);

    /// How long running tasks get between the gentle and the hard stop.
    fn grace(&self) -> Duration;

    /// What a gentle stop stops, for the message a person sees ("3 running task(s)").
    fn stopping(&self) -> String;

    /// After the loop: the record of the task at `pos`, which never reported its end (`None`
    /// when it never started: it stays pending).
    fn unreported(&mut self, pos: usize, interrupted: bool) -> Result<Option<TaskRecord>>;
}

/// The journal of finished tasks, `.onebox/journal.jsonl`: one line per task that ended.
struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    fn open(dir: &ResultsDir) -> Result<Journal> {
        let path = dir.journal_file();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Journal { file, path })
    }

    /// Appends `record`; a failure is shown, not fatal: the status files stay authoritative.
    fn append(&mut self, record: &TaskRecord, progress: &Progress) {
        if let Err(e) = append_journal(&mut self.file, record) {
            progress.println(&format!(
                "onebox: cannot append to {}: {e}",
                self.path.display()
            ));
        }
    }
}

/// Runs `tasks` (those with `skip` set are already done) with `backend`, which was built for
/// `to_run`, the tasks not skipped, in order; writes the summary and returns the report.
pub(crate) fn run(
    backend: &mut dyn Backend,
    dir: &ResultsDir,
    tasks: &[Task],
    skip: &[bool],
    to_run: &[Task],
    executor: &str,
    opts: &RunOptions,
) -> Result<RunReport> {
    let started = SystemTime::now();
    let earlier = dir.read_journal();
    let progress = Progress::new(opts.progress, to_run.len());
    if to_run.len() < tasks.len() {
        progress.info(&format!(
            "onebox: resuming {}: {} task(s) already done, {} to run",
            opts.name,
            tasks.len() - to_run.len(),
            to_run.len()
        ));
    }
    let mut journal = Journal::open(dir)?;
    let outcome = drive(backend, to_run, opts, &progress, &mut journal);
    progress.finish();
    let (ran, interrupted) = outcome?;

    let mut ran = ran.into_iter();
    let records: Vec<TaskRecord> = tasks
        .iter()
        .zip(skip)
        .map(|(t, &skipped)| {
            let ran = if skipped { None } else { ran.next().flatten() };
            ran.unwrap_or_else(|| {
                if !skipped {
                    return TaskRecord::pending(&t.name, t.index);
                }
                let mut r = earlier
                    .get(&t.name)
                    .cloned()
                    .unwrap_or_else(|| TaskRecord::pending(&t.name, t.index));
                r.index = t.index;
                r.state = TaskState::Done;
                r.exit_code = Some(0);
                r
            })
        })
        .collect();
    let summary = Summary {
        name: opts.name.clone(),
        executor: executor.to_owned(),
        started: results::rfc3339(started),
        ended: results::rfc3339(SystemTime::now()),
        counts: results::counts(&records),
        tasks: records.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&summary).map_err(|e| Error::Invalid(format!("summary: {e}")))?;
    results::write_atomic(&dir.summary_file(), &json)?;
    Ok(RunReport {
        name: opts.name.clone(),
        results_dir: dir.root().to_owned(),
        tasks: records,
        interrupted,
    })
}

/// True once SIGINT, SIGTERM, SIGHUP or SIGQUIT arrived or [`RunOptions::stop`] was set.
fn stop_asked(opts: &RunOptions) -> bool {
    opts.stop.load(Ordering::SeqCst) || signals::received().is_some()
}

/// The loop: starts the backend, follows it until nothing more will come, stops it when
/// asked. Returns each task's record (by position) and whether the run was interrupted.
fn drive(
    backend: &mut dyn Backend,
    tasks: &[Task],
    opts: &RunOptions,
    progress: &Progress,
    journal: &mut Journal,
) -> Result<(Vec<Option<TaskRecord>>, bool)> {
    let mut records: Vec<Option<TaskRecord>> = vec![None; tasks.len()];
    let mut news = Vec::new();
    let mut take = |news: &mut Vec<News>, records: &mut Vec<Option<TaskRecord>>| {
        for n in news.drain(..) {
            match n {
                News::Started(pos) => progress.started(&tasks[pos].name),
                News::Ended(pos, record) => {
                    journal.append(&record, progress);
                    progress.ended(&record);
                    records[pos] = Some(record);
                }
                News::Info(msg) => progress.info(&msg),
                News::Problem(msg) => progress.println(&msg),
            }
        }
    };
    let mut stopping: Option<Instant> = None;
    let mut stopped_hard = false;
    let mut live = false;
    if !tasks.is_empty() {
        if stop_asked(opts) {
            opts.stop.store(true, Ordering::SeqCst);
            stopping = Some(Instant::now());
        } else {
            let started = backend.start(&mut news);
            take(&mut news, &mut records);
            started?;
            live = true;
        }
    }
    while live {
        match stopping {
            None if stop_asked(opts) => {
                opts.stop.store(true, Ordering::SeqCst);
                progress.println(&format!(
                    "onebox: interrupted: {}; `--resume` finishes the rest",
                    backend.stopping()
                ));
                backend.stop(false);
                stopping = Some(Instant::now());
            }
            Some(at) if !stopped_hard && at.elapsed() >= backend.grace() => {
                backend.stop(true);
                stopped_hard = true;
            }
            _ => {}
        }
        let polled = backend.poll(TICK, &mut news);
        take(&mut news, &mut records);
        live = polled?;
        progress.tick();
    }
    let interrupted = stopping.is_some();
    for pos in 0..tasks.len() {
        if records[pos].is_none()
            && let Some(record) = backend.unreported(pos, interrupted)?
        {
            news.push(News::Ended(pos, record));
            take(&mut news, &mut records);
        }
    }
    Ok((records, interrupted))
}
