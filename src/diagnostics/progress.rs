//! Progress bars for long computes: tasks done out of submitted, per task group, with an ETA.
//!
//! A `compute()` called from outside the pool watches the cluster's events while it runs; if
//! it is still running after about a second, bars appear on stderr (one for all tasks, one per
//! group, the smallest groups folded into `other`), and they are cleared when it returns. A
//! short compute draws nothing, and nothing is drawn when stderr is not a terminal.
//!
//! Turn them off with `ONEBOX_PROGRESS=0` (or `false`, `off`, `no`) or
//! [`ClusterBuilder::progress(false)`](crate::ClusterBuilder::progress). While bars could be
//! drawn the cluster sends events (the cost the scheduler benchmark measures as "on"); with
//! progress off, or off a terminal, a compute pays nothing.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, Sender, bounded};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::aggregate::group_of;
use super::{Batched, Event};
use crate::cluster::ClusterInner;

/// How long a compute runs before bars appear.
pub const DELAY: Duration = Duration::from_secs(1);
/// Groups drawn with a bar of their own; the rest share one.
const MAX_GROUP_BARS: usize = 6;
/// How often the bars are redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Whether progress is on by default: the `ONEBOX_PROGRESS` value (if any) and whether stderr
/// is a terminal.
pub(crate) fn default_enabled(env: Option<&str>, terminal: bool) -> bool {
    match env.map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) if matches!(v.as_str(), "0" | "false" | "off" | "no") => false,
        _ => terminal,
    }
}

/// [`default_enabled`] for this process.
pub(crate) fn enabled_from_env() -> bool {
    default_enabled(
        std::env::var("ONEBOX_PROGRESS").ok().as_deref(),
        std::io::stderr().is_terminal(),
    )
}

/// At most one set of bars per process: nested or concurrent computes draw nothing more.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Tasks submitted and ended in one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) submitted: u64,
    pub(crate) ended: u64,
}

/// What the progress thread saw, returned when it stops (read by the tests).
#[derive(Debug, Default)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Seen {
    pub(crate) groups: BTreeMap<String, Counts>,
    /// True when bars were drawn.
    pub(crate) shown: bool,
}

/// The progress of one compute; stops (clearing its bars) when dropped.
pub(crate) struct ComputeProgress {
    stop: Option<Sender<()>>,
    shown: Arc<AtomicBool>,
    thread: Option<JoinHandle<Seen>>,
}

/// Starts watching a compute on `cluster`, if progress is on and this is the outermost
/// compute of the process (called from outside the pool).
pub(crate) fn for_compute(cluster: &ClusterInner) -> Option<ComputeProgress> {
    if !cluster.progress.load(Ordering::Relaxed) || cluster.is_pool_thread() {
        return None;
    }
    if ACTIVE.swap(true, Ordering::AcqRel) {
        return None;
    }
    let started = ComputeProgress::start(cluster.events.subscribe_batched(), DELAY, || {
        ProgressDrawTarget::stderr()
    });
    if started.is_none() {
        ACTIVE.store(false, Ordering::Release);
    }
    started
}

impl ComputeProgress {
    /// Watches `events`; draws on the target `draw` makes once `delay` has passed.
    pub(crate) fn start(
        events: Batched,
        delay: Duration,
        draw: impl FnOnce() -> ProgressDrawTarget + Send + 'static,
    ) -> Option<ComputeProgress> {
        let (tx, stop) = bounded::<()>(1);
        let shown = Arc::new(AtomicBool::new(false));
        let flag = shown.clone();
        let thread = std::thread::Builder::new()
            .name("onebox-progress".into())
            .spawn(move || watch(events, stop, delay, draw, &flag))
            .ok()?;
        Some(ComputeProgress {
            stop: Some(tx),
            shown,
            thread: Some(thread),
        })
    }

    /// Stops watching; returns what was seen.
    #[cfg(test)]
    pub(crate) fn finish(mut self) -> Seen {
        drop(self.stop.take());
        let seen = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        ACTIVE.store(false, Ordering::Release);
        seen
    }
}

impl Drop for ComputeProgress {
    fn drop(&mut self) {
        drop(self.stop.take()); // wakes the thread at once
        if let Some(t) = self.thread.take() {
            // Bars on screen are cleared before the compute returns; a thread that drew
            // nothing ends by itself.
            if self.shown.load(Ordering::Acquire) {
                let _ = t.join();
            }
            ACTIVE.store(false, Ordering::Release);
        }
    }
}

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    groups: Vec<(String, ProgressBar)>,
    other: Option<ProgressBar>,
    /// Where to draw, set once the first update has filled the bars in.
    target: Option<ProgressDrawTarget>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Bars {
    fn new(target: ProgressDrawTarget) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        let total = multi.add(
            ProgressBar::new(0)
                .with_style(style("{prefix:>16} [{bar:40}] {pos}/{len} tasks, {msg}"))
                .with_prefix("all"),
        );
        Bars {
            multi,
            total,
            groups: Vec::new(),
            other: None,
            target: Some(target),
        }
    }

    /// A bar for a group, added below the others, already showing `c`.
    fn bar(&self, prefix: &str, c: Counts) -> ProgressBar {
        self.multi.add(
            ProgressBar::new(c.submitted.max(c.ended))
                .with_style(style("{prefix:>16} [{bar:40}] {pos}/{len}"))
                .with_prefix(prefix.chars().take(16).collect::<String>())
                .with_position(c.ended),
        )
    }

    /// Redraws with the counts so far, `elapsed` after the compute started.
    fn update(&mut self, groups: &BTreeMap<String, Counts>, elapsed: Duration) {
        let mut all = Counts::default();
        for c in groups.values() {
            all.submitted += c.submitted;
            all.ended += c.ended;
        }
        self.total.set_length(all.submitted.max(all.ended));
        self.total.set_position(all.ended);
        self.total.set_message(format!(
            "{:.1}s elapsed, eta {}",
            elapsed.as_secs_f64(),
            eta(all, elapsed)
        ));
        let mut other = Counts::default();
        let mut sizes: Vec<(&String, &Counts)> = groups.iter().collect();
        sizes.sort_by(|a, b| b.1.submitted.cmp(&a.1.submitted).then(a.0.cmp(b.0)));
        for (i, (name, c)) in sizes.into_iter().enumerate() {
            if i < MAX_GROUP_BARS {
                let bar = match self.groups.iter().find(|(n, _)| n == name) {
                    Some((_, b)) => b.clone(),
                    None => {
                        let b = self.bar(name, *c);
                        self.groups.push((name.clone(), b.clone()));
                        b
                    }
                };
                bar.set_length(c.submitted.max(c.ended));
                bar.set_position(c.ended);
            } else {
                other.submitted += c.submitted;
                other.ended += c.ended;
            }
        }
        if other.submitted > 0 {
            match &self.other {
                Some(bar) => {
                    bar.set_length(other.submitted.max(other.ended));
                    bar.set_position(other.ended);
                }
                None => self.other = Some(self.bar("other", other)),
            }
        }
        if let Some(target) = self.target.take() {
            self.multi.set_draw_target(target);
        }
    }

    fn clear(self) {
        for (_, b) in &self.groups {
            b.finish_and_clear();
        }
        if let Some(b) = &self.other {
            b.finish_and_clear();
        }
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Time left at the rate so far: `?` until a task has ended.
fn eta(all: Counts, elapsed: Duration) -> String {
    if all.ended == 0 {
        return "?".into();
    }
    let left = all.submitted.saturating_sub(all.ended) as f64;
    format!("{:.1}s", elapsed.as_secs_f64() * left / all.ended as f64)
}

fn apply(groups: &mut BTreeMap<String, Counts>, event: &Event) {
    match event {
        Event::Submitted { key } => {
            groups
                .entry(group_of(key).to_string())
                .or_default()
                .submitted += 1;
        }
        Event::Task(t) => {
            groups
                .entry(group_of(&t.key).to_string())
                .or_default()
                .ended += 1
        }
    }
}

fn watch(
    events: Batched,
    stop: Receiver<()>,
    delay: Duration,
    draw: impl FnOnce() -> ProgressDrawTarget,
    shown: &AtomicBool,
) -> Seen {
    let started = Instant::now();
    let mut groups = BTreeMap::new();
    let mut draw = Some(draw);
    let mut bars: Option<Bars> = None;
    let mut next_draw = started + delay;
    loop {
        if Instant::now() >= next_draw {
            if bars.is_none()
                && let Some(make) = draw.take()
            {
                bars = Some(Bars::new(make()));
                shown.store(true, Ordering::Release);
            }
            if let Some(b) = &mut bars {
                b.update(&groups, started.elapsed());
            }
            next_draw = Instant::now() + TICK;
        }
        // Events are taken in batches on a timer: the scheduler never wakes this thread.
        let wait = next_draw
            .saturating_duration_since(Instant::now())
            .min(TICK);
        let stopping = !matches!(stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
        events.poll_with(|e| apply(&mut groups, e));
        if stopping {
            break;
        }
    }
    if let Some(mut b) = bars {
        b.update(&groups, started.elapsed());
        b.clear();
    }
    Seen {
        groups,
        shown: shown.load(Ordering::Acquire),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[test]
    fn off_by_env_and_off_a_terminal() {
        assert!(default_enabled(None, true));
        assert!(!default_enabled(None, false));
        for off in ["0", "false", "OFF", " no "] {
            assert!(!default_enabled(Some(off), true), "{off}");
        }
        assert!(default_enabled(Some("1"), true));
        assert!(!default_enabled(Some("1"), false));
    }

    #[test]
    fn counts_every_group_of_a_compute() {
        let cluster = Cluster::builder().threads(2).ignore_env().build().unwrap();
        let progress = ComputeProgress::start(
            cluster.inner().events.subscribe_batched(),
            Duration::ZERO,
            ProgressDrawTarget::hidden,
        )
        .unwrap();
        let parts: Vec<Delayed<u64>> = (0..40u64)
            .map(|i| {
                let label = if i % 4 == 0 { "ünïcode" } else { "load" };
                cluster.delayed(move || i).label(label)
            })
            .collect();
        let sum = Delayed::join_with(&cluster, parts, |v| v.iter().sum::<u64>())
            .label("sum")
            .compute()
            .unwrap();
        assert_eq!(sum, (0..40).sum::<u64>());
        let seen = progress.finish();
        assert!(seen.shown);
        let want = |n| Counts {
            submitted: n,
            ended: n,
        };
        assert_eq!(seen.groups.get("load"), Some(&want(30)));
        assert_eq!(seen.groups.get("ünïcode"), Some(&want(10)));
        assert_eq!(seen.groups.get("sum"), Some(&want(1)));
        assert_eq!(seen.groups.len(), 3);
    }

    #[test]
    fn compute_watches_events_only_while_progress_is_on() {
        let cluster = Cluster::builder().threads(1).ignore_env().build().unwrap();
        let inner = cluster.inner().clone();
        let listening = move || {
            let inner = inner.clone();
            cluster
                .delayed(move || inner.events.is_enabled())
                .compute()
                .unwrap()
        };
        // Off a terminal (as under `cargo test`) progress is off: no subscriber, no events.
        assert!(!listening());
        let inner = Cluster::builder().threads(1).ignore_env().build().unwrap();
        let cluster = inner.clone();
        inner.inner().progress.store(true, Ordering::Relaxed);
        let probe = inner.inner().clone();
        let during = cluster
            .delayed(move || probe.events.is_enabled())
            .compute()
            .unwrap();
        assert!(during);
        // The subscription ends with the compute (its watcher thread lets go of the receiver
        // at once; the bus notices at its next event).
        cluster.inner().progress.store(false, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let after = cluster.inner().clone();
            if !cluster
                .delayed(move || after.events.is_enabled())
                .compute()
                .unwrap()
            {
                break;
            }
            assert!(Instant::now() < deadline, "still subscribed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_short_compute_draws_nothing() {
        let cluster = Cluster::builder().threads(1).ignore_env().build().unwrap();
        let progress = ComputeProgress::start(
            cluster.inner().events.subscribe_batched(),
            DELAY,
            ProgressDrawTarget::hidden,
        )
        .unwrap();
        assert_eq!(cluster.delayed(|| 1).compute().unwrap(), 1);
        let seen = progress.finish();
        assert!(!seen.shown);
        assert_eq!(seen.groups.get("task").map(|c| c.ended), Some(1));
    }

    #[test]
    fn many_groups_fold_into_other() {
        let mut bars = Bars::new(ProgressDrawTarget::hidden());
        let groups: BTreeMap<String, Counts> = (0..10u64)
            .map(|i| {
                (
                    format!("g{i}"),
                    Counts {
                        submitted: 10 + i,
                        ended: i,
                    },
                )
            })
            .collect();
        bars.update(&groups, Duration::from_secs(9));
        assert_eq!(bars.groups.len(), MAX_GROUP_BARS);
        // The largest groups get their own bars; the four smallest share one.
        assert_eq!(bars.groups[0].0, "g9");
        let other = bars.other.as_ref().unwrap();
        assert_eq!(other.length(), Some(10 + 11 + 12 + 13));
        assert_eq!(other.position(), 1 + 2 + 3);
        assert_eq!(bars.total.length(), Some((10..20).sum::<u64>()));
        assert_eq!(bars.total.position(), (0..10).sum::<u64>());
        // 45 of 145 done in 9 s: 100 left at 5 per second.
        assert_eq!(bars.total.message(), "9.0s elapsed, eta 20.0s");
        assert_eq!(eta(Counts::default(), Duration::from_secs(1)), "?");
    }
}
