//! The Dask executor: the batch on a running Dask scheduler (Saturn Run's own engine).
//!
//! With `class_spec: DaskExecutor` and a `scheduler_address`, `onebox run` starts a small
//! Python client that ships with the crate (`python -c`, with the interpreter named by the
//! executor's `python` key, default `python3`, which needs the `distributed` package). The
//! client submits one Dask task per job; on a worker, the task starts the command as a child
//! process in its own session and writes the task's `stdout`, `stderr` and `status` itself, so
//! the results directory (the same layout as the other executors) must be on a filesystem the
//! workers share. Each finished task comes back to onebox as one JSON line, for the journal,
//! the summary and the progress bar.
//!
//! A task that asks for GPUs is submitted with the Dask resource `GPU` (start workers with
//! `--resources GPU=N`); the client refuses the batch before anything runs when no worker
//! offers it. SIGINT or SIGTERM sets a Dask `Event` that the running tasks poll: they kill
//! their process groups and write `interrupted`; tasks not started yet stay pending. If
//! `onebox run` itself dies (on Linux), the client gets SIGTERM from the kernel and stops the
//! batch the same way.
//!
//! Without a `scheduler_address` (`cluster_class: LocalCluster` or `SaturnCluster`), the
//! batch runs in onebox itself with the [local executor](crate::local), and needs no Python.

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crossbeam::channel::{self, RecvTimeoutError};
use onebox::{Cluster, Error, Result};
use serde::Deserialize;

use crate::batch::{Backend, News};
use crate::results::{ResultsDir, TIMEOUT_EXIT, TaskRecord};
use crate::spec::{DaskOptions, Task};

/// The client, run with `python -c`.
const CLIENT: &str = include_str!("dask_client.py");

/// One finished task, as the client reports it.
#[derive(Deserialize)]
struct Line {
    pos: usize,
    status: Option<String>,
    #[serde(default)]
    attempts: u32,
    start: Option<String>,
    end: Option<String>,
    duration_s: Option<f64>,
    host: Option<String>,
    #[serde(default)]
    timed_out: bool,
    error: Option<String>,
}

/// How long the client gets, after it was asked to stop, to collect the tasks' ends.
const GRACE: Duration = Duration::from_secs(30);

/// The Dask executor as the bookkeeping loop drives it.
pub(crate) struct Dask {
    dir: ResultsDir,
    tasks: Vec<Task>,
    options: DaskOptions,
    /// The client, once started, and the lines it prints (read on a thread of a one-thread
    /// cluster, so that this side never blocks on the pipe).
    client: Option<Child>,
    lines: Option<channel::Receiver<String>>,
    _reader: Option<Cluster>,
    reported: usize,
    stopped: bool,
}

impl Dask {
    /// A backend that runs `tasks` on the scheduler of `options`.
    pub(crate) fn new(dir: &ResultsDir, tasks: &[Task], options: &DaskOptions) -> Dask {
        Dask {
            dir: dir.clone(),
            tasks: tasks.to_vec(),
            options: options.clone(),
            client: None,
            lines: None,
            _reader: None,
            reported: 0,
            stopped: false,
        }
    }

    /// The batch as the client reads it on stdin.
    fn batch(&self) -> serde_json::Value {
        serde_json::json!({
            "scheduler_address": self.options.scheduler_address,
            "tasks": self.tasks.iter().enumerate().map(|(pos, t)| {
                let task_dir = self.dir.task(&t.name);
                let mut env = serde_json::Map::new();
                let mut set = |k: &str, v: String| {
                    env.insert(k.to_owned(), serde_json::Value::String(v));
                };
                set("RESULTS_DIR", task_dir.join("results").display().to_string());
                set("ONEBOX_TASK_NAME", t.name.clone());
                set("ONEBOX_RANK", t.index.to_string());
                set("SATURN_RUN_LOCAL_RANK", "0".to_owned());
                if t.gpus == Some(0) {
                    set("CUDA_VISIBLE_DEVICES", String::new());
                }
                for (k, v) in &t.env {
                    set(k, v.clone());
                }
                serde_json::json!({
                    "pos": pos,
                    "name": t.name,
                    "dir": task_dir.display().to_string(),
                    "argv": t.argv,
                    "env": env,
                    "timeout": t.timeout.map(|d| d.as_secs_f64()),
                    "retries": t.retries,
                    "workdir": t.workdir.as_ref().map(|w| w.display().to_string()),
                    "gpus": t.gpus.unwrap_or(0),
                })
            }).collect::<Vec<_>>(),
        })
    }

    /// One line of the client: a finished task's record, or text to show as it is.
    fn read_line(&mut self, line: &str, news: &mut Vec<News>) {
        let Ok(l) = serde_json::from_str::<Line>(line) else {
            news.push(News::Problem(format!("onebox: dask client: {line}")));
            return;
        };
        let Some(t) = self.tasks.get(l.pos) else {
            return;
        };
        let Some(status) = l.status else { return };
        let mut rec = TaskRecord::pending(&t.name, t.index);
        rec.set_status(&status);
        rec.attempts = l.attempts;
        rec.start = l.start;
        rec.end = l.end;
        rec.duration_s = l.duration_s;
        rec.host = l.host;
        rec.timed_out = l.timed_out && rec.exit_code == Some(TIMEOUT_EXIT);
        if let Some(e) = l.error {
            news.push(News::Problem(format!("onebox: task {}: {e}", t.name)));
        }
        self.reported += 1;
        news.push(News::Ended(l.pos, rec));
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.client {
            let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
            // SAFETY: kill(2) on the client this backend started, in its own process group;
            // it is reaped only in `poll`, after its output has ended.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }
}

impl Backend for Dask {
    fn start(&mut self, _news: &mut Vec<News>) -> Result<()> {
        let python = &self.options.python;
        let mut command = Command::new(python);
        command
            .arg("-c")
            .arg(CLIENT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. If this
        // thread (the bookkeeping loop's, alive for the whole run) dies, the client gets
        // SIGTERM, which stops the batch as an interrupt does: the running tasks kill their
        // process groups and write `interrupted`.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| {
                Error::Invalid(format!(
                    "DaskExecutor: cannot start {python:?} ({e}); set the executor's `python` to an interpreter with `distributed`"
                ))
            })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.client = Some(child);
        if let Some(mut stdin) = stdin {
            let bytes =
                serde_json::to_vec(&self.batch()).map_err(|e| Error::Invalid(e.to_string()))?;
            // A client that died at once shows its own message on stderr; its exit code says so.
            let _ = stdin.write_all(&bytes);
        }
        let mut stdout = Some(
            stdout
                .ok_or_else(|| Error::Invalid("DaskExecutor: the client has no stdout".into()))?,
        );
        let reader = Cluster::builder()
            .threads(1)
            .gpus(0)
            .memory_limit("1GB")
            .ignore_env()
            .progress(false)
            .build()?;
        let (tx, rx) = channel::unbounded::<String>();
        let _reading = reader
            .delayed(move || {
                if let Some(out) = stdout.take() {
                    for line in BufReader::new(out).lines().map_while(std::io::Result::ok) {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            })
            .label("dask-client")
            .submit();
        self.lines = Some(rx);
        self._reader = Some(reader);
        Ok(())
    }

    fn poll(&mut self, wait: Duration, news: &mut Vec<News>) -> Result<bool> {
        let Some(lines) = &self.lines else {
            return Ok(false);
        };
        match lines.recv_timeout(wait) {
            Ok(first) => {
                let more: Vec<String> = lines.try_iter().collect();
                for line in std::iter::once(first).chain(more) {
                    self.read_line(&line, news);
                }
                Ok(true)
            }
            Err(RecvTimeoutError::Timeout) => Ok(true),
            Err(RecvTimeoutError::Disconnected) => {
                self.lines = None;
                let Some(mut child) = self.client.take() else {
                    return Ok(false);
                };
                let status = child.wait().map_err(|e| {
                    Error::Invalid(format!("DaskExecutor: waiting for the client: {e}"))
                })?;
                if !status.success() && !self.stopped {
                    return Err(Error::Invalid(format!(
                        "DaskExecutor: the client for {} stopped with {status} (its message is above); {} of {} task(s) finished",
                        self.options.scheduler_address,
                        self.reported,
                        self.tasks.len()
                    )));
                }
                Ok(false)
            }
        }
    }

    fn stop(&mut self, hard: bool) {
        self.stopped = true;
        self.signal(if hard { libc::SIGKILL } else { libc::SIGTERM });
    }

    fn grace(&self) -> Duration {
        GRACE
    }

    fn stopping(&self) -> String {
        "stopping the Dask tasks".to_owned()
    }

    fn unreported(&mut self, pos: usize, _interrupted: bool) -> Result<Option<TaskRecord>> {
        // A task whose line never came may still have written its status on a worker.
        let t = &self.tasks[pos];
        Ok(self.dir.read_status(&t.name).map(|s| {
            let mut rec = TaskRecord::pending(&t.name, t.index);
            rec.set_status(&s);
            rec
        }))
    }
}
