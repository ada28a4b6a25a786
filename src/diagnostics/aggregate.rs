//! Event aggregation: turns the event stream into the figures that reports, the dashboard and
//! progress bars draw. Pure bookkeeping, no I/O, so it is tested on synthetic events.
//!
//! Memory stays bounded however long the run: per group and per worker the figures are
//! running sums; the task stream keeps the first [`MAX_BARS`] bars (and counts the rest);
//! utilisation over time lives in at most [`MAX_BINS`] bins whose width doubles (merging
//! neighbours) whenever the run outgrows them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use super::{Event, Ran, Record, TaskEvent, TaskOutcome};
use crate::graph::{TaskKey, Worker};

/// Bars kept for the task stream; further tasks are counted in the other figures only.
pub const MAX_BARS: usize = 20_000;
/// Failures kept with their messages.
pub const MAX_FAILURES: usize = 100;
/// Most recent bars kept for live views, whatever the run's length.
pub const RECENT_BARS: usize = 500;
/// Bins of the utilisation timeline.
pub const MAX_BINS: usize = 200;
/// Width of a timeline bin before the run outgrows it.
const FIRST_BIN: f64 = 0.001;

/// One task group's figures (tasks sharing a label).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupStats {
    /// The group's name ([`TaskKey::group`](crate::TaskKey::group)).
    pub name: String,
    /// Tasks submitted.
    pub submitted: u64,
    /// Tasks that ran and returned a value.
    pub ok: u64,
    /// Tasks that ran and failed (after their retries).
    pub failed: u64,
    /// Time spent running the group's tasks, in seconds (summed over workers).
    pub total_s: f64,
    /// The longest task, in seconds.
    pub max_s: f64,
}

impl GroupStats {
    /// Tasks that ran to an end, either way.
    pub fn ended(&self) -> u64 {
        self.ok + self.failed
    }
    /// Mean run time of an ended task, in seconds (0 when none ended).
    pub fn mean_s(&self) -> f64 {
        if self.ended() == 0 {
            0.0
        } else {
            self.total_s / self.ended() as f64
        }
    }
}

/// One worker lane's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStats {
    /// The lane's name: `cpu 3`, `gpu 0 stream 1`.
    pub name: String,
    /// The worker.
    pub worker: Worker,
    /// Tasks it ran.
    pub tasks: u64,
    /// Time it spent running them, in seconds.
    pub busy_s: f64,
}

/// One task in the task stream, times in seconds since the aggregation's origin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    /// The task key, as `group#id`.
    pub key: String,
    /// Its group.
    pub group: String,
    /// Index of its lane in [`Aggregate::workers`].
    pub lane: usize,
    /// Start, in seconds.
    pub start: f64,
    /// End, in seconds.
    pub end: f64,
    /// False when it failed.
    pub ok: bool,
}

/// A bar as kept: the key is formatted only when a view asks for it.
#[derive(Debug, Clone)]
struct RawBar {
    key: TaskKey,
    lane: usize,
    start: f64,
    end: f64,
    ok: bool,
}

impl RawBar {
    fn bar(&self) -> Bar {
        Bar {
            key: self.key.to_string(),
            group: group_of(&self.key).to_string(),
            lane: self.lane,
            start: self.start,
            end: self.end,
            ok: self.ok,
        }
    }
}

/// A task that failed, with its message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The task key.
    pub key: String,
    /// When it ended, in seconds since the origin.
    pub at: f64,
    /// The error's message.
    pub message: String,
}

/// A memory sample: process RSS and the cluster's managed bytes at a time, in seconds since
/// the origin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemorySample {
    /// Seconds since the origin.
    pub t: f64,
    /// Resident set size of the process, in bytes.
    pub rss: u64,
    /// The cluster's managed bytes: the task outputs of known size it holds (see
    /// [`Cluster::managed_bytes`](crate::Cluster::managed_bytes)).
    pub managed: u64,
}

/// A GPU sample from NVML.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GpuSample {
    /// Seconds since the origin.
    pub t: f64,
    /// The GPU's index in the cluster.
    pub gpu: usize,
    /// Device memory in use, in bytes.
    pub memory_used: u64,
    /// Device memory in all, in bytes.
    pub memory_total: u64,
    /// Percentage of time a kernel ran over the last sample period.
    pub utilisation: u32,
}

/// Busy worker-seconds per time bin, with bins that widen as the run grows.
#[derive(Debug, Clone, PartialEq)]
struct Timeline {
    width: f64,
    busy: Vec<f64>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            width: FIRST_BIN,
            busy: Vec::new(),
        }
    }

    /// Widens the bins (merging neighbours) until `end` fits in [`MAX_BINS`] of them.
    fn reach(&mut self, end: f64) {
        while end > self.width * MAX_BINS as f64 {
            self.busy = self.busy.chunks(2).map(|c| c.iter().sum()).collect();
            self.width *= 2.0;
        }
    }

    fn add(&mut self, start: f64, end: f64) {
        let (start, end) = (start.max(0.0), end.max(0.0));
        if end <= start {
            return;
        }
        self.reach(end);
        let first = (start / self.width) as usize;
        let last = ((end / self.width) as usize).min(MAX_BINS - 1);
        if self.busy.len() <= last {
            self.busy.resize(last + 1, 0.0);
        }
        for (i, slot) in self.busy.iter_mut().enumerate().take(last + 1).skip(first) {
            let lo = (i as f64 * self.width).max(start);
            let hi = ((i + 1) as f64 * self.width).min(end);
            *slot += (hi - lo).max(0.0);
        }
    }
}

/// Everything known about a run, built from its events (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Aggregate {
    origin: Duration,
    groups: BTreeMap<String, GroupStats>,
    workers: Vec<WorkerStats>,
    lanes: HashMap<Worker, usize>,
    /// The lane of the last task seen: runs arrive in batches per worker thread.
    last_lane: Option<(Worker, usize)>,
    bars: Vec<RawBar>,
    bars_dropped: u64,
    recent: VecDeque<RawBar>,
    failures: Vec<Failure>,
    failures_dropped: u64,
    timeline: Timeline,
    span: f64,
    memory: Vec<MemorySample>,
    gpu: Vec<GpuSample>,
}

/// The group a task is counted in: its [`TaskKey::group`](crate::TaskKey::group) up to any
/// `[`, so that the chunks of one operation (`map[0..4096]`, `map[4096..8192]`) form one
/// group, `map`, as Dask's `key_split` does.
pub fn group_of(key: &TaskKey) -> &str {
    group_of_label(key.label())
}

/// [`group_of`] for a task with this label.
pub(crate) fn group_of_label(label: Option<&str>) -> &str {
    let g = label.unwrap_or("task");
    match g.find('[') {
        Some(0) | None => g,
        Some(i) => &g[..i],
    }
}

/// The lane name of a worker.
pub fn lane_name(worker: Worker) -> String {
    match worker {
        Worker::Cpu(i) => format!("cpu {i}"),
        Worker::Gpu { gpu, stream } => format!("gpu {gpu} stream {stream}"),
    }
}

fn lane_order(w: &Worker) -> (usize, usize, usize) {
    match *w {
        Worker::Cpu(i) => (0, i, 0),
        Worker::Gpu { gpu, stream } => (1, gpu, stream),
    }
}

impl Aggregate {
    /// An empty aggregate whose times count from `origin` (a time since the cluster started,
    /// as events carry them).
    pub fn new(origin: Duration) -> Self {
        Aggregate {
            origin,
            groups: BTreeMap::new(),
            workers: Vec::new(),
            lanes: HashMap::new(),
            last_lane: None,
            bars: Vec::new(),
            bars_dropped: 0,
            recent: VecDeque::with_capacity(RECENT_BARS),
            failures: Vec::new(),
            failures_dropped: 0,
            timeline: Timeline::new(),
            span: 0.0,
            memory: Vec::new(),
            gpu: Vec::new(),
        }
    }

    fn secs(&self, t: Duration) -> f64 {
        t.saturating_sub(self.origin).as_secs_f64()
    }

    fn group(&mut self, name: &str) -> &mut GroupStats {
        // Looked up first: a name is allocated once per group, not once per event.
        if !self.groups.contains_key(name) {
            self.groups.insert(
                name.to_string(),
                GroupStats {
                    name: name.to_string(),
                    ..GroupStats::default()
                },
            );
        }
        self.groups
            .get_mut(name)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Takes one event into account.
    pub fn add(&mut self, event: &Event) {
        match event {
            Event::Submitted { key } => self.group(group_of(key)).submitted += 1,
            Event::Task(t) => self.add_task(t),
        }
    }

    /// Takes one record of a batched subscription into account (the same as the events it
    /// stands for).
    pub(crate) fn add_record(&mut self, record: &Record) {
        match record {
            Record::Submitted { label, n } => {
                self.group(group_of_label(label.as_deref())).submitted += n
            }
            Record::Ran(r) => self.add_ran(r),
        }
    }

    fn add_ran(&mut self, r: &Ran) {
        // A task that started before the aggregation did is left out, as its events are.
        let Some(start) = r.start else {
            return;
        };
        let origin = self.origin;
        let secs = |ns: u64| {
            Duration::from_nanos(ns)
                .saturating_sub(origin)
                .as_secs_f64()
        };
        self.add_run(
            || TaskKey::new(r.id, r.label.clone()),
            r.worker,
            (secs(start), secs(r.end)),
            r.failure.as_ref().map(|e| e.to_string()),
        );
    }

    fn add_task(&mut self, t: &TaskEvent) {
        let times = (self.secs(t.start), self.secs(t.end));
        let failure = match &t.outcome {
            TaskOutcome::Ok => None,
            TaskOutcome::Failed(m) => Some(m.clone()),
        };
        self.add_run(|| t.key.clone(), t.worker, times, failure);
    }

    fn add_run(
        &mut self,
        key: impl FnOnce() -> TaskKey,
        worker: Worker,
        (start, end): (f64, f64),
        failure: Option<String>,
    ) {
        let key = key();
        let took = (end - start).max(0.0);
        let ok = failure.is_none();
        let g = self.group(group_of(&key));
        if ok {
            g.ok += 1;
        } else {
            g.failed += 1;
        }
        g.total_s += took;
        g.max_s = g.max_s.max(took);
        let lane = match self.last_lane {
            Some((w, i)) if w == worker => Some(i),
            _ => self.lanes.get(&worker).copied(),
        };
        let lane = match lane {
            Some(i) => i,
            None => {
                self.workers.push(WorkerStats {
                    name: lane_name(worker),
                    worker,
                    tasks: 0,
                    busy_s: 0.0,
                });
                self.lanes.insert(worker, self.workers.len() - 1);
                self.workers.len() - 1
            }
        };
        self.last_lane = Some((worker, lane));
        let w = &mut self.workers[lane];
        w.tasks += 1;
        w.busy_s += took;
        self.timeline.add(start, end);
        self.span = self.span.max(end);
        if let Some(message) = failure {
            if self.failures.len() < MAX_FAILURES {
                self.failures.push(Failure {
                    key: key.to_string(),
                    at: end,
                    message,
                });
            } else {
                self.failures_dropped += 1;
            }
        }
        let bar = RawBar {
            key,
            lane,
            start,
            end,
            ok,
        };
        if self.recent.len() == RECENT_BARS {
            self.recent.pop_front();
        }
        if self.bars.len() < MAX_BARS {
            self.recent.push_back(bar.clone());
            self.bars.push(bar);
        } else {
            self.recent.push_back(bar);
            self.bars_dropped += 1;
        }
    }

    /// Records the process RSS and the managed bytes at `at` (a time since the cluster
    /// started).
    pub fn add_memory(&mut self, at: Duration, rss: u64, managed: u64) {
        let t = self.secs(at);
        self.extend_span(t);
        self.memory.push(MemorySample { t, rss, managed });
        thin(&mut self.memory);
    }

    /// Records a GPU sample (its `t` counts from the cluster's start; it is rebased here).
    pub fn add_gpu(&mut self, at: Duration, mut sample: GpuSample) {
        sample.t = self.secs(at);
        self.extend_span(sample.t);
        self.gpu.push(sample);
        thin(&mut self.gpu);
    }

    /// Extends the run's span to `at` (the end of the observed window).
    pub fn close_at(&mut self, at: Duration) {
        let t = self.secs(at);
        self.extend_span(t);
    }

    fn extend_span(&mut self, t: f64) {
        self.span = self.span.max(t);
        self.timeline.reach(self.span);
    }

    /// The task groups, by name.
    pub fn groups(&self) -> impl Iterator<Item = &GroupStats> {
        self.groups.values()
    }

    /// One group's figures.
    pub fn group_stats(&self, name: &str) -> Option<&GroupStats> {
        self.groups.get(name)
    }

    /// The figures summed over every group.
    pub fn totals(&self) -> GroupStats {
        let mut t = GroupStats {
            name: "all".into(),
            ..GroupStats::default()
        };
        for g in self.groups.values() {
            t.submitted += g.submitted;
            t.ok += g.ok;
            t.failed += g.failed;
            t.total_s += g.total_s;
            t.max_s = t.max_s.max(g.max_s);
        }
        t
    }

    /// The worker lanes, in the order they were first seen ([`Bar::lane`] indexes this).
    pub fn workers(&self) -> &[WorkerStats] {
        &self.workers
    }

    /// Lane indices sorted for display: CPU threads by index, then GPU streams.
    pub fn lane_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.workers.len()).collect();
        order.sort_by_key(|&i| lane_order(&self.workers[i].worker));
        order
    }

    /// The task stream's bars (the first [`MAX_BARS`] tasks).
    pub fn bars(&self) -> Vec<Bar> {
        self.bars.iter().map(RawBar::bar).collect()
    }

    /// How many bars [`bars`](Self::bars) has.
    pub fn bar_count(&self) -> usize {
        self.bars.len()
    }

    /// Tasks left out of [`bars`](Self::bars).
    pub fn bars_dropped(&self) -> u64 {
        self.bars_dropped
    }

    /// The last [`RECENT_BARS`] bars, oldest first (kept however long the run).
    pub fn recent_bars(&self) -> Vec<Bar> {
        self.recent.iter().map(RawBar::bar).collect()
    }

    /// Failures with their messages (the first [`MAX_FAILURES`]).
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Failures left out of [`failures`](Self::failures).
    pub fn failures_dropped(&self) -> u64 {
        self.failures_dropped
    }

    /// Memory samples.
    pub fn memory(&self) -> &[MemorySample] {
        &self.memory
    }

    /// GPU samples.
    pub fn gpu(&self) -> &[GpuSample] {
        &self.gpu
    }

    /// Seconds from the origin to the last thing seen.
    pub fn span(&self) -> f64 {
        self.span
    }

    /// The width of the utilisation bins, in seconds.
    pub fn utilisation_bin(&self) -> f64 {
        self.timeline.width
    }

    /// Utilisation over time for `capacity` workers: `(bin start in seconds, busy fraction)`,
    /// the fraction between 0 and 1. The last bin is measured over the part of it the run
    /// covered.
    pub fn utilisation(&self, capacity: usize) -> Vec<(f64, f64)> {
        let w = self.timeline.width;
        let cap = capacity.max(1) as f64;
        // Bins up to the end of the span, idle ones included.
        let bins = ((self.span / w).ceil() as usize).clamp(
            self.timeline.busy.len(),
            MAX_BINS.max(self.timeline.busy.len()),
        );
        (0..bins)
            .map(|i| {
                let busy = self.timeline.busy.get(i).copied().unwrap_or(0.0);
                let t0 = i as f64 * w;
                let covered = (self.span - t0).clamp(0.0, w);
                let frac = if covered > 0.0 {
                    busy / (covered * cap)
                } else {
                    0.0
                };
                (t0, frac.clamp(0.0, 1.0))
            })
            .collect()
    }
}

/// Keeps a sample series under 2 * MAX_BINS points by dropping every other old one.
fn thin<T>(v: &mut Vec<T>) {
    if v.len() >= 2 * MAX_BINS {
        let mut i = 0;
        v.retain(|_| {
            i += 1;
            i % 2 == 1
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(id: u64, label: Option<&str>) -> TaskKey {
        TaskKey::new(id, label.map(std::sync::Arc::from))
    }

    fn task(id: u64, label: &str, worker: Worker, start_ms: u64, end_ms: u64, ok: bool) -> Event {
        Event::Task(TaskEvent {
            key: key(id, Some(label)),
            worker,
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
            outcome: if ok {
                TaskOutcome::Ok
            } else {
                TaskOutcome::Failed(format!("boom {id}"))
            },
        })
    }

    #[test]
    fn chunks_of_one_operation_form_one_group() {
        assert_eq!(group_of(&key(1, Some("map[0..10]"))), "map");
        assert_eq!(group_of(&key(1, Some("[odd]"))), "[odd]");
        assert_eq!(group_of(&key(1, Some("ünï"))), "ünï");
        assert_eq!(group_of(&key(1, None)), "task");
        let mut a = Aggregate::new(Duration::ZERO);
        a.add(&task(1, "map[0..5]", Worker::Cpu(0), 0, 1, true));
        a.add(&task(2, "map[5..9]", Worker::Cpu(1), 0, 1, true));
        assert_eq!(a.group_stats("map").unwrap().ok, 2);
        assert_eq!(a.bars()[1].group, "map");
        assert_eq!(a.bars()[1].key, "map[5..9]#2");
    }

    #[test]
    fn empty() {
        let a = Aggregate::new(Duration::ZERO);
        assert_eq!(a.groups().count(), 0);
        assert_eq!(a.totals().ended(), 0);
        assert_eq!(a.totals().mean_s(), 0.0);
        assert!(a.bars().is_empty() && a.workers().is_empty());
        assert!(a.utilisation(4).is_empty());
        let mut idle = Aggregate::new(Duration::ZERO);
        idle.close_at(Duration::from_millis(35));
        let util = idle.utilisation(4);
        assert_eq!(util.len(), 35); // 1 ms bins
        assert!(util.iter().all(|&(_, f)| f == 0.0));
        // A long idle run widens the bins rather than covering only its start.
        idle.close_at(Duration::from_secs(10));
        let util = idle.utilisation(4);
        assert!(util.len() <= MAX_BINS);
        let covered = util.len() as f64 * idle.utilisation_bin();
        assert!(covered >= 10.0, "{covered}");
        assert!(util.iter().all(|&(_, f)| f == 0.0));
    }

    #[test]
    fn groups_workers_bars_and_failures() {
        let mut a = Aggregate::new(Duration::from_millis(100));
        for id in 1..=3 {
            a.add(&Event::Submitted {
                key: key(id, Some("load")),
            });
        }
        a.add(&Event::Submitted { key: key(9, None) });
        a.add(&task(1, "load", Worker::Cpu(1), 100, 300, true));
        a.add(&task(2, "load", Worker::Cpu(0), 100, 200, true));
        a.add(&task(3, "load", Worker::Cpu(1), 300, 400, false));
        a.add(&task(
            4,
            "gpu-ü",
            Worker::Gpu { gpu: 0, stream: 1 },
            150,
            250,
            true,
        ));
        let load = a.group_stats("load").unwrap();
        assert_eq!((load.submitted, load.ok, load.failed), (3, 2, 1));
        assert!((load.total_s - 0.4).abs() < 1e-9);
        assert!((load.mean_s() - 0.4 / 3.0).abs() < 1e-9);
        assert!((load.max_s - 0.2).abs() < 1e-9);
        assert_eq!(a.group_stats("task").unwrap().submitted, 1);
        assert_eq!(a.group_stats("gpu-ü").unwrap().ok, 1);
        let names: Vec<&str> = a.groups().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["gpu-ü", "load", "task"]);
        assert_eq!(a.totals().ended(), 4);
        assert_eq!(a.bars().len(), 4);
        assert_eq!(a.bars()[0].start, 0.0);
        assert!((a.bars()[0].end - 0.2).abs() < 1e-9);
        assert_eq!(a.workers().len(), 3);
        assert_eq!(a.workers()[a.bars()[0].lane].name, "cpu 1");
        assert_eq!(a.workers()[a.bars()[0].lane].tasks, 2);
        let ordered: Vec<&str> = a
            .lane_order()
            .into_iter()
            .map(|i| a.workers()[i].name.as_str())
            .collect();
        assert_eq!(ordered, ["cpu 0", "cpu 1", "gpu 0 stream 1"]);
        assert_eq!(a.failures().len(), 1);
        assert_eq!(a.failures()[0].key, "load#3");
        assert_eq!(a.failures()[0].message, "boom 3");
        assert!((a.span() - 0.3).abs() < 1e-9);
    }

    #[test]
    fn bars_and_failures_are_capped_but_counted() {
        let mut a = Aggregate::new(Duration::ZERO);
        let n = MAX_BARS as u64 + 5;
        for id in 0..n {
            a.add(&task(id, "x", Worker::Cpu(0), id, id + 1, id % 2 == 0));
        }
        assert_eq!(a.bars().len(), MAX_BARS);
        assert_eq!(a.bars_dropped(), 5);
        let recent = a.recent_bars();
        assert_eq!(recent.len(), RECENT_BARS);
        assert_eq!(recent[RECENT_BARS - 1].key, format!("x#{}", n - 1));
        assert_eq!(recent[0].key, format!("x#{}", n - RECENT_BARS as u64));
        assert_eq!(a.totals().ended(), n);
        assert_eq!(a.failures().len(), MAX_FAILURES);
        assert_eq!(a.failures_dropped(), n / 2 - MAX_FAILURES as u64);
        assert!(a.utilisation(1).len() <= MAX_BINS);
    }

    #[test]
    fn memory_series_stay_bounded() {
        let mut a = Aggregate::new(Duration::ZERO);
        for i in 0..10_000u64 {
            a.add_memory(Duration::from_millis(i), i, i / 2);
        }
        assert!(a.memory().len() < 2 * MAX_BINS);
        assert!(a.memory().windows(2).all(|w| w[0].t < w[1].t));
        assert_eq!(a.span(), 9.999);
    }

    /// Busy time of a set of intervals inside `[lo, hi)`, computed directly.
    fn busy_between(intervals: &[(u64, u64)], lo: f64, hi: f64) -> f64 {
        intervals
            .iter()
            .map(|&(s, e)| {
                let (s, e) = (s as f64 / 1000.0, e as f64 / 1000.0);
                (e.min(hi) - s.max(lo)).max(0.0)
            })
            .sum()
    }

    proptest! {
        #[test]
        fn utilisation_matches_a_direct_computation(
            intervals in prop::collection::vec((0u64..20_000, 0u64..3_000), 0..60),
            workers in 1usize..8,
        ) {
            let intervals: Vec<(u64, u64)> =
                intervals.into_iter().map(|(s, d)| (s, s + d)).collect();
            let mut a = Aggregate::new(Duration::ZERO);
            for (i, &(s, e)) in intervals.iter().enumerate() {
                a.add(&task(i as u64, "g", Worker::Cpu(i % workers), s, e, true));
            }
            let util = a.utilisation(1);
            prop_assert!(util.len() <= MAX_BINS);
            // Total busy time is preserved by the bins, whatever their width.
            let width = if util.len() > 1 { util[1].0 - util[0].0 } else { FIRST_BIN };
            let total: f64 = intervals.iter().map(|&(s, e)| (e - s) as f64 / 1000.0).sum();
            let mut binned = 0.0;
            for &(t0, _) in &util {
                let direct = busy_between(&intervals, t0, t0 + width);
                binned += direct;
                let idx = (t0 / width).round() as usize;
                let stored = a.timeline.busy.get(idx).copied().unwrap_or(0.0);
                prop_assert!((stored - direct).abs() < 1e-6);
            }
            prop_assert!((binned - total).abs() < 1e-6);
            let summed: f64 = a.workers().iter().map(|w| w.busy_s).sum();
            prop_assert!((summed - total).abs() < 1e-6);
            prop_assert!(util.iter().all(|&(_, f)| (0.0..=1.0).contains(&f)));
        }
    }
}
