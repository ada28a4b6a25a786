//! Progress bars for long computes: tasks done out of submitted, per task group, with an ETA.
//!
//! Every way of waiting for work from outside the pool watches the cluster's events while it
//! waits: [`Delayed::compute`](crate::Delayed::compute) (and with it the collections'
//! `compute`s), [`Cluster::map`](crate::Cluster::map) and `starmap`,
//! [`TaskHandle::wait`](crate::TaskHandle::wait) and `result`, [`gather`](crate::gather),
//! [`wait`](crate::wait) and [`as_completed`](crate::as_completed) (while results remain). If
//! the wait lasts more than about a second, bars appear on stderr (one for all tasks, one per
//! group, the smallest groups folded into `other`), and they are cleared when it returns. A
//! short wait draws nothing, and nothing is drawn when stderr is not a terminal.
//!
//! The bars count the tasks submitted while they watch, plus, for a wait on handles, the
//! handles' own tasks (submitted earlier). Tasks those depend on that were submitted earlier
//! still count when they end, so `done` can then run ahead of `total` (the bar's length
//! follows the larger).
//!
//! Turn them off with `ONEBOX_PROGRESS=0` (or `false`, `off`, `no`) or
//! [`ClusterBuilder::progress(false)`](crate::ClusterBuilder::progress). While bars could be
//! drawn the cluster sends events (the cost the scheduler benchmark measures as "on"); with
//! progress off, or off a terminal, a compute pays nothing.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, Sender, bounded};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::aggregate::{group_of, group_of_label};
use super::{Batched, Record};
use crate::cluster::ClusterInner;
#[cfg(test)]
use crate::graph::lock_unpoisoned as lock;
use crate::graph::node::Task;

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
    /// The cluster watched (its address), to find what was seen in [`tests::SEEN`].
    #[cfg(test)]
    owner: usize,
}

/// Starts watching a compute on `cluster`, if progress is on and this is the outermost
/// compute of the process (called from outside the pool).
pub(crate) fn for_compute(cluster: &ClusterInner) -> Option<ComputeProgress> {
    for_wait(cluster, &[])
}

/// Starts watching a wait on `tasks` (handles submitted earlier, which the event stream will
/// not report as submitted again) and on whatever is submitted while it lasts; the same
/// conditions as [`for_compute`].
pub(crate) fn for_wait(cluster: &ClusterInner, tasks: &[Arc<dyn Task>]) -> Option<ComputeProgress> {
    if !cluster.progress.load(Ordering::Relaxed) || cluster.is_pool_thread() {
        return None;
    }
    if !tasks.is_empty() && tasks.iter().all(|t| t.core().is_finished()) {
        return None; // nothing to wait for
    }
    if ACTIVE.swap(true, Ordering::AcqRel) {
        return None;
    }
    // Subscribed before the tasks are looked at: a task seen unfinished below is then sure
    // to be reported when it ends.
    // (A task ending at this very moment, its end sent before the subscription but its
    // phase changed after the look, is missed: the bars may then stop one short.)
    let events = cluster.events.subscribe_batched();
    let seed = Seed::of(tasks);
    let started = ComputeProgress::start(events, seed, DELAY, ProgressDrawTarget::stderr);
    match started {
        Some(mut p) => {
            #[cfg(test)]
            {
                p.owner = std::ptr::from_ref(cluster) as usize;
                tests::STARTED.fetch_add(1, Ordering::AcqRel);
            }
            #[cfg(not(test))]
            let _ = &mut p;
            Some(p)
        }
        None => {
            ACTIVE.store(false, Ordering::Release);
            None
        }
    }
}

/// Tasks submitted before the watch started, counted from the start: each one submitted,
/// those already finished ended too (their end, should it still arrive, is not counted again).
#[derive(Default)]
pub(crate) struct Seed {
    groups: BTreeMap<String, Counts>,
    ended: HashSet<u64>,
}

impl Seed {
    fn of(tasks: &[Arc<dyn Task>]) -> Seed {
        let mut seed = Seed::default();
        for t in tasks {
            let core = t.core();
            let Some(finished) = core.submitted_and_finished() else {
                continue; // lazy: its submission will be reported
            };
            let key = core.key();
            let c = seed.groups.entry(group_of(&key).to_string()).or_default();
            c.submitted += 1;
            if finished {
                c.ended += 1;
                seed.ended.insert(key.id());
            }
        }
        seed
    }
}

impl ComputeProgress {
    /// Watches `events`; draws on the target `draw` makes once `delay` has passed.
    pub(crate) fn start(
        events: Batched,
        seed: Seed,
        delay: Duration,
        draw: impl FnOnce() -> ProgressDrawTarget + Send + 'static,
    ) -> Option<ComputeProgress> {
        let (tx, stop) = bounded::<()>(1);
        let shown = Arc::new(AtomicBool::new(false));
        let flag = shown.clone();
        let thread = std::thread::Builder::new()
            .name("onebox-progress".into())
            .spawn(move || watch(events, seed, stop, delay, draw, &flag))
            .ok()?;
        Some(ComputeProgress {
            stop: Some(tx),
            shown,
            thread: Some(thread),
            #[cfg(test)]
            owner: 0,
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
            // (Under test every watch is joined, to keep what it saw.)
            if cfg!(test) || self.shown.load(Ordering::Acquire) {
                let seen = t.join();
                #[cfg(test)]
                if let Ok(seen) = seen {
                    lock(&tests::SEEN).push((self.owner, seen));
                }
                #[cfg(not(test))]
                let _ = seen;
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

fn apply(groups: &mut BTreeMap<String, Counts>, seeded: &HashSet<u64>, record: &Record) {
    let (label, counts) = match record {
        Record::Submitted { label, n } => (
            label,
            Counts {
                submitted: *n,
                ended: 0,
            },
        ),
        Record::Ran(r) if seeded.contains(&r.id) => return,
        Record::Ran(r) => (
            &r.label,
            Counts {
                submitted: 0,
                ended: 1,
            },
        ),
    };
    let name = group_of_label(label.as_deref());
    // Looked up first: a name is allocated once per group, not once per record.
    let c = match groups.get_mut(name) {
        Some(c) => c,
        None => groups.entry(name.to_string()).or_default(),
    };
    c.submitted += counts.submitted;
    c.ended += counts.ended;
}

fn watch(
    events: Batched,
    seed: Seed,
    stop: Receiver<()>,
    delay: Duration,
    draw: impl FnOnce() -> ProgressDrawTarget,
    shown: &AtomicBool,
) -> Seen {
    let started = Instant::now();
    let Seed {
        mut groups,
        ended: seeded,
    } = seed;
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
        events.poll_with(|r| apply(&mut groups, &seeded, r));
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
pub(crate) mod tests {
    use super::*;
    use crate::prelude::*;
    use std::sync::Mutex;

    /// What every watch saw when it stopped, with the address of the cluster it watched.
    pub(crate) static SEEN: Mutex<Vec<(usize, Seen)>> = Mutex::new(Vec::new());
    /// Watches started by `for_wait` (counted once they are watching).
    pub(crate) static STARTED: std::sync::atomic::AtomicUsize =
        std::sync::atomic::AtomicUsize::new(0);
    /// Held by the tests that start watches: one set of bars per process.
    static ON: Mutex<()> = Mutex::new(());

    /// Takes what the watches of `cluster` saw.
    fn seen_for(cluster: &Cluster) -> Vec<Seen> {
        let me = Arc::as_ptr(cluster.inner()) as usize;
        let mut all = lock(&SEEN);
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(o, _)| *o == me);
        *all = rest;
        mine.into_iter().map(|(_, s)| s).collect()
    }

    /// `n` tasks labelled `label`, submitted, that end only once the next watch has started.
    fn gated(cluster: &Cluster, label: &str, n: u64) -> (Vec<TaskHandle<u64>>, JoinHandle<()>) {
        let (open, gate) = bounded::<()>(0);
        let handles = (0..n)
            .map(|i| {
                let gate = gate.clone();
                cluster
                    .delayed(move || {
                        let _ = gate.recv(); // returns once `open` is dropped
                        i
                    })
                    .label(label)
                    .submit()
            })
            .collect();
        let before = STARTED.load(Ordering::Acquire);
        let opener = std::thread::spawn(move || {
            while STARTED.load(Ordering::Acquire) == before {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(open);
        });
        (handles, opener)
    }

    #[test]
    fn maps_waits_gathers_and_as_completed_are_watched() {
        let _on = lock(&ON);
        let cluster = Cluster::builder().threads(2).ignore_env().build().unwrap();
        cluster.inner().progress.store(true, Ordering::Relaxed);
        let both = |n| Counts {
            submitted: n,
            ended: n,
        };

        let squares = cluster.map(0..1000u64, |x| x * x).unwrap();
        assert_eq!(squares, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
        let chunks = crate::map::chunk_ranges(1000, cluster.threads()).len() as u64;
        let seen = seen_for(&cluster);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].groups.get("map"), Some(&both(chunks)));
        let pairs = cluster
            .starmap(vec![(1u64, 2u64); 10], |a, b| a + b)
            .unwrap();
        assert_eq!(pairs, vec![3; 10]);
        let chunks = crate::map::chunk_ranges(10, cluster.threads()).len() as u64;
        assert_eq!(seen_for(&cluster)[0].groups.get("map"), Some(&both(chunks)));

        // A gather of handles submitted before it: one already finished, four not yet.
        let early = cluster.delayed(|| 100u64).label("early").submit();
        while !early.is_done() {
            std::thread::sleep(Duration::from_millis(1));
        }
        early.wait().unwrap(); // already finished: nothing to watch
        assert!(seen_for(&cluster).is_empty());
        let (gated_handles, opener) = gated(&cluster, "gated", 4);
        let mut handles = vec![early];
        handles.extend(gated_handles);
        assert_eq!(gather(handles).unwrap(), [100, 0, 1, 2, 3]);
        opener.join().unwrap();
        let seen = seen_for(&cluster);
        assert_eq!(seen.len(), 1, "one watch for the whole gather");
        assert_eq!(seen[0].groups.get("early"), Some(&both(1)));
        assert_eq!(seen[0].groups.get("gated"), Some(&both(4)));
        assert_eq!(seen[0].groups.len(), 2);

        // One handle's wait.
        let (mut one, opener) = gated(&cluster, "one", 1);
        let one = one.remove(0);
        assert_eq!(one.result().unwrap(), 0);
        opener.join().unwrap();
        let seen = seen_for(&cluster);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].groups.get("one"), Some(&both(1)));

        let (handles, opener) = gated(&cluster, "done-in-any-order", 3);
        let mut got: Vec<u64> = as_completed(handles).map(|(_, r)| r.unwrap()).collect();
        got.sort();
        assert_eq!(got, [0, 1, 2]);
        opener.join().unwrap();
        let seen = seen_for(&cluster);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].groups.get("done-in-any-order"), Some(&both(3)));
        cluster.inner().progress.store(false, Ordering::Relaxed);
    }

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
        let _on = lock(&ON);
        let cluster = Cluster::builder().threads(2).ignore_env().build().unwrap();
        let progress = ComputeProgress::start(
            cluster.inner().events.subscribe_batched(),
            Seed::default(),
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
        let _on = lock(&ON);
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
        let _on = lock(&ON);
        let cluster = Cluster::builder().threads(1).ignore_env().build().unwrap();
        let progress = ComputeProgress::start(
            cluster.inner().events.subscribe_batched(),
            Seed::default(),
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
