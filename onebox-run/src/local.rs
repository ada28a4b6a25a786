//! The local executor: each task a child process, as many at once as the slots allow.
//!
//! The batch has a budget of CPU slots (the cluster's CPU budget, or `--max-parallel`) and the
//! cluster's GPUs. A task is admitted when its `cpus` and `gpus` are free: tasks are taken in
//! file order, and a later task that fits starts while an earlier, bigger one waits for room
//! (backfill). An admitted task becomes a task of a [`Cluster`] (labelled with its name, so the
//! event stream sees it) whose pool has one thread per slot: the thread starts the child in its
//! own process group, with stdout and stderr going straight into the task's files, and waits.
//! A shell command the shell would only split into words (`julia fib.jl 12`) starts its
//! program directly, without a shell in between (see [`without_shell`]).
//! When the task's main process exits, whatever it left running in its process group is
//! killed: a task's processes never outlive it. The thread that saw a task end frees its slots
//! and admits the next task itself, which then runs on that same thread: between two tasks no
//! other thread has to wake up, so a busy machine delays a batch of short tasks no more than
//! it delays `xargs -P`.
//!
//! A task with `gpus: N` gets `N` GPUs no running task holds, named in `CUDA_VISIBLE_DEVICES`
//! by UUID (right whatever `CUDA_VISIBLE_DEVICES` onebox itself was started with), and
//! `SATURN_RUN_LOCAL_RANK` is its first GPU's index; `gpus: 0` hides every GPU; a task that
//! does not say keeps the environment it inherits.
//!
//! The [bookkeeping loop](crate::batch), meanwhile, polls this backend: each poll passes on
//! what started and ended, fills slots no pool thread could, and kills the process group of a
//! task past its timeout. When the loop stops the run, admitting stops, every running group
//! gets SIGTERM, then SIGKILL after the grace period, and those tasks are marked
//! `interrupted`.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam::channel::{self, RecvTimeoutError};

use onebox::{Cluster, Error, Result};

use crate::RunOptions;
use crate::batch::{Backend, News};
use crate::reaper::{MARK, Reaper};
use crate::results::{
    self, INTERRUPTED, ResultsDir, TIMEOUT_EXIT, TaskRecord, TaskState, write_atomic,
};
use crate::spec::{Task, without_shell};

/// How long running tasks get between SIGTERM and SIGKILL when a run is interrupted.
const GRACE: Duration = Duration::from_secs(2);

/// The machine's slots: CPU slots and GPUs (by their UUID, or index when unknown).
#[derive(Debug, Clone)]
pub struct Slots {
    /// CPU slots.
    pub cpus: usize,
    /// At most this many tasks at once.
    pub max_parallel: usize,
    /// The GPUs, as `CUDA_VISIBLE_DEVICES` should name them.
    pub gpus: Vec<String>,
}

impl Slots {
    /// Slots from the detected hardware and the `ONEBOX_*` settings, as the cluster is sized.
    /// A `max_parallel` above the CPU budget raises the CPU slots to it (for tasks that mostly
    /// wait, such as downloads); below it, it only caps how many tasks run at once.
    pub fn detect(max_parallel: Option<usize>) -> Result<Slots> {
        let hw = onebox::Hardware::detect();
        let plan = onebox::Plan::new(&hw, &onebox::Settings::from_env()?)?;
        let gpus = plan
            .gpus
            .iter()
            .map(|&i| {
                let g = &hw.gpus[i];
                if g.uuid.is_empty() {
                    g.index.to_string()
                } else {
                    g.uuid.clone()
                }
            })
            .collect();
        let cpus = plan.cpu_threads;
        Ok(Slots {
            cpus: max_parallel.map_or(cpus, |m| m.max(cpus)),
            max_parallel: max_parallel.unwrap_or(cpus).max(1),
            gpus,
        })
    }

    /// An error naming the first task that can never fit.
    pub fn check(&self, tasks: &[Task]) -> Result<()> {
        for t in tasks {
            if t.cpus > self.cpus {
                return Err(Error::Invalid(format!(
                    "task {} asks for {} CPUs, but this machine has {} CPU slots",
                    t.name, t.cpus, self.cpus
                )));
            }
            if let Some(g) = t.gpus
                && g > self.gpus.len()
            {
                return Err(Error::NoGpu {
                    what: format!("task {}", t.name),
                    requested: format!("{g} GPUs"),
                    available: self.gpus.len(),
                });
            }
        }
        Ok(())
    }
}

/// Locks `m`, also after a thread panicked while holding it: the books stay usable, and a
/// panic on a pool thread is already turned into the task's failure.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

const NOT_KILLED: u8 = 0;
const KILLED_TIMEOUT: u8 = 1;
const KILLED_INTERRUPT: u8 = 2;

/// What the books know about a running task; shared with the thread that waits on it.
struct Running {
    /// The process group of the current attempt and when it must end.
    child: Mutex<Option<(i32, Option<Instant>)>>,
    killed: AtomicU8,
}

impl Running {
    fn kill(&self, signal: i32, why: u8) {
        let child = lock(&self.child);
        if let Some((pgid, _)) = *child {
            if why != NOT_KILLED {
                self.killed.store(why, Ordering::SeqCst);
            }
            // SAFETY: kill(2) on a process group we started; the lock keeps the child unreaped.
            unsafe {
                libc::kill(-pgid, signal);
            }
        }
    }
}

/// A running task's place in the books: its shared state, its GPUs, its index.
type Lane = (Arc<Running>, Vec<usize>, usize);

/// What the pool threads tell the books' thread, which keeps the journal and the progress.
enum Note {
    /// A pool thread started the task at this index as its previous one ended.
    Started(usize),
    /// The task at this index ended.
    Ended(usize, TaskRecord),
}

/// A task just admitted: its index, its lane, its GPUs and the state the books kill through.
struct Admitted {
    idx: usize,
    lane: usize,
    gpu_ids: Vec<usize>,
    state: Arc<Running>,
}

/// The slots and the queue, shared by the books' thread and the pool threads: whoever frees a
/// slot admits the next task into it, so a job ending starts the next one on the same thread
/// without waking any other.
struct Books {
    pending: VecDeque<usize>,
    free_cpus: usize,
    free_gpus: Vec<bool>,
    lanes: Vec<Option<Lane>>,
    running: usize,
    /// Tasks admitted so far; the run is over when as many have been recorded as ended.
    admitted: usize,
}

impl Books {
    /// The first pending task that fits the free slots, in file order (a later, smaller task
    /// backfills while an earlier, bigger one waits), now marked running; `None` if none fits.
    fn admit(&mut self, tasks: &[Task]) -> Option<Admitted> {
        if self.running >= self.lanes.len() || self.free_cpus == 0 {
            return None;
        }
        for i in 0..self.pending.len() {
            let t = &tasks[self.pending[i]];
            let want_gpus = t.gpus.unwrap_or(0);
            let gpu_ids: Vec<usize> = (0..self.free_gpus.len())
                .filter(|&g| self.free_gpus[g])
                .take(want_gpus)
                .collect();
            if t.cpus > self.free_cpus || gpu_ids.len() < want_gpus {
                continue;
            }
            let idx = self.pending.remove(i)?;
            let lane = self.lanes.iter().position(Option::is_none)?;
            self.free_cpus -= t.cpus;
            for &g in &gpu_ids {
                self.free_gpus[g] = false;
            }
            let state = Arc::new(Running {
                child: Mutex::new(None),
                killed: AtomicU8::new(NOT_KILLED),
            });
            self.lanes[lane] = Some((state.clone(), gpu_ids.clone(), idx));
            self.running += 1;
            self.admitted += 1;
            return Some(Admitted {
                idx,
                lane,
                gpu_ids,
                state,
            });
        }
        None
    }

    /// Frees the slots of the task in `lane`.
    fn release(&mut self, lane: usize, tasks: &[Task]) {
        if let Some((_, gpu_ids, idx)) = self.lanes[lane].take() {
            self.free_cpus += tasks[idx].cpus;
            for g in gpu_ids {
                self.free_gpus[g] = true;
            }
            self.running -= 1;
        }
    }
}

/// Everything a task needs to run, cloned into its closure.
struct JobSpec {
    task: Task,
    /// What to start: the task's argv, without the shell where it has nothing to do.
    argv: Vec<String>,
    dir: PathBuf,
    env: Vec<(String, String)>,
    host: String,
}

/// What every pool thread shares to run tasks and admit the next ones.
struct Shared {
    cluster: Cluster,
    tasks: Vec<Task>,
    dir: ResultsDir,
    slots: Slots,
    host: String,
    books: Mutex<Books>,
    stop: Arc<AtomicBool>,
    notes: channel::Sender<Note>,
    /// Kills the running tasks' groups if this process dies (see [`crate::reaper`]).
    reaper: Option<Reaper>,
    /// The mark in every task's environment (`ONEBOX_RUNNER_ID`), unique to this run.
    runner_id: String,
}

/// Starts an admitted task as a task of the cluster, labelled with its name (so the event
/// stream and the dashboard see each task of the batch).
fn start(shared: &Arc<Shared>, admitted: Admitted) {
    let name = shared.tasks[admitted.idx].name.clone();
    let for_task = shared.clone();
    let mut admitted = Some(admitted); // the task runs once: it has no retries
    let _handle = shared
        .cluster
        .delayed(move || {
            if let Some(a) = admitted.take() {
                run_admitted(&for_task, a);
            }
        })
        .label(&name)
        .submit();
}

/// Runs one admitted task on a pool thread; then, unless the run is stopping, starts the
/// next task that fits the slots it frees (submitted from this thread, it runs next on this
/// thread: no other thread wakes up between two tasks), and reports the end.
fn run_admitted(shared: &Arc<Shared>, admitted: Admitted) {
    let Admitted {
        idx,
        lane,
        gpu_ids,
        state,
    } = admitted;
    let t = &shared.tasks[idx];
    let job = job_spec(shared, t, lane, &gpu_ids);
    // A panic must still free the slot: the books wait for every record.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_job(&job, &state, &shared.stop, shared.reaper.as_ref())
    }));
    let record = ran.unwrap_or_else(|_| {
        let mut r = TaskRecord::pending(&t.name, t.index);
        r.state = TaskState::Failed;
        r
    });
    let next = {
        let mut books = lock(&shared.books);
        books.release(lane, &shared.tasks);
        if shared.stop.load(Ordering::SeqCst) {
            None
        } else {
            books.admit(&shared.tasks)
        }
    };
    if let Some(next) = next {
        let _ = shared.notes.send(Note::Started(next.idx));
        start(shared, next);
    }
    let _ = shared.notes.send(Note::Ended(idx, record));
}

/// The local executor as the bookkeeping loop drives it.
pub(crate) struct Local {
    shared: Arc<Shared>,
    notes: channel::Receiver<Note>,
    /// Tasks whose end the loop has been told of.
    ended: usize,
    stopping: bool,
}

impl Local {
    /// A backend for `tasks` on `slots`, with its cluster (and dashboard, if asked) started.
    pub(crate) fn new(
        dir: &ResultsDir,
        tasks: &[Task],
        slots: &Slots,
        opts: &RunOptions,
    ) -> Result<Local> {
        let threads = slots.max_parallel.min(tasks.len()).max(1);
        let mut builder = Cluster::builder()
            .threads(threads)
            .gpus(0)
            .memory_limit("1GB")
            .ignore_env()
            .progress(false);
        if let Some(addr) = &opts.dashboard {
            builder = builder.dashboard(addr.clone());
        }
        let cluster = builder.build()?;
        if let Some(url) = cluster.dashboard_url() {
            eprintln!("onebox: dashboard at {url}");
        }
        let runner_id = format!(
            "{}-{}-{}",
            results::hostname(),
            std::process::id(),
            SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let reaper = match Reaper::start(&runner_id) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!(
                    "onebox: cannot start /bin/sh to watch the tasks ({e}): if onebox itself is killed, its running tasks will not be"
                );
                None
            }
        };
        let (tx, rx) = channel::unbounded::<Note>();
        let shared = Arc::new(Shared {
            cluster,
            tasks: tasks.to_vec(),
            dir: dir.clone(),
            slots: slots.clone(),
            host: results::hostname(),
            books: Mutex::new(Books {
                pending: (0..tasks.len()).collect(),
                free_cpus: slots.cpus,
                free_gpus: vec![true; slots.gpus.len()],
                lanes: vec![None; threads],
                running: 0,
                admitted: 0,
            }),
            stop: opts.stop.clone(),
            notes: tx,
            reaper,
            runner_id,
        });
        Ok(Local {
            shared,
            notes: rx,
            ended: 0,
            stopping: false,
        })
    }

    /// Starts the pending tasks that fit the free slots (at the start, and when a pool thread
    /// found nothing to take).
    fn fill(&self, news: &mut Vec<News>) {
        while let Some(next) = lock(&self.shared.books).admit(&self.shared.tasks) {
            news.push(News::Started(next.idx));
            start(&self.shared, next);
        }
    }

    fn signal_all(&self, signal: i32) {
        for (state, _, _) in lock(&self.shared.books).lanes.iter().flatten() {
            state.kill(signal, KILLED_INTERRUPT);
        }
    }
}

impl Backend for Local {
    fn start(&mut self, news: &mut Vec<News>) -> Result<()> {
        self.fill(news);
        Ok(())
    }

    fn poll(&mut self, wait: Duration, news: &mut Vec<News>) -> Result<bool> {
        let next_deadline = lock(&self.shared.books)
            .lanes
            .iter()
            .flatten()
            .filter_map(|(r, _, _)| lock(&r.child).and_then(|(_, d)| d))
            .min();
        let wait = next_deadline.map_or(wait, |d| {
            d.saturating_duration_since(Instant::now()).min(wait)
        });
        match self.notes.recv_timeout(wait) {
            Ok(first) => {
                for note in std::iter::once(first).chain(self.notes.try_iter()) {
                    match note {
                        Note::Started(idx) => news.push(News::Started(idx)),
                        Note::Ended(idx, record) => {
                            self.ended += 1;
                            news.push(News::Ended(idx, record));
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        }
        // Timeouts.
        let now = Instant::now();
        for (state, _, _) in lock(&self.shared.books).lanes.iter().flatten() {
            let overdue = lock(&state.child).is_some_and(|(_, d)| d.is_some_and(|d| d <= now));
            if overdue {
                state.kill(libc::SIGKILL, KILLED_TIMEOUT);
            }
        }
        if !self.stopping {
            self.fill(news);
        }
        let books = lock(&self.shared.books);
        let over = self.ended == books.admitted && (books.pending.is_empty() || self.stopping);
        Ok(!over)
    }

    fn stop(&mut self, hard: bool) {
        self.stopping = true;
        self.shared.stop.store(true, Ordering::SeqCst);
        self.signal_all(if hard { libc::SIGKILL } else { libc::SIGTERM });
    }

    fn grace(&self) -> Duration {
        GRACE
    }

    fn stopping(&self) -> String {
        let running = lock(&self.shared.books).running;
        format!("stopping {running} running task(s)")
    }

    fn unreported(&mut self, _pos: usize, _interrupted: bool) -> Result<Option<TaskRecord>> {
        // A task the pool started always reports its end: one that did not never started.
        Ok(None)
    }
}

fn job_spec(shared: &Shared, t: &Task, lane: usize, gpu_ids: &[usize]) -> JobSpec {
    let (dir, slots) = (&shared.dir, &shared.slots);
    let task_dir = dir.task(&t.name);
    let results = task_dir.join("results");
    let mut env = vec![
        ("RESULTS_DIR".to_owned(), results.display().to_string()),
        ("ONEBOX_TASK_NAME".to_owned(), t.name.clone()),
        ("ONEBOX_RANK".to_owned(), t.index.to_string()),
        (MARK.to_owned(), shared.runner_id.clone()),
        (
            "SATURN_RUN_LOCAL_RANK".to_owned(),
            gpu_ids.first().copied().unwrap_or(lane).to_string(),
        ),
    ];
    if t.gpus.is_some() {
        let visible: Vec<&str> = gpu_ids.iter().map(|&g| slots.gpus[g].as_str()).collect();
        env.push(("CUDA_VISIBLE_DEVICES".to_owned(), visible.join(",")));
    }
    env.extend(t.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    JobSpec {
        argv: without_shell(&t.argv).unwrap_or_else(|| t.argv.clone()),
        task: t.clone(),
        dir: task_dir,
        env,
        host: shared.host.clone(),
    }
}

/// Runs one task (all its attempts) and writes its status file. Runs on a pool thread.
fn run_job(
    job: &JobSpec,
    state: &Running,
    stop: &AtomicBool,
    reaper: Option<&Reaper>,
) -> TaskRecord {
    let t = &job.task;
    let mut rec = TaskRecord::pending(&t.name, t.index);
    rec.host = Some(job.host.clone());
    let results_dir = job.dir.join("results");
    let status = (|| -> std::io::Result<String> {
        for d in [&job.dir, &results_dir] {
            match std::fs::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(_) => std::fs::create_dir_all(d)?,
            }
        }
        let _ = std::fs::remove_file(job.dir.join("status"));
        let mut text = String::new();
        for attempt in 1..=t.retries.saturating_add(1) {
            if stop.load(Ordering::SeqCst) {
                text = INTERRUPTED.to_owned();
                break;
            }
            results::keep_earlier_output(&job.dir)?;
            rec.attempts = attempt;
            let started = SystemTime::now();
            let clock = Instant::now();
            rec.start = Some(results::rfc3339(started));
            let outcome = attempt_once(job, state, reaper)?;
            rec.end = Some(results::rfc3339(SystemTime::now()));
            rec.duration_s = Some(clock.elapsed().as_secs_f64());
            rec.timed_out = outcome == Outcome::TimedOut;
            match outcome {
                Outcome::Exited(code) => {
                    rec.exit_code = Some(code);
                    text = code.to_string();
                    if code == 0 {
                        break;
                    }
                }
                Outcome::TimedOut => {
                    rec.exit_code = Some(TIMEOUT_EXIT);
                    text = TIMEOUT_EXIT.to_string();
                }
                Outcome::Interrupted => {
                    rec.exit_code = None;
                    text = INTERRUPTED.to_owned();
                    break;
                }
            }
        }
        Ok(text)
    })();
    let text = match status {
        Ok(text) => text,
        Err(e) => {
            // The task's own files could not be written: say so where a person will look.
            let _ = std::fs::write(job.dir.join("stderr"), format!("onebox: {e}\n"));
            rec.exit_code = Some(127);
            "127".to_owned()
        }
    };
    let (state_now, _) = results::state_of_status(&text);
    rec.state = state_now;
    let mut line = text;
    line.push('\n');
    if let Err(e) = write_atomic(&job.dir.join("status"), line.as_bytes()) {
        rec.state = TaskState::Failed;
        let _ = std::fs::write(job.dir.join("stderr"), format!("onebox: {e}\n"));
    }
    rec
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Exited(i32),
    TimedOut,
    Interrupted,
}

fn attempt_once(
    job: &JobSpec,
    state: &Running,
    reaper: Option<&Reaper>,
) -> std::io::Result<Outcome> {
    let t = &job.task;
    let stdout = File::create(job.dir.join("stdout"))?;
    let mut stderr = File::create(job.dir.join("stderr"))?;
    let mut cmd = Command::new(&job.argv[0]);
    cmd.args(&job.argv[1..])
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr.try_clone()?)
        .process_group(0);
    if let Some(w) = &t.workdir {
        cmd.current_dir(w);
    }
    state.killed.store(NOT_KILLED, Ordering::SeqCst);
    let mut guard = lock(&state.child);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            drop(guard);
            use std::io::Write as _;
            let where_ = t
                .workdir
                .as_ref()
                .map(|w| format!(" in {}", w.display()))
                .unwrap_or_default();
            writeln!(
                stderr,
                "onebox: cannot start {:?}{where_}: {e}",
                job.argv[0]
            )?;
            let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            return Ok(Outcome::Exited(code));
        }
    };
    let pgid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    if let Some(r) = reaper {
        r.watch(pgid);
    }
    *guard = Some((pgid, t.timeout.map(|d| Instant::now() + d)));
    drop(guard);
    let status = child.wait();
    // Before anything else may be reaped: the group's leader is gone now; the books must not
    // signal its id again. Members still running in the group are killed at the end.
    let killed = {
        let mut guard = lock(&state.child);
        *guard = None;
        state.killed.load(Ordering::SeqCst)
    };
    let status = status?;
    // Whatever the task left running in its group does not outlive it.
    // SAFETY: kill(2) on the process group this task started.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    if let Some(r) = reaper {
        r.forget(pgid);
    }
    Ok(match killed {
        // A task that exited 0 finished its work, even if a stop or its timeout came just then.
        _ if status.success() => Outcome::Exited(0),
        KILLED_TIMEOUT => Outcome::TimedOut,
        KILLED_INTERRUPT => Outcome::Interrupted,
        _ => Outcome::Exited(
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_tasks;

    /// Runs `tasks_yaml` with fake slots; returns each task's stdout lines.
    fn run_with(slots: &Slots, tasks_yaml: &str) -> (Vec<TaskRecord>, Vec<Vec<String>>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ResultsDir::new(tmp.path().join("r"));
        std::fs::create_dir_all(dir.state_dir()).unwrap();
        let tasks = parse_tasks(tasks_yaml, "t").unwrap();
        slots.check(&tasks).unwrap();
        let opts = RunOptions {
            progress: crate::ProgressMode::Quiet,
            ..RunOptions::new("t")
        };
        let mut local = Local::new(&dir, &tasks, slots, &opts).unwrap();
        let skip = vec![false; tasks.len()];
        let report =
            crate::batch::run(&mut local, &dir, &tasks, &skip, &tasks, "local", &opts).unwrap();
        assert!(!report.interrupted);
        let records = report.tasks;
        let outs = tasks
            .iter()
            .map(|t| {
                std::fs::read_to_string(dir.task(&t.name).join("stdout"))
                    .unwrap()
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        (records, outs)
    }

    /// (start ns, end ns, the first line) of each task that printed `line0; date; sleep; date`.
    fn intervals(outs: &[Vec<String>]) -> Vec<(u128, u128, String)> {
        outs.iter()
            .map(|o| (o[1].parse().unwrap(), o[2].parse().unwrap(), o[0].clone()))
            .collect()
    }

    const TIMED: &str = "date +%s%N; sleep 0.3; date +%s%N";

    #[test]
    fn gpus_go_to_one_task_at_a_time() {
        let slots = Slots {
            cpus: 8,
            max_parallel: 8,
            gpus: vec!["GPU-a".into(), "GPU-b".into()],
        };
        let mut yaml = String::from("tasks:\n");
        for _ in 0..5 {
            yaml.push_str(&format!(
                "  - command: echo \"$CUDA_VISIBLE_DEVICES\"; {TIMED}\n    gpus: 1\n"
            ));
        }
        yaml.push_str(&format!(
            "  - command: echo \"$CUDA_VISIBLE_DEVICES\"; {TIMED}\n    gpus: 2\n"
        ));
        yaml.push_str(&format!(
            "  - command: echo \"[$CUDA_VISIBLE_DEVICES]\"; {TIMED}\n    gpus: 0\n"
        ));
        let (records, outs) = run_with(&slots, &yaml);
        assert!(records.iter().all(|r| r.state == TaskState::Done));
        let iv = intervals(&outs);
        for (i, a) in iv.iter().enumerate().take(6) {
            let want: &[&str] = if i < 5 {
                &["GPU-a", "GPU-b"]
            } else {
                &["GPU-a,GPU-b"]
            };
            assert!(want.contains(&a.2.as_str()), "task {i} saw {:?}", a.2);
            for b in &iv[i + 1..6] {
                let overlap = a.0 < b.1 && b.0 < a.1;
                let shared = a.2.split(',').any(|g| b.2.split(',').any(|h| g == h));
                assert!(
                    !(overlap && shared),
                    "two tasks shared a GPU at once: {a:?} {b:?}"
                );
            }
        }
        assert_eq!(iv[6].2, "[]");
    }

    #[test]
    fn cpu_slots_are_never_oversubscribed() {
        let slots = Slots {
            cpus: 3,
            max_parallel: 3,
            gpus: Vec::new(),
        };
        let cpus = [2, 1, 1, 3, 1, 2, 1];
        let mut yaml = String::from("tasks:\n");
        for c in cpus {
            yaml.push_str(&format!("  - command: echo {c}; {TIMED}\n    cpus: {c}\n"));
        }
        let (_, outs) = run_with(&slots, &yaml);
        let iv = intervals(&outs);
        // At every task's start, the CPUs of the tasks running then fit in the slots.
        for a in &iv {
            let busy: usize = iv
                .iter()
                .filter(|b| b.0 <= a.0 && a.0 < b.1)
                .map(|b| b.2.parse::<usize>().unwrap())
                .sum();
            assert!(busy <= 3, "{busy} CPUs busy at once: {iv:?}");
        }
    }

    #[test]
    fn tasks_that_cannot_fit_are_refused_before_running() {
        let slots = Slots {
            cpus: 2,
            max_parallel: 2,
            gpus: vec!["0".into()],
        };
        let tasks = parse_tasks("tasks:\n  - command: a\n    cpus: 3\n", "t").unwrap();
        assert!(
            slots
                .check(&tasks)
                .unwrap_err()
                .to_string()
                .contains("3 CPUs")
        );
        let tasks = parse_tasks("tasks:\n  - command: a\n    gpus: 2\n", "t").unwrap();
        assert!(matches!(
            slots.check(&tasks),
            Err(Error::NoGpu { available: 1, .. })
        ));
    }

    #[test]
    fn an_empty_batch_runs_nothing() {
        let slots = Slots {
            cpus: 1,
            max_parallel: 1,
            gpus: Vec::new(),
        };
        let (records, outs) = run_with(&slots, "tasks: []\n");
        assert!(records.is_empty() && outs.is_empty());
    }
}
