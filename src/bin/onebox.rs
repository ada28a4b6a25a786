//! The `onebox` command: `onebox info` shows what the machine has and how a cluster would be
//! sized on it.

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
    }
}
