//! The Slurm executor: the same job files on a real multi-node engine.
//!
//! With `class_spec: SlurmExecutor`, `onebox run` turns the batch into Slurm **job arrays**
//! and follows them until they leave the queue:
//!
//! - Tasks that ask for the same resources (`cpus`, `gpus`, `timeout`) share one array; each
//!   array element runs one task, or `tasks_per_job` tasks one after the other (Slurm takes
//!   about a second per element: group tiny tasks). An element asks for `-c cpus`,
//!   `--gres=gpu:N` when the tasks ask for GPUs (Slurm sets `CUDA_VISIBLE_DEVICES`), `--mem`
//!   from the executor's `mem`, and `--time` from the tasks' timeouts and retries.
//! - Each task runs through a small bash wrapper that writes the task's `stdout`, `stderr` and
//!   `status` itself (applying `timeout` with `timeout(1)` and retrying as asked), so exit
//!   codes never depend on Slurm's accounting. The results directory must be on a filesystem
//!   every node shares; its layout is the local executor's.
//! - `onebox run` polls `squeue` until the arrays are gone. A task that left no status (its
//!   element was cancelled, hit the time limit, or its node failed) gets Slurm's final state
//!   as its status (`cancelled`, `timeout`, `node_fail`...), from `sacct` where accounting
//!   exists, else from `squeue --json` (which keeps finished jobs a few minutes), else `lost`.
//! - SIGINT or SIGTERM to `onebox run` cancels the arrays (`scancel`) and marks the tasks that
//!   did not finish `interrupted`; `--resume` then submits only what is left.
//!
//! The wrapper scripts and Slurm's own logs are kept in `<results>/.onebox/slurm/`.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use onebox::{Error, Result};

use crate::batch::{Backend, News};
use crate::results::{INTERRUPTED, ResultsDir, TIMEOUT_EXIT, TaskRecord, TaskState, write_atomic};
use crate::spec::{SlurmOptions, Task, shell_quote};

/// One array: tasks sharing a resource shape, grouped into elements.
struct Array {
    cpus: usize,
    gpus: Option<usize>,
    time_limit: Option<Duration>,
    elements: Vec<Vec<usize>>,
}

/// How long `scancel`led arrays get to leave the queue before the run stops waiting for them.
const GRACE: Duration = Duration::from_secs(30);
/// How often the queue is looked at once the arrays are cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(200);

/// The Slurm executor as the bookkeeping loop drives it.
pub(crate) struct Slurm {
    dir: ResultsDir,
    tasks: Vec<Task>,
    options: SlurmOptions,
    run_name: String,
    /// `<results>/.onebox/slurm`: the wrapper scripts, the arrays' lists and Slurm's logs.
    work: PathBuf,
    arrays: Vec<Array>,
    job_ids: Vec<String>,
    /// Tasks whose end (status file) or start (stdout) the loop has been told of.
    ended: HashSet<usize>,
    started: HashSet<usize>,
    poll_interval: Duration,
    last_look: Option<Instant>,
    /// After the hard stop: the loop no longer waits for the queue to empty.
    abandoned: bool,
    /// What Slurm says happened to elements that left no status (asked once, at the end).
    final_states: Option<BTreeMap<String, String>>,
}

impl Slurm {
    /// A backend that submits `tasks` as job arrays named after the run `run_name`.
    pub(crate) fn new(
        dir: &ResultsDir,
        tasks: &[Task],
        options: &SlurmOptions,
        run_name: &str,
    ) -> Slurm {
        Slurm {
            dir: dir.clone(),
            tasks: tasks.to_vec(),
            options: options.clone(),
            run_name: run_name.to_owned(),
            work: work_dir(dir),
            arrays: Vec::new(),
            job_ids: Vec::new(),
            ended: HashSet::new(),
            started: HashSet::new(),
            poll_interval: options.poll_interval,
            last_look: None,
            abandoned: false,
            final_states: None,
        }
    }

    fn record(&self, pos: usize, status: &str) -> TaskRecord {
        record_from_files(&self.work, &self.tasks[pos], pos, status)
    }
}

impl Backend for Slurm {
    fn start(&mut self, news: &mut Vec<News>) -> Result<()> {
        let (dir, work) = (&self.dir, &self.work);
        std::fs::create_dir_all(work.join("info")).map_err(|e| Error::io(work, e))?;
        for (pos, t) in self.tasks.iter().enumerate() {
            let script = task_script(dir, work, t, pos);
            let path = work.join(format!("task-{pos}.sh"));
            std::fs::write(&path, script).map_err(|e| Error::io(&path, e))?;
            let _ = std::fs::remove_file(work.join("info").join(pos.to_string()));
            let _ = std::fs::remove_file(dir.status_file(&t.name));
        }
        self.arrays = plan_arrays(&self.tasks, self.options.tasks_per_job);
        for (k, array) in self.arrays.iter().enumerate() {
            let adir = work.join(format!("array-{k}"));
            std::fs::create_dir_all(&adir).map_err(|e| Error::io(&adir, e))?;
            for (e, members) in array.elements.iter().enumerate() {
                let list: String = members.iter().map(|m| format!("{m}\n")).collect();
                let p = adir.join(e.to_string());
                std::fs::write(&p, list).map_err(|e| Error::io(&p, e))?;
            }
            let script = format!(
                "#!/bin/bash\n# onebox: runs the tasks listed for this array element, one after the other\nwhile read -r i; do bash {w}/task-\"$i\".sh; done < {a}/\"$SLURM_ARRAY_TASK_ID\"\n",
                w = shell_quote(&work.display().to_string()),
                a = shell_quote(&adir.display().to_string()),
            );
            let sp = adir.join("array.sh");
            std::fs::write(&sp, script).map_err(|e| Error::io(&sp, e))?;
            let args = sbatch_args(array, &self.options, &self.run_name, work, k, &sp);
            let id = sbatch(&args)?;
            news.push(News::Info(format!(
                "onebox: submitted Slurm array {id} ({} task(s) in {} element(s))",
                array.elements.iter().map(Vec::len).sum::<usize>(),
                array.elements.len()
            )));
            self.job_ids.push(id);
            record_jobs(dir, &self.job_ids)?;
        }
        Ok(())
    }

    fn poll(&mut self, wait: Duration, news: &mut Vec<News>) -> Result<bool> {
        if let Some(last) = self.last_look {
            let due = self.poll_interval.saturating_sub(last.elapsed());
            if !due.is_zero() {
                std::thread::sleep(due.min(wait));
                return Ok(true);
            }
        }
        self.last_look = Some(Instant::now());
        // The queue first: a task whose element has left it has written its status by now.
        let queued = squeue_count(&self.job_ids)?;
        for pos in 0..self.tasks.len() {
            if self.ended.contains(&pos) {
                continue;
            }
            let name = &self.tasks[pos].name;
            if let Some(status) = self.dir.read_status(name) {
                news.push(News::Ended(pos, self.record(pos, &status)));
                self.ended.insert(pos);
            } else if !self.started.contains(&pos) && self.dir.task(name).join("stdout").exists() {
                self.started.insert(pos);
                news.push(News::Started(pos));
            }
        }
        Ok(queued > 0 && !self.abandoned)
    }

    fn stop(&mut self, hard: bool) {
        if hard {
            self.abandoned = true;
        } else {
            let _ = Command::new("scancel").args(&self.job_ids).status();
            self.poll_interval = self.poll_interval.min(CANCEL_POLL);
        }
    }

    fn grace(&self) -> Duration {
        GRACE
    }

    fn stopping(&self) -> String {
        format!("cancelling Slurm job(s) {}", self.job_ids.join(","))
    }

    fn unreported(&mut self, pos: usize, interrupted: bool) -> Result<Option<TaskRecord>> {
        let t = &self.tasks[pos];
        if let Some(status) = self.dir.read_status(&t.name) {
            return Ok(Some(self.record(pos, &status)));
        }
        // No status: interrupted, or what Slurm says happened to its element.
        let text = if interrupted {
            INTERRUPTED.to_owned()
        } else {
            let job_ids = &self.job_ids;
            let states = self.final_states.get_or_insert_with(|| {
                let mut states = sacct_states(job_ids);
                for (k, v) in squeue_json_states(job_ids) {
                    states.entry(k).or_insert(v);
                }
                states
            });
            element_of(&self.arrays, &self.job_ids, pos)
                .and_then(|key| states.get(&key).cloned())
                .unwrap_or_else(|| "lost".to_owned())
        };
        let status = self.dir.status_file(&t.name);
        if let Some(parent) = status.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        write_atomic(&status, format!("{text}\n").as_bytes())?;
        Ok(Some(self.record(pos, &text)))
    }
}

/// What tasks of one array share: cpus, gpus, timeout, retries.
type Shape = (usize, Option<usize>, Option<Duration>, u32);

/// Groups tasks into arrays by resource shape, then into elements of `per_job` tasks.
fn plan_arrays(tasks: &[Task], per_job: usize) -> Vec<Array> {
    let mut shapes: Vec<(Shape, Vec<usize>)> = Vec::new();
    for (pos, t) in tasks.iter().enumerate() {
        let key = (t.cpus, t.gpus, t.timeout, t.retries);
        match shapes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(pos),
            None => shapes.push((key, vec![pos])),
        }
    }
    let per_job = per_job.max(1);
    shapes
        .into_iter()
        .flat_map(|((cpus, gpus, timeout, retries), members)| {
            // Each element may run `per_job` tasks, each up to 1 + retries attempts.
            let time_limit = timeout.map(|t| {
                let attempts = u32::try_from(per_job)
                    .unwrap_or(u32::MAX)
                    .saturating_mul(retries.saturating_add(1));
                t.saturating_mul(attempts) + Duration::from_secs(60)
            });
            let elements: Vec<Vec<usize>> =
                members.chunks(per_job).map(<[usize]>::to_vec).collect();
            elements
                .chunks(MAX_ARRAY)
                .map(|part| Array {
                    cpus,
                    gpus,
                    time_limit,
                    elements: part.to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Elements per array at most: Slurm's default `MaxArraySize` is 1001 (indices 0 to 1000).
const MAX_ARRAY: usize = 1000;

fn sbatch_args(
    array: &Array,
    s: &SlurmOptions,
    name: &str,
    work: &Path,
    k: usize,
    script: &Path,
) -> Vec<String> {
    let last = array.elements.len().saturating_sub(1);
    let mut range = format!("0-{last}");
    if let Some(m) = s.max_parallel {
        let _ = write!(range, "%{m}");
    }
    let mut args = vec![
        "--parsable".to_owned(),
        format!("--array={range}"),
        format!("--job-name=onebox-{name}"),
        format!("--cpus-per-task={}", array.cpus),
        format!("--output={}/array-{k}/slurm-%A_%a.out", work.display()),
        format!("--error={}/array-{k}/slurm-%A_%a.out", work.display()),
    ];
    if let Some(g) = array.gpus.filter(|&g| g > 0) {
        args.push(format!("--gres=gpu:{g}"));
    }
    if let Some(m) = &s.mem {
        args.push(format!("--mem={m}"));
    }
    if let Some(t) = array.time_limit {
        // Slurm's --time takes minutes; round up.
        args.push(format!("--time={}", t.as_secs().div_ceil(60).max(1)));
    }
    if let Some(p) = &s.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(a) = &s.account {
        args.push(format!("--account={a}"));
    }
    args.extend(s.sbatch_args.iter().cloned());
    args.push(script.display().to_string());
    args
}

fn sbatch(args: &[String]) -> Result<String> {
    let out = Command::new("sbatch").args(args).output().map_err(|e| {
        Error::Invalid(format!(
            "SlurmExecutor: cannot run sbatch ({e}); is Slurm installed and on PATH?"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "SlurmExecutor: sbatch refused the array: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // --parsable prints `jobid` or `jobid;cluster`.
    let id = text.trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Invalid(format!(
            "SlurmExecutor: sbatch printed no job id: {text:?}"
        )));
    }
    Ok(id)
}

/// How many elements of these Slurm jobs are still pending or running.
pub fn queued(job_ids: &[String]) -> Result<usize> {
    squeue_count(job_ids)
}

/// How many of the arrays' elements Slurm still lists (pending or running).
fn squeue_count(job_ids: &[String]) -> Result<usize> {
    let out = Command::new("squeue")
        .args(["--noheader", "--array", "--format=%i %T", "--jobs"])
        .arg(job_ids.join(","))
        .output()
        .map_err(|e| Error::Invalid(format!("SlurmExecutor: cannot run squeue: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // Jobs that left the queue long ago make squeue fail with "Invalid job id".
        if err.contains("Invalid job id") {
            return Ok(0);
        }
        return Err(Error::Invalid(format!(
            "SlurmExecutor: squeue failed: {}",
            err.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// `jobid_element` -> state, from `squeue --json`, which keeps finished jobs for a few minutes
/// (`MinJobAge`). Handles both forms of Slurm's JSON: plain values (22.05) and the
/// `{"set": .., "number": ..}` / list forms of later versions. (Slurm 22.05 ignores `--jobs`
/// with `--json`, hence the filter here.)
fn squeue_json_states(job_ids: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(o) = Command::new("squeue")
        .args(["--json", "--jobs"])
        .arg(job_ids.join(","))
        .output()
    else {
        return out;
    };
    if !o.status.success() {
        return out;
    }
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
        return out;
    };
    parse_squeue_json(&doc, job_ids, &mut out);
    out
}

fn parse_squeue_json(
    doc: &serde_json::Value,
    job_ids: &[String],
    out: &mut BTreeMap<String, String>,
) {
    use serde_json::Value;
    fn number(v: &Value) -> Option<u64> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::Object(o) if o.get("set").and_then(Value::as_bool) != Some(false) => {
                o.get("number").and_then(Value::as_u64)
            }
            _ => None,
        }
    }
    fn state(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    }
    let Some(jobs) = doc.get("jobs").and_then(Value::as_array) else {
        return;
    };
    for job in jobs {
        let array = job.get("array_job_id").and_then(number);
        let element = job.get("array_task_id").and_then(number);
        let st = job.get("job_state").and_then(state);
        if let (Some(array), Some(element), Some(st)) = (array, element, st)
            && job_ids.iter().any(|id| id == &array.to_string())
        {
            out.insert(format!("{array}_{element}"), st.to_ascii_lowercase());
        }
    }
}

/// `jobid_element` -> final state, from `sacct` (empty when accounting is not there).
fn sacct_states(job_ids: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(o) = Command::new("sacct")
        .args([
            "--noheader",
            "--parsable2",
            "--format=JobID,State",
            "--jobs",
        ])
        .arg(job_ids.join(","))
        .output()
    else {
        return out;
    };
    if !o.status.success() {
        return out;
    }
    parse_sacct(&String::from_utf8_lossy(&o.stdout), &mut out);
    out
}

/// Reads `sacct --parsable2 --format=JobID,State` lines (`12_3|CANCELLED by 0`); job steps
/// (`12_3.batch`) are skipped.
fn parse_sacct(text: &str, out: &mut BTreeMap<String, String>) {
    for line in text.lines() {
        let mut parts = line.split('|');
        if let (Some(id), Some(state)) = (parts.next(), parts.next())
            && !id.contains('.')
            && !id.is_empty()
        {
            let state = state.split_whitespace().next().unwrap_or(state);
            out.insert(id.to_owned(), state.to_ascii_lowercase());
        }
    }
}

/// `jobid_element` of the task at `pos`.
fn element_of(arrays: &[Array], job_ids: &[String], pos: usize) -> Option<String> {
    arrays.iter().zip(job_ids).find_map(|(a, id)| {
        a.elements
            .iter()
            .position(|m| m.contains(&pos))
            .map(|e| format!("{id}_{e}"))
    })
}

fn record_jobs(dir: &ResultsDir, job_ids: &[String]) -> Result<()> {
    if let Some(mut info) = dir.read_run_info()? {
        info.slurm_jobs = job_ids.to_vec();
        let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&dir.run_info_file(), &json)?;
    }
    Ok(())
}

/// A task's record from its status file and the wrapper's info line.
fn record_from_files(work: &Path, t: &Task, pos: usize, status: &str) -> TaskRecord {
    let mut rec = TaskRecord::pending(&t.name, t.index);
    rec.set_status(status);
    // The info line: attempts, start, end, seconds, host.
    if let Ok(text) = std::fs::read_to_string(work.join("info").join(pos.to_string())) {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() >= 5 {
            rec.attempts = f[0].parse().unwrap_or(0);
            rec.start = Some(f[1].to_owned());
            rec.end = Some(f[2].to_owned());
            rec.duration_s = f[3].parse().ok();
            rec.host = Some(f[4].to_owned());
        }
    }
    rec.timed_out = rec.exit_code == Some(TIMEOUT_EXIT)
        && matches!((t.timeout, rec.duration_s), (Some(limit), Some(took)) if took + 0.05 >= limit.as_secs_f64());
    if rec.state == TaskState::Interrupted {
        rec.exit_code = None;
    }
    rec
}

/// The bash wrapper of one task: runs it (with timeout and retries), writes its files.
fn task_script(dir: &ResultsDir, work: &Path, t: &Task, pos: usize) -> String {
    let q = |s: &str| shell_quote(s);
    let task_dir = dir.task(&t.name);
    let d = q(&task_dir.display().to_string());
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(s, "# onebox task {}", t.name.replace('\n', " "));
    let _ = writeln!(s, "d={d}");
    s.push_str("mkdir -p \"$d/results\" && rm -f \"$d/status\" || exit 1\n");
    let _ = writeln!(
        s,
        "export RESULTS_DIR=\"$d/results\" ONEBOX_TASK_NAME={} ONEBOX_RANK={} SATURN_RUN_LOCAL_RANK=0",
        q(&t.name),
        t.index
    );
    if t.gpus == Some(0) {
        s.push_str("export CUDA_VISIBLE_DEVICES=\n");
    }
    for (k, v) in &t.env {
        let _ = writeln!(s, "export {}={}", q(k), q(v));
    }
    let run = t.argv.iter().map(|w| q(w)).collect::<Vec<_>>().join(" ");
    let run = match t.timeout {
        Some(limit) => format!("timeout -k 2 {:.3} {run}", limit.as_secs_f64()),
        None => run,
    };
    let cd = match &t.workdir {
        Some(w) => format!("cd {} && ", q(&w.display().to_string())),
        None => String::new(),
    };
    let info = q(&work
        .join("info")
        .join(pos.to_string())
        .display()
        .to_string());
    let _ = write!(
        s,
        r#"attempt=0
while :; do
  attempt=$((attempt+1))
  if [ -e "$d/stdout" ] || [ -e "$d/stderr" ]; then
    n=1; while [ -e "$d/stdout.attempt$n" ] || [ -e "$d/stderr.attempt$n" ]; do n=$((n+1)); done
    for s in stdout stderr; do [ ! -e "$d/$s" ] || mv "$d/$s" "$d/$s.attempt$n"; done
  fi
  start=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ); t0=$(date +%s.%N)
  ( {cd}exec {run} ) < /dev/null > "$d/stdout" 2> "$d/stderr"
  code=$?
  if [ $code = 0 ] || [ $attempt -gt {retries} ]; then break; fi
done
end=$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ); t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {{ printf "%.3f", b - a }}')
printf '%s %s %s %s %s\n' "$attempt" "$start" "$end" "$secs" "$(hostname)" > {info}.tmp && mv {info}.tmp {info}
printf '%s\n' "$code" > "$d/status.tmp" && mv "$d/status.tmp" "$d/status"
"#,
        retries = t.retries,
    );
    s
}

/// The directory holding the wrapper scripts of a run (for inspection).
pub fn work_dir(dir: &ResultsDir) -> PathBuf {
    dir.state_dir().join("slurm")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_tasks;

    #[test]
    fn arrays_group_by_shape_and_chunk() {
        let tasks = parse_tasks(
            "tasks:\n - command: a\n - command: b\n   cpus: 2\n - command: c\n - command: d\n   gpus: 1\n - command: e\n",
            "t",
        )
        .unwrap();
        let arrays = plan_arrays(&tasks, 2);
        let shapes: Vec<(usize, Option<usize>, Vec<Vec<usize>>)> = arrays
            .iter()
            .map(|a| (a.cpus, a.gpus, a.elements.clone()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                (1, None, vec![vec![0, 2], vec![4]]),
                (2, None, vec![vec![1]]),
                (1, Some(1), vec![vec![3]]),
            ]
        );
        assert_eq!(
            element_of(&arrays, &["7".into(), "8".into(), "9".into()], 4).as_deref(),
            Some("7_1")
        );
        assert_eq!(
            element_of(&arrays, &["7".into(), "8".into(), "9".into()], 3).as_deref(),
            Some("9_0")
        );
    }

    #[test]
    fn big_batches_split_into_arrays_slurm_accepts() {
        let yaml: String = std::iter::once("tasks:\n".to_owned())
            .chain((0..2501).map(|i| format!(" - command: echo {i}\n")))
            .collect();
        let tasks = parse_tasks(&yaml, "t").unwrap();
        let arrays = plan_arrays(&tasks, 1);
        let sizes: Vec<usize> = arrays.iter().map(|a| a.elements.len()).collect();
        assert_eq!(sizes, [1000, 1000, 501]);
        let all: Vec<usize> = arrays.iter().flat_map(|a| a.elements.concat()).collect();
        assert_eq!(all, (0..2501).collect::<Vec<_>>());
        let grouped = plan_arrays(&tasks, 3);
        assert_eq!(grouped.iter().map(|a| a.elements.len()).sum::<usize>(), 834);
    }

    #[test]
    fn sacct_lines_are_read() {
        let mut out = BTreeMap::new();
        parse_sacct(
            "12_0|COMPLETED\n12_0.batch|COMPLETED\n12_1|CANCELLED by 0\n12_2|TIMEOUT\n\n",
            &mut out,
        );
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("12_0", "completed"),
                ("12_1", "cancelled"),
                ("12_2", "timeout")
            ]
        );
    }

    #[test]
    fn squeue_json_of_old_and_new_slurm_is_read() {
        let ids = ["5".to_owned()];
        let old: serde_json::Value = serde_json::json!({"jobs": [
            {"array_job_id": 5, "array_task_id": 1, "job_state": "CANCELLED"},
            {"array_job_id": 6, "array_task_id": 0, "job_state": "COMPLETED"},
        ]});
        let new: serde_json::Value = serde_json::json!({"jobs": [
            {"array_job_id": {"set": true, "number": 5}, "array_task_id": {"set": true, "number": 2}, "job_state": ["TIMEOUT"]},
            {"array_job_id": {"set": true, "number": 5}, "array_task_id": {"set": false, "number": 0}, "job_state": ["PENDING"]},
        ]});
        let mut out = BTreeMap::new();
        parse_squeue_json(&old, &ids, &mut out);
        parse_squeue_json(&new, &ids, &mut out);
        let got: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, [("5_1", "cancelled"), ("5_2", "timeout")]);
    }

    #[test]
    fn sbatch_arguments_follow_the_task_resources() {
        let tasks = parse_tasks(
            "tasks:\n - command: a\n   cpus: 3\n   gpus: 2\n   timeout: 90s\n   retries: 1\n",
            "t",
        )
        .unwrap();
        let arrays = plan_arrays(&tasks, 1);
        let s = SlurmOptions {
            mem: Some("1G".into()),
            partition: Some("gpu".into()),
            max_parallel: Some(4),
            tasks_per_job: 1,
            ..SlurmOptions::default()
        };
        let args = sbatch_args(
            &arrays[0],
            &s,
            "r",
            Path::new("/w"),
            0,
            Path::new("/w/a.sh"),
        );
        assert_eq!(
            args,
            [
                "--parsable",
                "--array=0-0%4",
                "--job-name=onebox-r",
                "--cpus-per-task=3",
                "--output=/w/array-0/slurm-%A_%a.out",
                "--error=/w/array-0/slurm-%A_%a.out",
                "--gres=gpu:2",
                "--mem=1G",
                "--time=4", // 2 attempts of 90 s, plus a minute
                "--partition=gpu",
                "/w/a.sh",
            ]
        );
    }
}
