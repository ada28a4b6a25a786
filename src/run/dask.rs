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
//! their process groups and write `interrupted`; tasks not started yet stay pending.
//!
//! Without a `scheduler_address` (`cluster_class: LocalCluster` or `SaturnCluster`), the
//! batch runs in onebox itself with the [local executor](super::local), and needs no Python.

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use crossbeam::channel::{self, RecvTimeoutError};
use serde::Deserialize;

use super::progress::Progress;
use super::results::{self, ResultsDir, TIMEOUT_EXIT, TaskRecord, append_journal};
use super::spec::{DaskOptions, Task};
use super::{RunOptions, signals};
use crate::cluster::Cluster;
use crate::error::{Error, Result};

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

/// Runs `tasks` on the Dask scheduler of `dask`; returns their records in the order given.
pub(crate) fn run(
    dir: &ResultsDir,
    tasks: &[Task],
    dask: &DaskOptions,
    opts: &RunOptions,
    progress: &Progress,
) -> Result<(Vec<TaskRecord>, bool)> {
    if tasks.is_empty() {
        return Ok((Vec::new(), false));
    }
    let batch = serde_json::json!({
        "scheduler_address": dask.scheduler_address,
        "tasks": tasks.iter().enumerate().map(|(pos, t)| {
            let task_dir = dir.task(&t.name);
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
    });
    let mut child = Command::new(&dask.python)
        .arg("-c")
        .arg(CLIENT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Error::Invalid(format!(
                "DaskExecutor: cannot start {:?} ({e}); set the executor's `python` to an interpreter with `distributed`",
                dask.python
            ))
        })?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    if let Some(mut stdin) = child.stdin.take() {
        let bytes = serde_json::to_vec(&batch).map_err(|e| Error::Invalid(e.to_string()))?;
        // A client that died at once shows its own message on stderr; its exit code says so.
        let _ = stdin.write_all(&bytes);
    }
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::Invalid("DaskExecutor: the client has no stdout".into()))?;

    // A task of a one-thread cluster reads the client's lines while this thread keeps the books.
    let reader = Cluster::builder()
        .threads(1)
        .gpus(0)
        .memory_limit("1GB")
        .ignore_env()
        .build()?;
    let (tx, rx) = channel::unbounded::<String>();
    let mut stdout = Some(stdout);
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

    let journal_path = dir.journal_file();
    let mut journal = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| Error::io(&journal_path, e))?;
    let mut records: Vec<Option<TaskRecord>> = vec![None; tasks.len()];
    let mut interrupted = false;
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(100)) {
            Ok(line) => {
                let Ok(l) = serde_json::from_str::<Line>(&line) else {
                    progress.println(&format!("onebox: dask client: {line}"));
                    continue;
                };
                let Some(t) = tasks.get(l.pos) else { continue };
                let Some(status) = l.status else { continue };
                let mut rec = TaskRecord::pending(&t.name, t.index);
                let (state, code) = results::state_of_status(&status);
                rec.state = state;
                rec.exit_code = code;
                rec.attempts = l.attempts;
                rec.start = l.start;
                rec.end = l.end;
                rec.duration_s = l.duration_s;
                rec.host = l.host;
                rec.timed_out = l.timed_out && code == Some(TIMEOUT_EXIT);
                if let Some(e) = l.error {
                    progress.println(&format!("onebox: task {}: {e}", t.name));
                }
                let _ = append_journal(&mut journal, &rec);
                progress.ended(&rec);
                records[l.pos] = Some(rec);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if !interrupted && (opts.stop.load(Ordering::SeqCst) || signals::received().is_some()) {
            opts.stop.store(true, Ordering::SeqCst);
            interrupted = true;
            progress.println(
                "onebox: interrupted: stopping the Dask tasks; `--resume` finishes the rest",
            );
            // SAFETY: kill(2) on the client process this function started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        progress.tick();
    }
    let status = child
        .wait()
        .map_err(|e| Error::Invalid(format!("DaskExecutor: waiting for the client: {e}")))?;
    if !status.success() && !interrupted {
        return Err(Error::Invalid(format!(
            "DaskExecutor: the client for {} stopped with {status} (its message is above); {} of {} task(s) finished",
            dask.scheduler_address,
            records.iter().flatten().count(),
            tasks.len()
        )));
    }
    let out = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let t = &tasks[i];
                let mut rec = TaskRecord::pending(&t.name, t.index);
                if let Some(s) = dir.read_status(&t.name) {
                    let (state, code) = results::state_of_status(&s);
                    rec.state = state;
                    rec.exit_code = code;
                }
                rec
            })
        })
        .collect();
    Ok((out, interrupted))
}
