//! The results of a run on disk: one directory per task, a status file each, a summary.
//!
//! ```text
//! <path>/                       results.path of run.yaml, {name} replaced by the run's name
//!   summary.json                per task: state, exit code, start, end, attempts, host
//!   <task>/stdout  <task>/stderr     streamed while the task runs
//!   <task>/stdout.attemptN ...   the output of earlier attempts (retries, and earlier runs
//!                                that `--resume` finishes), N = 1, 2, ... oldest first
//!   <task>/status                the exit code, as text ("0\n"), written when it ends
//!   <task>/results/              RESULTS_DIR: whatever the task writes there
//!   .onebox/run.json             the run: its name, executor, tasks, and who runs it
//!   .onebox/lock                 locked (flock) by `onebox run` while it runs
//!   .onebox/journal.jsonl        one line per finished task (what `onebox status` reads)
//! ```
//!
//! The `status` file is what `--resume` trusts: a task whose status is `0` is done and is not
//! run again; any other status (a non-zero exit code, `interrupted`) or none means it runs. It
//! is written atomically (a temporary file renamed into place), so a crash never leaves half a
//! status. A task killed by its timeout gets `124` (as `timeout(1)`), one killed by signal N
//! gets `128+N` (as a shell), one that could not start gets `127`, and one stopped because the
//! run was interrupted gets `interrupted`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use onebox::{Error, Result};

/// The name of the run's summary file, at the top of its results directory.
pub const SUMMARY_FILE: &str = "summary.json";
/// onebox's own files inside a results directory.
pub const STATE_DIR: &str = ".onebox";
/// What a task's status file holds when the run was interrupted while it ran.
pub const INTERRUPTED: &str = "interrupted";
/// The exit code recorded for a task killed by its timeout (as `timeout(1)`).
pub const TIMEOUT_EXIT: i32 = 124;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// It exited with status 0.
    Done,
    /// It exited with another status, was killed, timed out or could not start.
    Failed,
    /// It was stopped because the run was interrupted.
    Interrupted,
    /// It runs now.
    Running,
    /// It has not run (yet).
    Pending,
}

impl TaskState {
    /// The state's name as the status table prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Done => "done",
            TaskState::Failed => "failed",
            TaskState::Interrupted => "interrupted",
            TaskState::Running => "running",
            TaskState::Pending => "pending",
        }
    }
}

/// One task's line in the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// The task's name (its directory).
    pub name: String,
    /// Its index in `tasks.yaml`.
    pub index: usize,
    /// Where it stands.
    pub state: TaskState,
    /// Its exit code, when it exited (124 for a timeout, 128+N for signal N).
    pub exit_code: Option<i32>,
    /// True when its timeout killed it.
    #[serde(default)]
    pub timed_out: bool,
    /// When its last attempt started (UTC, RFC 3339).
    pub start: Option<String>,
    /// When it ended (UTC, RFC 3339).
    pub end: Option<String>,
    /// Seconds from the start of its last attempt to its end.
    pub duration_s: Option<f64>,
    /// How many times it ran.
    pub attempts: u32,
    /// The machine it ran on.
    pub host: Option<String>,
}

impl TaskRecord {
    /// A task that has not run.
    pub fn pending(name: &str, index: usize) -> TaskRecord {
        TaskRecord {
            name: name.to_owned(),
            index,
            state: TaskState::Pending,
            exit_code: None,
            timed_out: false,
            start: None,
            end: None,
            duration_s: None,
            attempts: 0,
            host: None,
        }
    }

    /// Sets the state and exit code that a status file's `text` means.
    pub fn set_status(&mut self, text: &str) {
        (self.state, self.exit_code) = state_of_status(text);
    }
}

/// The run's description, kept in `.onebox/run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's name.
    pub name: String,
    /// `local` or `slurm`.
    pub executor: String,
    /// The task names, in `tasks.yaml` order.
    pub tasks: Vec<String>,
    /// The machine `onebox run` ran on.
    pub host: String,
    /// Its process id (shown to a person; whether the run is live is its lock's business).
    pub pid: u32,
    /// When it started (UTC, RFC 3339).
    pub started: String,
    /// Slurm job ids of the run's arrays.
    #[serde(default)]
    pub slurm_jobs: Vec<String>,
}

/// The run's summary, written to `summary.json` when it ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The run's name.
    pub name: String,
    /// `local` or `slurm`.
    pub executor: String,
    /// When `onebox run` started and ended.
    pub started: String,
    /// See `started`.
    pub ended: String,
    /// Tasks per state.
    pub counts: BTreeMap<TaskState, usize>,
    /// Every task, in `tasks.yaml` order.
    pub tasks: Vec<TaskRecord>,
}

/// A results directory: the paths of a run's files.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    root: PathBuf,
}

impl ResultsDir {
    /// The results directory at `root` (absolute, or made absolute against the current one).
    pub fn new(root: impl Into<PathBuf>) -> ResultsDir {
        let root = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir().map_or(root.clone(), |cwd| cwd.join(&root))
        };
        ResultsDir { root }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// A task's directory.
    pub fn task(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    /// A task's status file.
    pub fn status_file(&self, name: &str) -> PathBuf {
        self.root.join(name).join("status")
    }
    /// onebox's own directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }
    /// The run description.
    pub fn run_info_file(&self) -> PathBuf {
        self.state_dir().join("run.json")
    }
    /// The file a live run keeps locked.
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir().join("lock")
    }
    /// The journal of finished tasks.
    pub fn journal_file(&self) -> PathBuf {
        self.state_dir().join("journal.jsonl")
    }
    /// The summary.
    pub fn summary_file(&self) -> PathBuf {
        self.root.join(SUMMARY_FILE)
    }

    /// What a task's status file says, if it has one.
    pub fn read_status(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.status_file(name))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// True when the task's status file says `0`.
    pub fn is_done(&self, name: &str) -> bool {
        self.read_status(name).as_deref() == Some("0")
    }

    /// The run description, if there is one.
    pub fn read_run_info(&self) -> Result<Option<RunInfo>> {
        let path = self.run_info_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Invalid(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Takes the run's lock (creating `.onebox/` if needed); `None` while another runner holds
    /// it. The kernel releases it when the holder ends, however it ends.
    pub fn try_lock(&self) -> Result<Option<RunLock>> {
        let path = self.lock_file();
        std::fs::create_dir_all(self.state_dir()).map_err(|e| Error::io(self.state_dir(), e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match flock(&file, libc::LOCK_EX) {
            Ok(true) => Ok(Some(RunLock { _file: file })),
            Ok(false) => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// True while a runner holds the run's lock (in this process or another, on this machine or
    /// another one sharing the filesystem).
    pub fn is_locked(&self) -> bool {
        let Ok(file) = std::fs::File::open(self.lock_file()) else {
            return false;
        };
        // A shared lock is refused only while someone holds the exclusive one; dropping the
        // file releases it at once.
        matches!(flock(&file, libc::LOCK_SH), Ok(false))
    }

    /// The latest journal line of each task.
    pub fn read_journal(&self) -> HashMap<String, TaskRecord> {
        let mut out = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(self.journal_file()) {
            for line in text.lines() {
                // A line cut short by a crash is skipped: the status files stay authoritative.
                if let Ok(r) = serde_json::from_str::<TaskRecord>(line) {
                    out.insert(r.name.clone(), r);
                }
            }
        }
        out
    }
}

/// The lock of a live run (see [`ResultsDir::try_lock`]): held until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// `flock(2)` without waiting: `Ok(false)` when another open file holds a conflicting lock.
fn flock(file: &std::fs::File, how: libc::c_int) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), how | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Before an attempt starts: moves the task's `stdout` and `stderr` from an earlier attempt
/// (a retry, or an earlier run that `--resume` finishes) to `stdout.attemptN` and
/// `stderr.attemptN`, with the first N that neither uses, so no attempt's output is lost.
/// (The Slurm wrapper and the Dask client do the same in their own languages.)
pub fn keep_earlier_output(task_dir: &Path) -> std::io::Result<()> {
    let streams = ["stdout", "stderr"];
    if !streams.iter().any(|s| task_dir.join(s).exists()) {
        return Ok(());
    }
    let taken = |n: u32| {
        streams
            .iter()
            .any(|s| task_dir.join(format!("{s}.attempt{n}")).exists())
    };
    let n = (1..).find(|&n| !taken(n)).unwrap_or(u32::MAX);
    for s in streams {
        match std::fs::rename(task_dir.join(s), task_dir.join(format!("{s}.attempt{n}"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file next to it, renamed into place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Appends one record to the journal (one `write` call per line).
pub fn append_journal(file: &mut std::fs::File, record: &TaskRecord) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)
}

/// Where each task of a run stands, from its files: status files first, then the journal
/// (for times and attempts); a task with output but no status is running while the run is
/// `alive`, and interrupted when it is not (its runner died while it ran).
pub fn collect(dir: &ResultsDir, info: &RunInfo, alive: bool) -> Vec<TaskRecord> {
    let journal = dir.read_journal();
    info.tasks
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let mut rec = journal
                .get(name)
                .cloned()
                .unwrap_or_else(|| TaskRecord::pending(name, index));
            rec.index = index;
            match dir.read_status(name) {
                Some(s) => rec.set_status(&s),
                None => {
                    // Output but no status: it runs now, or its runner died while it ran.
                    let started = dir.task(name).join("stdout").exists();
                    rec.state = match (started, alive) {
                        (true, true) => TaskState::Running,
                        (true, false) => TaskState::Interrupted,
                        (false, _) => TaskState::Pending,
                    };
                    rec.exit_code = None;
                }
            }
            rec
        })
        .collect()
}

/// The state and exit code a status file's text means.
pub fn state_of_status(text: &str) -> (TaskState, Option<i32>) {
    match text.trim() {
        "0" => (TaskState::Done, Some(0)),
        INTERRUPTED => (TaskState::Interrupted, None),
        other => (TaskState::Failed, other.parse().ok()),
    }
}

/// Counts per state, in table order.
pub fn counts(records: &[TaskRecord]) -> BTreeMap<TaskState, usize> {
    let mut out = BTreeMap::new();
    for r in records {
        *out.entry(r.state).or_insert(0) += 1;
    }
    out
}

/// The `onebox status` table: one line of counts, then one line per task.
pub fn status_table(name: &str, dir: &Path, records: &[TaskRecord]) -> String {
    let c = counts(records);
    let n = |s| c.get(&s).copied().unwrap_or(0);
    let mut out = format!(
        "run {name} ({}): {} done, {} failed, {} interrupted, {} running, {} pending\n",
        dir.display(),
        n(TaskState::Done),
        n(TaskState::Failed),
        n(TaskState::Interrupted),
        n(TaskState::Running),
        n(TaskState::Pending),
    );
    let width = records
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let _ = writeln!(
        out,
        "{:<width$}  {:<11}  {:>4}  {:>8}  {:>9}  HOST",
        "TASK", "STATE", "EXIT", "ATTEMPTS", "DURATION"
    );
    for r in records {
        let exit = match (r.exit_code, r.timed_out) {
            (Some(c), false) => c.to_string(),
            (Some(c), true) => format!("{c}*"),
            (None, _) => "-".into(),
        };
        let duration = r.duration_s.map_or("-".into(), format_duration);
        let pad = width.saturating_sub(r.name.chars().count());
        let _ = writeln!(
            out,
            "{}{}  {:<11}  {:>4}  {:>8}  {:>9}  {}",
            r.name,
            " ".repeat(pad),
            r.state.as_str(),
            exit,
            r.attempts,
            duration,
            r.host.as_deref().unwrap_or("-")
        );
    }
    if records.iter().any(|r| r.timed_out) {
        out.push_str("(* killed by its timeout)\n");
    }
    out
}

/// `0.042s`, `12.3s`, `4m05s`, `2h03m`.
pub fn format_duration(secs: f64) -> String {
    if secs < 10.0 {
        format!("{secs:.3}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        let s = secs as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = secs as u64 / 60;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

/// `2026-11-26T12:43:38.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let (date, secs) = civil(d.as_secs());
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_millis()
    )
}

/// `20261126T124338Z`: the timestamp `--prefix` appends to a run's name.
pub fn compact_timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let (date, secs) = civil(d.as_secs());
    format!(
        "{}T{:02}{:02}{:02}Z",
        date.replace('-', ""),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The UTC date (`YYYY-MM-DD`) and the seconds into that day of a Unix time.
fn civil(unix_secs: u64) -> (String, u64) {
    // Howard Hinnant's days-to-civil algorithm.
    let days = (unix_secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), unix_secs % 86_400)
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `buf.len()` bytes; gethostname writes at most that many.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // leap day 2000
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_696_999);
        assert_eq!(rfc3339(t), "2026-11-26T12:43:19.000Z");
        assert_eq!(compact_timestamp(t), "20261126T124319Z");
    }

    #[test]
    fn civil_agrees_with_day_counting() {
        // Walk day by day from 1970 and compare with a plain calendar.
        let (mut y, mut m, mut d) = (1970i64, 1i64, 1i64);
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        for day in 0..80_000u64 {
            assert_eq!(civil(day * 86_400 + 5).0, format!("{y:04}-{m:02}-{d:02}"));
            let len = match m {
                2 if leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn status_text_maps_to_states() {
        assert_eq!(state_of_status("0\n"), (TaskState::Done, Some(0)));
        assert_eq!(state_of_status("3"), (TaskState::Failed, Some(3)));
        assert_eq!(
            state_of_status("interrupted"),
            (TaskState::Interrupted, None)
        );
        assert_eq!(state_of_status("garbage"), (TaskState::Failed, None));
    }

    #[test]
    fn durations_format_by_size() {
        assert_eq!(format_duration(0.0421), "0.042s");
        assert_eq!(format_duration(12.34), "12.3s");
        assert_eq!(format_duration(245.0), "4m05s");
        assert_eq!(format_duration(7380.0), "2h03m");
    }

    #[test]
    fn table_aligns_unicode_names() {
        let mut a = TaskRecord::pending("fib-12", 0);
        a.state = TaskState::Done;
        a.exit_code = Some(0);
        a.attempts = 1;
        a.duration_s = Some(0.5);
        let b = TaskRecord::pending("übung", 1);
        let t = status_table("r", Path::new("/x"), &[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "run r (/x): 1 done, 0 failed, 0 interrupted, 0 running, 1 pending"
        );
        assert!(lines[2].starts_with("fib-12  done"));
        assert!(lines[3].starts_with("übung   pending"));
    }
}
