//! The two job files, read and checked: `run.yaml` (where and how) and `tasks.yaml` (what).
//!
//! Both are parsed strictly: an unknown key is an error that names the key and its line (and,
//! in `tasks.yaml`, the task's index), so a typo such as `timout:` never runs a batch with a
//! setting silently left out. Everything that can be checked before a run starts is checked
//! here: the executor's class, task names (unique, usable as a directory), commands.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use onebox::{Error, Result};

/// A checked `run.yaml`: which executor runs the tasks, where results go, what to copy first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// The engine that runs the tasks.
    pub executor: Executor,
    /// Where each run's results go: a directory template in which `{name}` is the run's name.
    pub results_path: String,
    /// Directories copied (incrementally) before the run starts.
    pub file_syncs: Vec<FileSync>,
}

/// The engine that runs a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// Child processes on this machine (`LocalExecutor`, or `DaskExecutor` with a
    /// `LocalCluster`/`SaturnCluster` and no `scheduler_address`).
    Local {
        /// At most this many tasks at once, from `cluster_kwargs` (`n_workers` times
        /// `threads_per_worker`); `None`: the machine's CPU budget.
        slots: Option<usize>,
    },
    /// Slurm job arrays (`SlurmExecutor`): the multi-node path.
    Slurm(SlurmOptions),
    /// A running Dask scheduler (`DaskExecutor` with a `scheduler_address`).
    Dask(DaskOptions),
}

/// Settings of the Dask executor with a scheduler address.
#[derive(Debug, Clone, PartialEq)]
pub struct DaskOptions {
    /// The scheduler, e.g. `tcp://10.0.0.5:8786`.
    pub scheduler_address: String,
    /// The Python interpreter that runs onebox's client (needs `distributed`); default
    /// `python3`.
    pub python: String,
}

/// Settings of the Slurm executor (keys of `executor:` in `run.yaml`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--mem` of each array element, as Slurm writes it (`500M`, `4G`).
    pub mem: Option<String>,
    /// Tasks run one after the other in one array element (groups tiny tasks; default 1).
    pub tasks_per_job: usize,
    /// At most this many array elements at once (`--array=...%N`).
    pub max_parallel: Option<usize>,
    /// More `sbatch` arguments, passed as given.
    pub sbatch_args: Vec<String>,
    /// How often `squeue` is asked about the array.
    pub poll_interval: Duration,
}

/// One `file_syncs` entry: copy `src` to `dest` (skipping `.git`) before the run.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSync {
    /// The directory (or file) to copy.
    pub src: PathBuf,
    /// Where it goes; equal to `src` when `dest` is left out (nothing to copy on one machine).
    pub dest: PathBuf,
}

/// A command as written: a string (run by `sh -c` unless `shell: false`) or a list (an argv).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CommandLine {
    /// One string.
    Text(String),
    /// A program and its arguments.
    Argv(Vec<String>),
}

/// The shell that runs string commands (an absolute path: no `PATH` search per task).
pub const SHELL: &str = "/bin/sh";

/// One checked task of `tasks.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its position in `tasks.yaml`, from 0 (`ONEBOX_RANK`).
    pub index: usize,
    /// Its name: the directory of its results. Default: its index.
    pub name: String,
    /// The program and arguments to start (`["/bin/sh", "-c", text]` for shell commands).
    pub argv: Vec<String>,
    /// The command as written (for the summary and for Slurm scripts).
    pub command: CommandLine,
    /// Cores it needs (default 1).
    pub cpus: usize,
    /// GPUs it needs; `None` leaves `CUDA_VISIBLE_DEVICES` as inherited, `Some(0)` hides GPUs.
    pub gpus: Option<usize>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Each attempt is killed (its whole process group) after this long.
    pub timeout: Option<Duration>,
    /// Runs again up to this many times after a failure (default 0).
    pub retries: u32,
    /// The working directory (default: where `onebox run` was started).
    pub workdir: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// The files as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    executor: Option<Spanned<ExecutorFile>>,
    results: Option<Spanned<ResultsFile>>,
    #[serde(default)]
    file_syncs: Vec<FileSyncFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutorFile {
    class_spec: Spanned<String>,
    cluster_class: Option<Spanned<String>>,
    cluster_kwargs: Option<ClusterKwargs>,
    scheduler_address: Option<String>,
    python: Option<String>,
    partition: Option<String>,
    account: Option<String>,
    mem: Option<Text>,
    tasks_per_job: Option<usize>,
    max_parallel: Option<usize>,
    #[serde(default)]
    sbatch_args: Vec<String>,
    poll_interval: Option<Seconds>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterKwargs {
    n_workers: Option<usize>,
    threads_per_worker: Option<usize>,
    nthreads: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsFile {
    class_spec: Spanned<String>,
    path: Option<String>,
    s3_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSyncFile {
    src: String,
    dest: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TasksFile {
    tasks: Vec<TaskFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    command: Option<CommandLine>,
    name: Option<Text>,
    shell: Option<bool>,
    cpus: Option<usize>,
    gpus: Option<usize>,
    #[serde(default)]
    env: BTreeMap<String, Text>,
    timeout: Option<Seconds>,
    #[serde(default)]
    retries: u32,
    workdir: Option<String>,
}

/// Only used to find where each task starts, to name the task in an error.
#[derive(Deserialize)]
struct TasksOutline {
    tasks: Vec<Spanned<IgnoredAny>>,
}

/// A scalar taken as text: YAML `12` and `"12"` are both the name `12`.
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: a number of seconds (`90`, `0.5`) or text with units (`90s`, `10m`, `1h30m`).
struct Seconds(Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: seconds (90, 0.5) or text such as 90s, 10m, 1h30m")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Seconds, E> {
                Ok(Seconds(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Seconds, E> {
                u64::try_from(v)
                    .map(|v| Seconds(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Seconds, E> {
                Duration::try_from_secs_f64(v)
                    .map(Seconds)
                    .map_err(|_| E::custom("a duration must be a positive number of seconds"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Seconds, E> {
                parse_duration(v).map(Seconds).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for CommandLine {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CommandLine;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a command: a string, or a list of program and arguments")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<CommandLine, E> {
                Ok(CommandLine::Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<CommandLine, E> {
                Ok(CommandLine::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<CommandLine, E> {
                Ok(CommandLine::Text(v.to_string()))
            }
            // `command: true` (the program) is a YAML boolean.
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<CommandLine, E> {
                Ok(CommandLine::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<CommandLine, A::Error> {
                let mut argv = Vec::new();
                while let Some(Text(arg)) = seq.next_element()? {
                    argv.push(arg);
                }
                Ok(CommandLine::Argv(argv))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                _map: A,
            ) -> std::result::Result<CommandLine, A::Error> {
                Err(de::Error::custom(
                    "a command is a string or a list, not a mapping",
                ))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses `90`, `1.5`, `90s`, `10m`, `2h`, `1h30m`, `1d`, `500ms`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration (write seconds, or 90s, 10m, 1h30m, 500ms)");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        let unit_rest = &rest[num_end..];
        let unit_end = unit_rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(unit_rest.len());
        let scale = match unit_rest[..unit_end].trim() {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &unit_rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

// ---------------------------------------------------------------------------------------------
// Reading and checking.

/// Reads and checks a `run.yaml`.
pub fn read_run_file(path: &Path) -> Result<RunSpec> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_run(&text, &path.display().to_string())
}

/// Reads and checks a `tasks.yaml`.
pub fn read_tasks_file(path: &Path) -> Result<Vec<Task>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_tasks(&text, &path.display().to_string())
}

fn at(file: &str, loc: &serde_saphyr::Location) -> String {
    format!("{file}, line {}", loc.line())
}

/// Checks the text of a `run.yaml`; `file` names it in errors.
pub fn parse_run(text: &str, file: &str) -> Result<RunSpec> {
    let raw: RunFile = serde_saphyr::from_str(text).map_err(|e| yaml_error(file, &e, None))?;
    let executor = match raw.executor {
        None => Executor::Local { slots: None },
        Some(ex) => executor(file, ex)?,
    };
    let results = raw.results.ok_or_else(|| {
        Error::Invalid(format!(
            "{file}: `results:` is missing (for example `results: {{class_spec: LocalResults, path: /tmp/results/{{name}}}}`)"
        ))
    })?;
    let results_path = match results.value.class_spec.value.as_str() {
        "LocalResults" => {
            if results.value.s3_url.is_some() {
                return Err(Error::Invalid(format!(
                    "{}: `s3_url` belongs to S3Results; LocalResults takes a `path`",
                    at(file, &results.referenced)
                )));
            }
            match results.value.path {
                Some(p) if !p.trim().is_empty() => p,
                _ => {
                    return Err(Error::Invalid(format!(
                        "{}: LocalResults needs a `path` (for example /tmp/results/{{name}})",
                        at(file, &results.referenced)
                    )));
                }
            }
        }
        "S3Results" => {
            return Err(Error::Invalid(format!(
                "{}: S3Results is not supported yet: use `class_spec: LocalResults` with a `path` \
                 (on a filesystem every node shares, for Slurm), then copy the results to S3",
                at(file, &results.value.class_spec.referenced)
            )));
        }
        other => {
            return Err(Error::Invalid(format!(
                "{}: unknown results class_spec {other:?} (expected LocalResults)",
                at(file, &results.value.class_spec.referenced)
            )));
        }
    };
    let file_syncs = raw
        .file_syncs
        .into_iter()
        .map(|f| FileSync {
            dest: PathBuf::from(expand_home(f.dest.as_deref().unwrap_or(&f.src))),
            src: PathBuf::from(expand_home(&f.src)),
        })
        .collect();
    Ok(RunSpec {
        executor,
        results_path,
        file_syncs,
    })
}

fn executor(file: &str, ex: Spanned<ExecutorFile>) -> Result<Executor> {
    let e = ex.value;
    let class = e.class_spec.value.as_str();
    let slurm_only = [
        ("partition", e.partition.is_some()),
        ("account", e.account.is_some()),
        ("mem", e.mem.is_some()),
        ("tasks_per_job", e.tasks_per_job.is_some()),
        ("sbatch_args", !e.sbatch_args.is_empty()),
        ("poll_interval", e.poll_interval.is_some()),
    ];
    let refuse_slurm_keys = |class: &str| -> Result<()> {
        match slurm_only.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(Error::Invalid(format!(
                "{}: `{key}` is a SlurmExecutor setting; {class} does not use it",
                at(file, &ex.referenced)
            ))),
            None => Ok(()),
        }
    };
    match class {
        "LocalExecutor" | "DaskExecutor" => {
            refuse_slurm_keys(class)?;
            if let Some(cc) = &e.cluster_class {
                if class == "LocalExecutor" {
                    return Err(Error::Invalid(format!(
                        "{}: `cluster_class` is a DaskExecutor setting",
                        at(file, &cc.referenced)
                    )));
                }
                if !matches!(cc.value.as_str(), "LocalCluster" | "SaturnCluster") {
                    return Err(Error::Invalid(format!(
                        "{}: unknown cluster_class {:?} (expected LocalCluster or SaturnCluster)",
                        at(file, &cc.referenced),
                        cc.value
                    )));
                }
            }
            if let Some(addr) = e.scheduler_address {
                if class == "LocalExecutor" {
                    return Err(Error::Invalid(format!(
                        "{}: `scheduler_address` is a DaskExecutor setting",
                        at(file, &ex.referenced)
                    )));
                }
                if e.cluster_kwargs.is_some() || e.max_parallel.is_some() {
                    return Err(Error::Invalid(format!(
                        "{}: with a scheduler_address the Dask cluster decides how many tasks run at once; cluster_kwargs and max_parallel do not apply",
                        at(file, &ex.referenced)
                    )));
                }
                return Ok(Executor::Dask(DaskOptions {
                    scheduler_address: addr,
                    python: e.python.unwrap_or_else(|| "python3".to_owned()),
                }));
            }
            if e.python.is_some() {
                return Err(Error::Invalid(format!(
                    "{}: `python` runs the Dask client, which only a DaskExecutor with a scheduler_address uses",
                    at(file, &ex.referenced)
                )));
            }
            let slots = match e.cluster_kwargs {
                None => e.max_parallel,
                Some(k) => {
                    let per_worker = k.threads_per_worker.or(k.nthreads);
                    match (k.n_workers, per_worker) {
                        (None, None) => e.max_parallel,
                        (w, t) => Some(w.unwrap_or(1) * t.unwrap_or(1)),
                    }
                }
            };
            if slots == Some(0) {
                return Err(Error::Invalid(format!(
                    "{}: the executor would run 0 tasks at once (n_workers, threads_per_worker and max_parallel must be at least 1)",
                    at(file, &ex.referenced)
                )));
            }
            Ok(Executor::Local { slots })
        }
        "SlurmExecutor" => {
            if e.cluster_class.is_some() || e.cluster_kwargs.is_some() {
                return Err(Error::Invalid(format!(
                    "{}: `cluster_class` and `cluster_kwargs` are DaskExecutor settings; SlurmExecutor takes partition, account, mem, tasks_per_job, max_parallel, sbatch_args, poll_interval",
                    at(file, &ex.referenced)
                )));
            }
            if e.scheduler_address.is_some() || e.python.is_some() {
                return Err(Error::Invalid(format!(
                    "{}: `scheduler_address` and `python` are DaskExecutor settings",
                    at(file, &ex.referenced)
                )));
            }
            let tasks_per_job = e.tasks_per_job.unwrap_or(1);
            if tasks_per_job == 0 || e.max_parallel == Some(0) {
                return Err(Error::Invalid(format!(
                    "{}: tasks_per_job and max_parallel must be at least 1",
                    at(file, &ex.referenced)
                )));
            }
            Ok(Executor::Slurm(SlurmOptions {
                partition: e.partition,
                account: e.account,
                mem: e.mem.map(|t| t.0),
                tasks_per_job,
                max_parallel: e.max_parallel,
                sbatch_args: e.sbatch_args,
                poll_interval: e
                    .poll_interval
                    .map_or(Duration::from_millis(500), |s| s.0)
                    .max(Duration::from_millis(50)),
            }))
        }
        other => Err(Error::Invalid(format!(
            "{}: unknown executor class_spec {other:?} (expected LocalExecutor, DaskExecutor or SlurmExecutor)",
            at(file, &e.class_spec.referenced)
        ))),
    }
}

/// Checks the text of a `tasks.yaml`; `file` names it in errors.
pub fn parse_tasks(text: &str, file: &str) -> Result<Vec<Task>> {
    let raw: TasksFile = serde_saphyr::from_str(text).map_err(|e| {
        let outline: Option<TasksOutline> = serde_saphyr::from_str(text).ok();
        yaml_error(file, &e, outline.as_ref())
    })?;
    let outline: Option<TasksOutline> = serde_saphyr::from_str(text).ok();
    let line_of = |i: usize| {
        outline
            .as_ref()
            .and_then(|o| o.tasks.get(i))
            .map(|s| format!(", line {}", s.referenced.line()))
            .unwrap_or_default()
    };
    let mut seen = HashSet::new();
    let mut tasks = Vec::with_capacity(raw.tasks.len());
    for (index, t) in raw.tasks.into_iter().enumerate() {
        let here = || format!("{file}: task {index}{}", line_of(index));
        let name = t.name.map_or_else(|| index.to_string(), |n| n.0);
        check_name(&name).map_err(|why| Error::Invalid(format!("{}: {why}", here())))?;
        if !seen.insert(name.clone()) {
            return Err(Error::Invalid(format!(
                "{}: the name {name:?} is used by an earlier task (names must be unique: they are the results directories)",
                here()
            )));
        }
        let command = t
            .command
            .ok_or_else(|| Error::Invalid(format!("{}: `command` is missing", here())))?;
        let argv = match (&command, t.shell) {
            (CommandLine::Text(s), None | Some(true)) => {
                vec![SHELL.to_owned(), "-c".to_owned(), s.clone()]
            }
            (CommandLine::Text(s), Some(false)) => {
                split_words(s).map_err(|why| Error::Invalid(format!("{}: {why}", here())))?
            }
            (CommandLine::Argv(a), None | Some(false)) => a.clone(),
            (CommandLine::Argv(a), Some(true)) => vec![
                SHELL.to_owned(),
                "-c".to_owned(),
                a.iter()
                    .map(|w| shell_quote(w))
                    .collect::<Vec<_>>()
                    .join(" "),
            ],
        };
        let empty = match &command {
            CommandLine::Text(s) => s.trim().is_empty(),
            CommandLine::Argv(a) => a.first().is_none_or(|p| p.is_empty()),
        };
        if empty || argv.is_empty() {
            return Err(Error::Invalid(format!("{}: the command is empty", here())));
        }
        if t.cpus == Some(0) {
            return Err(Error::Invalid(format!(
                "{}: cpus must be at least 1",
                here()
            )));
        }
        for key in t.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(Error::Invalid(format!(
                    "{}: {key:?} cannot be an environment variable name",
                    here()
                )));
            }
        }
        tasks.push(Task {
            index,
            name,
            argv,
            command,
            cpus: t.cpus.unwrap_or(1),
            gpus: t.gpus,
            env: t.env.into_iter().map(|(k, v)| (k, v.0)).collect(),
            timeout: t.timeout.map(|s| s.0).filter(|d| !d.is_zero()),
            retries: t.retries,
            workdir: t.workdir.map(|w| PathBuf::from(expand_home(&w))),
        });
    }
    Ok(tasks)
}

/// Why `name` cannot be a task's results directory, if it cannot.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("a task name cannot be empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!(
            "the task name {name:?} is not a usable directory name"
        ));
    }
    if name.contains('/') || name.contains('\0') {
        return Err(format!(
            "the task name {name:?} cannot contain `/` or a NUL byte (it names a directory)"
        ));
    }
    if name.starts_with('.') {
        return Err(format!(
            "the task name {name:?} starts with `.`: such names are kept for onebox's own files"
        ));
    }
    if name == super::results::SUMMARY_FILE {
        return Err(format!(
            "the task name {name:?} is kept for the run's summary"
        ));
    }
    if name.len() > 255 {
        return Err("a task name must be at most 255 bytes (it names a directory)".into());
    }
    Ok(())
}

fn yaml_error(file: &str, e: &serde_saphyr::Error, outline: Option<&TasksOutline>) -> Error {
    let task = match (e.location(), outline) {
        (Some(loc), Some(o)) => o
            .tasks
            .iter()
            .rposition(|t| t.referenced.line() <= loc.line())
            .map(|i| format!(" (in task {i})"))
            .unwrap_or_default(),
        _ => String::new(),
    };
    Error::Invalid(format!("{file}{task}: {e}"))
}

/// `~/x` as `$HOME/x`.
pub(crate) fn expand_home(p: &str) -> String {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ if p == "~" => std::env::var("HOME").unwrap_or_else(|_| p.to_owned()),
        _ => p.to_owned(),
    }
}

/// Words that mean something to the shell itself at the start of a command: builtins with
/// no program of the same name, or that change the shell's own state, and keywords.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done", "elif",
    "else", "esac", "eval", "exec", "exit", "export", "fc", "fg", "fi", "for", "getopts", "hash",
    "if", "jobs", "local", "read", "readonly", "return", "set", "shift", "source", "then", "times",
    "trap", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
];

/// The argv a shell command line amounts to when the shell would do nothing but split it into
/// words and run a program: `[SHELL, "-c", "julia fib.jl 12"]` is `["julia", "fib.jl", "12"]`,
/// started directly, saving a shell's start per task (as make does). `None` when the shell has
/// work to do: variables, quotes, escapes, globs, redirections, operators, braces, `~`,
/// comments, a leading assignment, non-ASCII text, or a first word that is a shell builtin or
/// keyword. A program that is not found then fails with 127, as the shell would.
pub fn without_shell(argv: &[String]) -> Option<Vec<String>> {
    let [shell, dash_c, text] = argv else {
        return None;
    };
    if shell != SHELL || dash_c != "-c" {
        return None;
    }
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" \t-_./:,+@%=".contains(&b));
    let words: Vec<String> = text.split_ascii_whitespace().map(str::to_owned).collect();
    let first = words.first()?;
    // `A=1 cmd` is an assignment; `cmd --x=1` an argument.
    let program = !first.contains('=') && !SHELL_WORDS.contains(&first.as_str());
    (plain && program).then_some(words)
}

/// Quotes `word` for a POSIX shell (unchanged when it needs no quoting).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Splits a command line into words as a POSIX shell would (quotes and backslashes; no
/// variables, globs or operators), for `shell: false` string commands.
pub fn split_words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in the command {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in the command {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in the command {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("a trailing \\ in the command {text:?}")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run_yaml(body: &str) -> Result<RunSpec> {
        parse_run(body, "run.yaml")
    }

    fn err(r: Result<impl fmt::Debug>) -> String {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.to_string(),
        }
    }

    const RESULTS: &str = "results:\n  class_spec: LocalResults\n  path: /tmp/r/{name}\n";

    #[test]
    fn saturn_run_files_are_accepted_as_written() {
        let spec = run_yaml(&format!(
            "executor:\n  class_spec: DaskExecutor\n  cluster_class: LocalCluster\n{RESULTS}file_syncs:\n  - src: /home/jovyan/workspace/julia-example/\n    dest: /other/\n  - src: /a\n"
        ))
        .unwrap();
        assert_eq!(spec.executor, Executor::Local { slots: None });
        assert_eq!(spec.results_path, "/tmp/r/{name}");
        assert_eq!(spec.file_syncs[0].dest, PathBuf::from("/other/"));
        assert_eq!(spec.file_syncs[1].dest, PathBuf::from("/a"));
        let saturn = run_yaml(&format!(
            "executor:\n  class_spec: DaskExecutor\n  cluster_class: SaturnCluster\n  cluster_kwargs:\n    n_workers: 3\n    threads_per_worker: 2\n{RESULTS}"
        ))
        .unwrap();
        assert_eq!(saturn.executor, Executor::Local { slots: Some(6) });
        let tasks = parse_tasks(
            "tasks:\n  - command: julia /w/fibonacci.jl 12\n  - command: julia /w/fibonacci.jl 30\n    name: fib-30\n",
            "tasks.yaml",
        )
        .unwrap();
        assert_eq!(tasks[0].name, "0");
        assert_eq!(tasks[0].argv, [SHELL, "-c", "julia /w/fibonacci.jl 12"]);
        assert_eq!(tasks[1].name, "fib-30");
        assert_eq!(tasks[1].index, 1);
        assert_eq!(
            (tasks[1].cpus, tasks[1].gpus, tasks[1].retries),
            (1, None, 0)
        );
    }

    #[test]
    fn task_extensions_are_read() {
        let t = parse_tasks(
            "tasks:\n  - command: [python, train.py, --fold, 3]\n    name: 7\n    cpus: 4\n    gpus: 1\n    env: {SEED: 42, MODE: fast}\n    timeout: 1h30m\n    retries: 2\n    workdir: /w\n",
            "t",
        )
        .unwrap();
        let t = &t[0];
        assert_eq!(t.name, "7");
        assert_eq!(t.argv, ["python", "train.py", "--fold", "3"]);
        assert_eq!((t.cpus, t.gpus, t.retries), (4, Some(1), 2));
        assert_eq!(t.env["SEED"], "42");
        assert_eq!(t.timeout, Some(Duration::from_secs(5400)));
        assert_eq!(t.workdir, Some(PathBuf::from("/w")));
    }

    #[test]
    fn simple_shell_commands_start_without_the_shell() {
        let sh = |text: &str| vec![SHELL.to_owned(), "-c".to_owned(), text.to_owned()];
        assert_eq!(without_shell(&sh("true")), Some(vec!["true".to_owned()]));
        assert_eq!(
            without_shell(&sh("  julia /w/fib.jl\t12 --x=1 ")),
            Some(
                ["julia", "/w/fib.jl", "12", "--x=1"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(
            without_shell(&sh("julia /w/fib.jl\t12 -p 2,3 a+b@c%d:e")),
            Some(
                ["julia", "/w/fib.jl", "12", "-p", "2,3", "a+b@c%d:e"]
                    .map(String::from)
                    .to_vec()
            )
        );
        for busy in [
            "echo $HOME",
            "echo 'a b'",
            "echo \"a\"",
            "ls *.txt",
            "ls > out",
            "a && b",
            "a; b",
            "a | b",
            "FOO=1 env",
            "cat ~/x",
            "echo a # b",
            "echo a\\ b",
            "cd /tmp",
            "exit 3",
            "export A",
            "(true)",
            "echo {a,b}",
            "echo ü",
            "",
            "   ",
        ] {
            assert_eq!(without_shell(&sh(busy)), None, "{busy:?}");
        }
        assert_eq!(without_shell(&["true".to_owned()]), None, "already an argv");
        assert_eq!(
            without_shell(&["/bin/bash".to_owned(), "-c".to_owned(), "true".to_owned()]),
            None
        );
    }

    #[test]
    fn shell_setting_decides_how_commands_start() {
        let t = parse_tasks(
            "tasks:\n  - command: echo 'a b' c\n    shell: false\n  - command: [echo, a b]\n    shell: true\n",
            "t",
        )
        .unwrap();
        assert_eq!(t[0].argv, ["echo", "a b", "c"]);
        assert_eq!(t[1].argv, [SHELL, "-c", "echo 'a b'"]);
    }

    #[test]
    fn bad_executor_and_results_are_named() {
        let e = err(run_yaml(&format!(
            "executor:\n  class_spec: RayExecutor\n{RESULTS}"
        )));
        assert!(e.contains("line 2") && e.contains("RayExecutor"), "{e}");
        let e = err(run_yaml(&format!(
            "executor:\n  class_spec: DaskExecutor\n  workers: 2\n{RESULTS}"
        )));
        assert!(
            e.contains("unknown field `workers`") && e.contains("line 3"),
            "{e}"
        );
        let e = err(run_yaml(
            "results:\n  class_spec: S3Results\n  s3_url: s3://b/{name}/\n",
        ));
        assert!(e.contains("S3Results is not supported yet"), "{e}");
        let dask = run_yaml(&format!(
            "executor:\n  class_spec: DaskExecutor\n  scheduler_address: tcp://127.0.0.1:8786\n{RESULTS}"
        ))
        .unwrap();
        assert_eq!(
            dask.executor,
            Executor::Dask(DaskOptions {
                scheduler_address: "tcp://127.0.0.1:8786".into(),
                python: "python3".into()
            })
        );
        let e = err(run_yaml(&format!(
            "executor:\n  class_spec: LocalExecutor\n  scheduler_address: tcp://127.0.0.1:8786\n{RESULTS}"
        )));
        assert!(
            e.contains("`scheduler_address` is a DaskExecutor setting"),
            "{e}"
        );
        let e = err(run_yaml("executor:\n  class_spec: LocalExecutor\n"));
        assert!(e.contains("`results:` is missing"), "{e}");
        let e = err(run_yaml(&format!(
            "executor:\n  class_spec: LocalExecutor\n  partition: gpu\n{RESULTS}"
        )));
        assert!(e.contains("`partition` is a SlurmExecutor setting"), "{e}");
        let e = err(run_yaml(&format!(
            "executor:\n  class_spec: DaskExecutor\n  cluster_class: KubeCluster\n{RESULTS}"
        )));
        assert!(e.contains("KubeCluster"), "{e}");
    }

    #[test]
    fn bad_tasks_name_the_task_and_line() {
        let cases = [
            (
                "tasks:\n  - command: a\n  - command: b\n    cpu: 2\n",
                "task 1",
                "unknown field `cpu`",
            ),
            (
                "tasks:\n  - command: a\n  - name: x\n",
                "task 1, line 3",
                "`command` is missing",
            ),
            (
                "tasks:\n  - command: a\n    name: x\n  - command: b\n    name: x\n",
                "task 1",
                "used by an earlier task",
            ),
            (
                "tasks:\n  - command: a\n  - command: b\n    name: ../up\n",
                "task 1",
                "cannot contain `/`",
            ),
            (
                "tasks:\n  - command: a\n    name: ..\n",
                "task 0",
                "not a usable directory",
            ),
            (
                "tasks:\n  - command: a\n    name: a/b\n",
                "task 0",
                "cannot contain `/`",
            ),
            (
                "tasks:\n  - command: a\n    name: .hidden\n",
                "task 0",
                "starts with `.`",
            ),
            (
                "tasks:\n  - command: '  '\n",
                "task 0",
                "the command is empty",
            ),
            (
                "tasks:\n  - command: []\n",
                "task 0",
                "the command is empty",
            ),
            (
                "tasks:\n  - command: a\n    cpus: 0\n",
                "task 0",
                "cpus must be at least 1",
            ),
            (
                "tasks:\n  - command: a\n    timeout: soon\n",
                "task 0",
                "not a duration",
            ),
            (
                "tasks:\n  - command: a\n  - command: b\n    name: 0\n",
                "task 1",
                "used by an earlier task",
            ),
            (
                "tasks:\n  - command: a\n    shell: false\n    command: b\n",
                "",
                "duplicate",
            ),
        ];
        for (text, place, what) in cases {
            let e = err(parse_tasks(text, "tasks.yaml"));
            assert!(
                e.contains(place) && e.to_lowercase().contains(&what.to_lowercase()),
                "{text:?} gave: {e}"
            );
        }
    }

    #[test]
    fn yaml_scalars_that_are_not_strings_are_commands_too() {
        let t = parse_tasks(
            "tasks:\n  - command: true\n  - command: false\n    shell: false\n",
            "t",
        )
        .unwrap();
        assert_eq!(t[0].argv, [SHELL, "-c", "true"]);
        assert_eq!(t[1].argv, ["false"]);
    }

    #[test]
    fn empty_and_unicode_task_lists() {
        assert!(parse_tasks("tasks: []\n", "t").unwrap().is_empty());
        let t = parse_tasks("tasks:\n  - command: echo ü\n    name: übung-α\n", "t").unwrap();
        assert_eq!(t[0].name, "übung-α");
    }

    #[test]
    fn durations_parse_in_every_form() {
        let d = |s| parse_duration(s).unwrap();
        assert_eq!(d("90"), Duration::from_secs(90));
        assert_eq!(d("0.5"), Duration::from_millis(500));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("10m"), Duration::from_secs(600));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1d"), Duration::from_secs(86400));
        for bad in ["", "m", "10x", "-1", "1h-2m"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn quoting_then_splitting_gives_the_words_back(words in proptest::collection::vec("\\PC*", 0..6)) {
            let line = words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(split_words(&line).unwrap(), words);
        }

        #[test]
        fn durations_in_seconds_and_minutes_agree(m in 0u64..10_000) {
            prop_assert_eq!(parse_duration(&format!("{m}m")).unwrap(), parse_duration(&(m * 60).to_string()).unwrap());
        }
    }
}
