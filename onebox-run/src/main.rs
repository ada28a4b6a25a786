//! The `onebox` command: `onebox info` shows what the machine has and how a cluster would be
//! sized on it; `onebox run` runs a batch of commands from Saturn Run's job files and
//! `onebox status` shows where its tasks stand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use onebox::{Hardware, Plan, Settings};

#[derive(Parser)]
#[command(name = "onebox", version, about = "One machine as a local cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the detected CPUs, memory and GPUs, and the cluster onebox would start here.
    Info {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run the tasks of TASKS_YAML as RUN_YAML says (Saturn Run's files): on every core and GPU
    /// here, or on Slurm. Exits 0 only when every task exits 0.
    #[command(group(clap::ArgGroup::new("run_name").required(true).args(["name", "prefix"])))]
    Run {
        /// run.yaml: the executor, the results path (`{name}` is the run's name), file syncs.
        run_yaml: PathBuf,
        /// tasks.yaml: the commands (`tasks:` list).
        tasks_yaml: PathBuf,
        /// The run's name.
        #[arg(long)]
        name: Option<String>,
        /// Name the run PREFIX plus the UTC time.
        #[arg(long)]
        prefix: Option<String>,
        /// Skip the tasks whose status is 0 from an earlier run of this name.
        #[arg(long)]
        resume: bool,
        /// Delete the earlier results of this name first.
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// At most this many tasks at once (default: the CPU budget).
        #[arg(long, value_name = "N")]
        max_parallel: Option<usize>,
        /// Check the files and print what would run; run and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// No progress output (errors still go to stderr).
        #[arg(long, short)]
        quiet: bool,
        /// Serve the live dashboard of the batch at ADDR (e.g. 127.0.0.1:8787, or a port).
        #[arg(long, value_name = "ADDR")]
        dashboard: Option<String>,
    },
    /// Show where each task of a run stands: done, failed, running, pending, exit codes,
    /// durations, attempts. Finds the run by --name (a run started on this machine), by
    /// RUN_YAML and --name (as `saturn collect`), or by its results directory with --path.
    Status {
        /// The run.yaml the run was started with.
        run_yaml: Option<PathBuf>,
        /// The run's name.
        #[arg(long, required_unless_present = "path")]
        name: Option<String>,
        /// The run's results directory, instead of RUN_YAML and --name.
        #[arg(long, conflicts_with_all = ["run_yaml", "name"])]
        path: Option<PathBuf>,
        /// Print the records as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("onebox: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> onebox::Result<ExitCode> {
    match cli.command {
        Command::Info { json } => {
            let hw = Hardware::detect();
            let plan = Plan::new(&hw, &Settings::from_env()?)?;
            if json {
                let doc = serde_json::json!({ "hardware": hw, "plan": plan });
                println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            } else {
                println!("{hw}");
                println!(
                    "\ncluster  {} CPU threads, {} GPU(s) x {} streams, memory budget {}",
                    plan.cpu_threads,
                    plan.gpus.len(),
                    plan.streams_per_gpu,
                    onebox::hardware::format_bytes(plan.memory_limit)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            run_yaml,
            tasks_yaml,
            name,
            prefix,
            resume,
            overwrite,
            max_parallel,
            dry_run,
            quiet,
            dashboard,
        } => {
            use onebox_run::{self as run, ProgressMode, RunOptions, TaskState};
            let spec = run::spec::read_run_file(&run_yaml)?;
            let tasks = run::spec::read_tasks_file(&tasks_yaml)?;
            let name = match (name, prefix) {
                (Some(n), _) => n,
                (None, Some(p)) => run::name_from_prefix(&p),
                (None, None) => {
                    return Err(onebox::Error::Invalid("give --name or --prefix".into()));
                }
            };
            if max_parallel == Some(0) {
                return Err(onebox::Error::config("--max-parallel", 0, "at least 1"));
            }
            if !dry_run {
                run::signals::install().map_err(|e| {
                    onebox::Error::Invalid(format!(
                        "cannot catch SIGINT, SIGTERM, SIGHUP and SIGQUIT: {e}"
                    ))
                })?;
            }
            let opts = RunOptions {
                resume,
                overwrite,
                max_parallel,
                dry_run,
                dashboard,
                progress: if quiet {
                    ProgressMode::Quiet
                } else {
                    ProgressMode::Auto
                },
                ..RunOptions::new(name)
            };
            let report = run::run(&spec, &tasks, &opts)?;
            if dry_run {
                return Ok(ExitCode::SUCCESS);
            }
            if !quiet {
                eprintln!(
                    "onebox: run {}: {} done, {} failed, {} interrupted, {} not run; results in {}",
                    report.name,
                    report.count(TaskState::Done),
                    report.count(TaskState::Failed),
                    report.count(TaskState::Interrupted),
                    report.count(TaskState::Pending),
                    report.results_dir.display()
                );
            }
            Ok(if report.interrupted {
                ExitCode::from(130)
            } else if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status {
            run_yaml,
            name,
            path,
            json,
        } => {
            use onebox_run::{self as run, ResultsDir};
            let (label, dir, records) = match (path, run_yaml, name) {
                (Some(p), _, _) => {
                    let dir = ResultsDir::new(p);
                    let records = run::status_at(&dir)?;
                    let label = dir
                        .read_run_info()?
                        .map_or_else(|| dir.root().display().to_string(), |i| i.name);
                    (label, dir, records)
                }
                (None, Some(y), Some(n)) => {
                    let spec = run::spec::read_run_file(&y)?;
                    let (dir, records) = run::status(&spec, &n)?;
                    (n, dir, records)
                }
                (None, None, Some(n)) => {
                    let dir = run::find_run(&n)?;
                    let records = run::status_at(&dir)?;
                    (n, dir, records)
                }
                _ => {
                    return Err(onebox::Error::Invalid(
                        "give RUN_YAML and --name, or --path".into(),
                    ));
                }
            };
            if json {
                let text = serde_json::to_string_pretty(&records)
                    .map_err(|e| onebox::Error::Invalid(e.to_string()))?;
                println!("{text}");
            } else {
                print!(
                    "{}",
                    run::results::status_table(&label, dir.root(), &records)
                );
            }
            let all_done = records.iter().all(|r| r.state == run::TaskState::Done);
            Ok(if all_done {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
