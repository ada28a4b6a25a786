//! The event stream: what happened to every task, and when.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, unbounded};
use crossbeam::utils::CachePadded;

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

/// Fans events out to subscribers; free when there are none.
///
/// Two kinds of subscriber:
///
/// - a **channel** ([`EventBus::subscribe`], what [`Cluster::events`](crate::Cluster::events)
///   returns) receives each event as it happens; sending takes a shared lock only;
/// - a **batched** subscriber ([`EventBus::subscribe_batched`], what the diagnostics use)
///   costs the scheduler one push onto a buffer of its own thread's shard (an uncontended
///   lock, no wake-up, no allocation but the buffer's growth). The subscriber collects the
///   shards every few milliseconds with [`Batched::poll`]; everything emitted before a poll
///   started is in what it returns.
#[derive(Default)]
pub(crate) struct EventBus {
    inner: Arc<BusInner>,
}

#[derive(Default)]
struct BusInner {
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
    inboxes: Vec<(u64, Arc<Mutex<Vec<Event>>>)>,
    spares: Vec<Vec<Event>>,
}

/// Per-thread event buffers, each on its own cache line.
struct Shards(Box<[CachePadded<Mutex<Vec<Event>>>]>);

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
    /// True while someone listens: callers skip clock reads otherwise.
    #[inline]
    pub(crate) fn is_enabled(&self) -> bool {
        self.inner.listeners.load(Ordering::Relaxed) > 0
    }

    /// Sends the event `make` builds to every subscriber; `make` runs only if there is one.
    #[inline]
    pub(crate) fn emit(&self, make: impl FnOnce() -> Event) {
        if self.is_enabled() {
            self.inner.send(make());
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
    fn send(&self, event: Event) {
        let to_channels = self.channels.load(Ordering::Relaxed) > 0;
        if self.batched.load(Ordering::Relaxed) > 0 {
            let shard = &self.shards.0[my_shard()];
            if to_channels {
                lock(shard).push(event.clone());
            } else {
                lock(shard).push(event);
                return;
            }
        }
        if to_channels {
            self.send_to_channels(event);
        }
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
    inbox: Arc<Mutex<Vec<Event>>>,
}

impl Batched {
    /// Calls `f` on every event emitted since the last poll (and before this one started).
    pub(crate) fn poll_with(&self, mut f: impl FnMut(&Event)) {
        self.bus.pump();
        let mut inbox = lock(&self.inbox);
        for e in inbox.iter() {
            f(e);
        }
        inbox.clear(); // keeps the capacity for the next poll
    }

    /// Every event emitted since the last poll (and before this one started).
    #[cfg(test)]
    pub(crate) fn poll(&self) -> Vec<Event> {
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
    use crate::graph::TaskKey;

    fn submitted(id: u64) -> Event {
        Event::Submitted {
            key: TaskKey::new(id, None),
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

    #[test]
    fn every_subscriber_gets_every_event_and_the_gone_are_dropped() {
        let bus = EventBus::default();
        assert!(!bus.is_enabled());
        bus.emit(|| unreachable!("no subscriber: the event is never built"));
        let a = bus.subscribe();
        bus.emit(|| submitted(1));
        let b = bus.subscribe();
        bus.emit(|| submitted(2));
        assert_eq!(ids(a.try_iter()), [1, 2]);
        assert_eq!(ids(b.try_iter()), [2]);
        drop(a);
        bus.emit(|| submitted(3)); // finds `a` gone
        assert_eq!(bus.inner.listeners.load(Ordering::Relaxed), 1);
        assert_eq!(ids(b.try_iter()), [3]);
        drop(b);
        bus.emit(|| submitted(4));
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
                        bus.emit(|| submitted(t * 1000 + i));
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
        assert_eq!(ids(seen), all);
        assert_eq!(ids(channel.try_iter()), all);
        let later = ids(seen_later);
        assert!(later.iter().all(|id| all.contains(id)));
        drop(first);
        drop(second);
        drop(channel);
        bus.emit(|| submitted(9)); // drops the channel
        assert!(!bus.is_enabled());
        assert!(bus.inner.shards.0.iter().all(|s| lock(s).is_empty()));
    }

    #[test]
    fn a_poll_with_nothing_new_is_empty() {
        let bus = EventBus::default();
        let sub = bus.subscribe_batched();
        assert!(sub.poll().is_empty());
        bus.emit(|| submitted(1));
        assert_eq!(ids(sub.poll()), [1]);
        assert!(sub.poll().is_empty());
    }
}
