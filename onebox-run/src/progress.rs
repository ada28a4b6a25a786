//! What a person watching `onebox run` sees: a live bar on a terminal, log lines otherwise.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::results::{TaskRecord, TaskState, format_duration};

/// How `onebox run` reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// One line per finished task on stderr.
    Lines,
    /// Nothing (errors still go to stderr).
    Quiet,
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    lines: bool,
    total: usize,
    finished: Cell<usize>,
    failed: Cell<usize>,
    running: Cell<usize>,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, total: usize) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let bar = (mode == ProgressMode::Auto && terminal && total > 0).then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(10),
            );
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} finished, {msg}, ETA {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            quiet: mode == ProgressMode::Quiet,
            lines: bar.is_none() && mode != ProgressMode::Quiet,
            bar,
            total,
            finished: Cell::new(0),
            failed: Cell::new(0),
            running: Cell::new(0),
        }
    }

    fn message(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{} failed, {} running",
                self.failed.get(),
                self.running.get()
            ));
        }
    }

    pub(crate) fn started(&self, _name: &str) {
        self.running.set(self.running.get() + 1);
        self.message();
    }

    pub(crate) fn ended(&self, r: &TaskRecord) {
        self.running.set(self.running.get().saturating_sub(1));
        self.finished.set(self.finished.get() + 1);
        if r.state != TaskState::Done {
            self.failed.set(self.failed.get() + 1);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.finished.get() as u64);
            self.message();
            if r.state != TaskState::Done {
                bar.println(describe(r));
            }
        } else if self.lines {
            eprintln!(
                "onebox: [{}/{}] {}",
                self.finished.get(),
                self.total,
                describe(r)
            );
        }
    }

    /// A message worth seeing unless progress is off (submissions, resuming).
    pub(crate) fn info(&self, msg: &str) {
        if !self.quiet {
            self.println(msg);
        }
    }

    /// A message always shown (interruptions, problems), above the bar when there is one.
    pub(crate) fn println(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    pub(crate) fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.tick();
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe(r: &TaskRecord) -> String {
    let exit = match (r.exit_code, r.timed_out) {
        (_, true) => "timed out".to_owned(),
        (Some(c), _) => format!("exit {c}"),
        (None, _) => "no exit code".to_owned(),
    };
    let took = r.duration_s.map(format_duration).unwrap_or_default();
    let tries = if r.attempts > 1 {
        format!(", {} attempts", r.attempts)
    } else {
        String::new()
    };
    format!("{} {} ({exit}{tries}) {took}", r.name, r.state.as_str())
}
