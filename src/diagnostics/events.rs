//! The event stream: what happened to every task, and when.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, unbounded};
use crossbeam::utils::CachePadded;

use super::clock::{Clock, Scale};
use crate::error::TaskError;
use crate::graph::{TaskKey, Worker};

/// Something that happened in a cluster.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A task was submitted: it will run once its inputs are done.
    Submitted {
        /// The task.
        key: TaskKey,
    },
    /// A task ran (all its attempts) and ended.
    Task(TaskEvent),
}

/// One task's run.
#[derive(Debug, Clone)]
pub struct TaskEvent {
    /// The task.
    pub key: TaskKey,
    /// Where it ran.
    pub worker: Worker,
    /// When it started, since the cluster started.
    pub start: Duration,
    /// When it ended, since the cluster started.
    pub end: Duration,
    /// How it ended.
    pub outcome: TaskOutcome,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// It returned a value.
    Ok,
    /// It failed; the error's message.
    Failed(String),
}

/// An event as batched subscribers receive it: compact, and built on the scheduler's threads
/// without formatting, allocating or counting references (but a label's, when the task has
/// one, and a failure's).
#[derive(Debug, Clone)]
pub(crate) enum Record {
    /// `n` tasks with this label were submitted (one record per run of equal labels in a
    /// submission, not one per task).
    Submitted {
        /// The tasks' label.
        label: Option<Arc<str>>,
        /// How many.
        n: u64,
    },
    /// A task ran (all its attempts) and ended.
    Ran(Ran),
}

/// One task's run, as [`Record::Ran`] carries it.
#[derive(Debug, Clone)]
pub(crate) struct Ran {
    /// The task's id ([`TaskKey::id`]).
    pub(crate) id: u64,
    /// The task's label.
    pub(crate) label: Option<Arc<str>>,
    /// Where it ran.
    pub(crate) worker: Worker,
    /// When it started: a reading of the bus's clock ([`EventBus::now`]) until the record
    /// reaches a subscriber, which gets nanoseconds since the cluster started. `None` for a
    /// task that started before anyone listened (its end is still reported, to those who
    /// count ends).
    pub(crate) start: Option<u64>,
    /// When it ended, likewise.
    pub(crate) end: u64,
    /// Its error, when it failed (formatted only by whoever reads it).
    pub(crate) failure: Option<Arc<TaskError>>,
}

impl Ran {
    /// The public event this run stands for, its clock readings converted with `scale`
    /// (none when its start is unknown).
    fn to_event(&self, scale: &Scale) -> Option<TaskEvent> {
        Some(TaskEvent {
            key: TaskKey::new(self.id, self.label.clone()),
            worker: self.worker,
            start: Duration::from_nanos(scale.nanos(self.start?)),
            end: Duration::from_nanos(scale.nanos(self.end)),
            outcome: match &self.failure {
                None => TaskOutcome::Ok,
                Some(e) => TaskOutcome::Failed(e.to_string()),
            },
        })
    }
}

/// Counts the tasks of one submission by label, to send one [`Record::Submitted`] per run of
/// equal labels instead of one record per task. Sent when [`flush`](Self::flush)ed (or
/// dropped).
#[derive(Default)]
pub(crate) struct SubmitTally {
    bus: Option<Arc<BusInner>>,
    label: Option<Arc<str>>,
    n: u64,
}

impl SubmitTally {
    /// Notes that the task `id`, labelled `label`, was submitted on `bus`.
    #[inline]
    pub(crate) fn note(&mut self, bus: &EventBus, id: u64, label: Option<&Arc<str>>) {
        let inner = &bus.inner;
        if inner.listeners.load(Ordering::Relaxed) == 0 {
            return;
        }
        if inner.channels.load(Ordering::Relaxed) > 0 {
            inner.send_to_channels(Event::Submitted {
                key: TaskKey::new(id, label.cloned()),
            });
        }
        if inner.batched.load(Ordering::Relaxed) == 0 {
            return;
        }
        let same_bus = self.bus.as_ref().is_some_and(|b| Arc::ptr_eq(b, inner));
        let same_label = match (&self.label, label) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == **b,
            _ => false,
        };
        if !(same_bus && same_label) {
            self.flush();
            self.bus = Some(inner.clone());
            self.label = label.cloned();
        }
        self.n += 1;
    }

    /// Sends what was counted so far.
    pub(crate) fn flush(&mut self) {
        if self.n > 0
            && let Some(bus) = &self.bus
        {
            bus.push(Record::Submitted {
                label: self.label.clone(),
                n: self.n,
            });
        }
        self.n = 0;
    }
}

impl Drop for SubmitTally {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Fans events out to subscribers; free when there are none.
///
/// Two kinds of subscriber:
///
/// - a **channel** ([`EventBus::subscribe`], what [`Cluster::events`](crate::Cluster::events)
///   returns) receives each event as it happens; sending takes a shared lock only;
/// - a **batched** subscriber ([`EventBus::subscribe_batched`], what the diagnostics use)
///   receives compact [`Record`]s: one per task, pushed when it ends onto a buffer of the
///   running thread's shard (an uncontended lock, no wake-up, no allocation but the buffer's
///   growth), with times read from the cheap [`Clock`]; submissions are counted per run of
///   equal labels and pushed once per submission ([`SubmitTally`]). The subscriber collects
///   the shards every few milliseconds with [`Batched::poll_with`]; everything emitted
///   before a poll started is in what it returns.
pub(crate) struct EventBus {
    inner: Arc<BusInner>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(Instant::now())
    }
}

struct BusInner {
    /// The clock task times are read from (times count from the cluster's start).
    clock: Clock,
    /// Channel subscribers plus batched ones: the one load the hot path makes when off, on a
    /// cache line of its own (nothing written often may share it).
    listeners: CachePadded<AtomicUsize>,
    channels: AtomicUsize,
    senders: RwLock<Vec<Sender<Event>>>,
    batched: AtomicUsize,
    shards: Shards,
    /// Batched subscribers' inboxes, by id, and a spare buffer per shard; a poll swaps each
    /// shard's buffer for its spare and fans the events out to every inbox. Buffers keep
    /// their capacity, so a steady run allocates nothing here.
    pump: Mutex<Pump>,
}

#[derive(Default)]
struct Pump {
    inboxes: Vec<(u64, Arc<Mutex<Vec<Record>>>)>,
    spares: Vec<Vec<Record>>,
}

/// Per-thread event buffers, each on its own cache line.
struct Shards(Box<[CachePadded<Mutex<Vec<Record>>>]>);

const SHARDS: usize = 64;

impl Default for Shards {
    fn default() -> Self {
        Shards(
            (0..SHARDS)
                .map(|_| CachePadded::new(Mutex::new(Vec::new())))
                .collect(),
        )
    }
}

thread_local! {
    /// This thread's shard, picked round-robin when it first emits.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn my_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        s.get()
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventBus {
    /// A bus whose task times count from `origin`.
    pub(crate) fn new(origin: Instant) -> EventBus {
        EventBus {
            inner: Arc::new(BusInner {
                clock: Clock::new(origin),
                listeners: CachePadded::default(),
                channels: AtomicUsize::new(0),
                senders: RwLock::default(),
                batched: AtomicUsize::new(0),
                shards: Shards::default(),
                pump: Mutex::default(),
            }),
        }
    }

    /// A reading of the clock a [`Ran`]'s times are read from.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// True while someone listens: callers skip clock reads otherwise.
    #[inline]
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.listeners.load(Ordering::Relaxed) > 0
    }

    /// Sends a task's run to every subscriber.
    #[inline]
    pub(crate) fn ran(&self, ran: Ran) {
        let inner = &self.inner;
        if inner.channels.load(Ordering::Relaxed) > 0
            && let Some(event) = ran.to_event(&inner.clock.scale())
        {
            inner.send_to_channels(Event::Task(event));
        }
        if inner.batched.load(Ordering::Relaxed) > 0 {
            inner.push(Record::Ran(ran));
        }
    }

    /// A channel receiving every event from now on.
    pub(crate) fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = unbounded();
        let mut senders = self
            .inner
            .senders
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        senders.push(tx);
        self.inner.channels.store(senders.len(), Ordering::Relaxed);
        self.inner.listeners.fetch_add(1, Ordering::Relaxed);
        rx
    }

    /// A batched subscription, from now on; it ends when dropped.
    pub(crate) fn subscribe_batched(&self) -> Batched {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let inbox = Arc::new(Mutex::new(Vec::new()));
        {
            let mut pump = lock(&self.inner.pump);
            pump.inboxes.push((id, inbox.clone()));
            self.inner
                .batched
                .store(pump.inboxes.len(), Ordering::Relaxed);
            self.inner.listeners.fetch_add(1, Ordering::Relaxed);
        }
        Batched {
            bus: self.inner.clone(),
            id,
            inbox,
        }
    }
}

impl BusInner {
    /// Pushes a record onto this thread's shard, for the batched subscribers.
    #[inline]
    fn push(&self, record: Record) {
        lock(&self.shards.0[my_shard()]).push(record);
    }

    fn send_to_channels(&self, event: Event) {
        let mut gone: Vec<Sender<Event>> = Vec::new();
        {
            let senders = self.senders.read().unwrap_or_else(PoisonError::into_inner);
            match senders.as_slice() {
                [] => {}
                [only] => {
                    if only.send(event).is_err() {
                        gone.push(only.clone());
                    }
                }
                many => {
                    for tx in many {
                        if tx.send(event.clone()).is_err() {
                            gone.push(tx.clone());
                        }
                    }
                }
            }
        }
        if !gone.is_empty() {
            let mut senders = self.senders.write().unwrap_or_else(PoisonError::into_inner);
            let before = senders.len();
            senders.retain(|tx| !gone.iter().any(|g| g.same_channel(tx)));
            self.channels.store(senders.len(), Ordering::Relaxed);
            self.listeners
                .fetch_sub(before - senders.len(), Ordering::Relaxed);
        }
    }

    /// Moves every shard's events to every batched subscriber's inbox.
    fn pump(&self) {
        // Holding the pump orders concurrent polls: a poll that returns has seen every event
        // pushed before it started.
        let mut pump = lock(&self.pump);
        let Pump { inboxes, spares } = &mut *pump;
        spares.resize_with(SHARDS, Vec::new);
        for (shard, spare) in self.shards.0.iter().zip(spares.iter_mut()) {
            {
                // The shard's lock is held only for the swap, never for the copy.
                let mut buf = lock(shard);
                if buf.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *buf, spare);
            }
            if let Some(((_, last), rest)) = inboxes.split_last() {
                for (_, inbox) in rest {
                    lock(inbox).extend(spare.iter().cloned());
                }
                lock(last).append(spare);
            }
            spare.clear();
        }
    }
}

/// A batched event subscription (see [`EventBus`]); it ends when dropped.
pub(crate) struct Batched {
    bus: Arc<BusInner>,
    id: u64,
    inbox: Arc<Mutex<Vec<Record>>>,
}

impl Batched {
    /// Calls `f` on every record emitted since the last poll (and before this one started),
    /// with times in nanoseconds since the cluster started.
    pub(crate) fn poll_with(&self, mut f: impl FnMut(&Record)) {
        self.bus.pump();
        let scale = self.bus.clock.scale(); // after the pump: covers every reading taken
        let mut inbox = lock(&self.inbox);
        for r in inbox.iter_mut() {
            if let Record::Ran(ran) = r {
                ran.start = ran.start.map(|t| scale.nanos(t));
                ran.end = scale.nanos(ran.end);
            }
            f(r);
        }
        inbox.clear(); // keeps the capacity for the next poll
    }

    /// Every record emitted since the last poll (and before this one started).
    #[cfg(test)]
    pub(crate) fn poll(&self) -> Vec<Record> {
        let mut out = Vec::new();
        self.poll_with(|e| out.push(e.clone()));
        out
    }
}

impl Drop for Batched {
    fn drop(&mut self) {
        let mut pump = lock(&self.bus.pump);
        pump.inboxes.retain(|(id, _)| *id != self.id);
        self.bus
            .batched
            .store(pump.inboxes.len(), Ordering::Relaxed);
        self.bus.listeners.fetch_sub(1, Ordering::Relaxed);
        if pump.inboxes.is_empty() {
            // Nobody will collect what is left in the shards.
            for shard in self.bus.shards.0.iter() {
                lock(shard).clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran(id: u64) -> Ran {
        Ran {
            id,
            label: None,
            worker: Worker::Cpu(0),
            start: Some(id),
            end: id + 1,
            failure: None,
        }
    }

    fn ids(events: impl IntoIterator<Item = Event>) -> Vec<u64> {
        let mut v: Vec<u64> = events
            .into_iter()
            .map(|e| match e {
                Event::Submitted { key } => key.id(),
                Event::Task(t) => t.key.id(),
            })
            .collect();
        v.sort();
        v
    }

    fn record_ids(records: impl IntoIterator<Item = Record>) -> Vec<u64> {
        let mut v: Vec<u64> = records
            .into_iter()
            .filter_map(|r| match r {
                Record::Ran(r) => Some(r.id),
                Record::Submitted { .. } => None,
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn every_subscriber_gets_every_event_and_the_gone_are_dropped() {
        let bus = EventBus::default();
        assert!(!bus.is_enabled());
        let a = bus.subscribe();
        bus.ran(ran(1));
        let b = bus.subscribe();
        bus.ran(ran(2));
        assert_eq!(ids(a.try_iter()), [1, 2]);
        assert_eq!(ids(b.try_iter()), [2]);
        drop(a);
        bus.ran(ran(3)); // finds `a` gone
        assert_eq!(bus.inner.listeners.load(Ordering::Relaxed), 1);
        assert_eq!(ids(b.try_iter()), [3]);
        drop(b);
        bus.ran(ran(4));
        assert!(!bus.is_enabled());
    }

    #[test]
    fn batched_subscribers_see_every_event_from_every_thread() {
        let bus = Arc::new(EventBus::default());
        let channel = bus.subscribe();
        let first = bus.subscribe_batched();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        bus.ran(ran(t * 1000 + i));
                    }
                })
            })
            .collect();
        let mut seen = Vec::new();
        let second = bus.subscribe_batched(); // joins midway: sees a suffix only
        let mut seen_later = Vec::new();
        for t in threads {
            seen.extend(first.poll());
            seen_later.extend(second.poll());
            t.join().unwrap();
        }
        seen.extend(first.poll());
        seen_later.extend(second.poll());
        let all: Vec<u64> = (0..4u64)
            .flat_map(|t| (0..500).map(move |i| t * 1000 + i))
            .collect();
        assert_eq!(record_ids(seen), all);
        assert_eq!(ids(channel.try_iter()), all);
        let later = record_ids(seen_later);
        assert!(later.iter().all(|id| all.contains(id)));
        drop(first);
        drop(second);
        drop(channel);
        bus.ran(ran(9)); // drops the channel
        assert!(!bus.is_enabled());
        assert!(bus.inner.shards.0.iter().all(|s| lock(s).is_empty()));
    }

    #[test]
    fn a_poll_with_nothing_new_is_empty() {
        let bus = EventBus::default();
        let sub = bus.subscribe_batched();
        assert!(sub.poll().is_empty());
        bus.ran(ran(1));
        assert_eq!(record_ids(sub.poll()), [1]);
        assert!(sub.poll().is_empty());
    }

    #[test]
    fn submissions_are_counted_per_run_of_labels_and_sent_one_by_one_to_channels() {
        let bus = EventBus::default();
        let mut tally = SubmitTally::default();
        tally.note(&bus, 1, None); // nobody listens: nothing kept
        tally.flush();
        let channel = bus.subscribe();
        let batched = bus.subscribe_batched();
        let a: Arc<str> = Arc::from("a");
        let a_again: Arc<str> = Arc::from("a");
        let b: Arc<str> = Arc::from("ü");
        let labels = [
            None,
            None,
            Some(&a),
            Some(&a_again),
            Some(&b),
            Some(&a),
            None,
        ];
        for (id, label) in labels.iter().enumerate() {
            tally.note(&bus, id as u64 + 10, *label);
        }
        drop(tally);
        let runs: Vec<(Option<String>, u64)> = batched
            .poll()
            .into_iter()
            .map(|r| match r {
                Record::Submitted { label, n } => (label.map(|l| l.to_string()), n),
                Record::Ran(r) => panic!("unexpected run {}", r.id),
            })
            .collect();
        let expected = [
            (None, 2),
            (Some("a"), 2),
            (Some("ü"), 1),
            (Some("a"), 1),
            (None, 1),
        ];
        let expected: Vec<(Option<String>, u64)> = expected
            .iter()
            .map(|(l, n)| (l.map(str::to_string), *n))
            .collect();
        assert_eq!(runs, expected);
        let keys: Vec<TaskKey> = channel
            .try_iter()
            .map(|e| match e {
                Event::Submitted { key } => key,
                Event::Task(t) => panic!("unexpected {:?}", t.key),
            })
            .collect();
        assert_eq!(keys.len(), labels.len());
        for (key, (id, label)) in keys.iter().zip(labels.iter().enumerate()) {
            assert_eq!(key.id(), id as u64 + 10);
            assert_eq!(key.label(), label.map(|l| &**l));
        }
    }
}
