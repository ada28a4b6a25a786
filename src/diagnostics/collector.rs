//! The collector behind reports and the dashboard: one thread that drains a cluster's events
//! into an [`Aggregate`] and samples memory (process RSS and the cluster's managed bytes) and
//! GPUs (through NVML) a few times a second.
//!
//! It runs beside the scheduler, never on its threads: the scheduler's only cost is sending
//! each event into a channel. The collector takes what has queued every [`DRAIN_EVERY`]
//! instead of blocking on the channel, so no send ever has to wake it up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{RecvTimeoutError, Sender, bounded};

use super::aggregate::{Aggregate, GpuSample};
use crate::Cluster;
use crate::error::{Error, Result};
use crate::graph::lock_unpoisoned as lock;

/// How often memory and GPUs are sampled.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often queued events are taken.
pub(crate) const DRAIN_EVERY: Duration = Duration::from_millis(20);

/// What the collector shares with its readers.
pub(crate) struct Shared {
    pub(crate) aggregate: Mutex<Aggregate>,
    /// The cluster's start, to turn sample times into times since it.
    started: Instant,
    /// The cluster's managed bytes counter: the counter alone, not the cluster, so that
    /// neither the collector's thread nor the dashboard keeps the cluster alive.
    managed: Arc<AtomicUsize>,
}

impl Shared {
    /// The cluster's managed bytes now.
    pub(crate) fn managed_bytes(&self) -> u64 {
        self.managed.load(Ordering::Relaxed) as u64
    }

    /// The time since the cluster started, as events carry it.
    pub(crate) fn now(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A running collector; stops (and joins its thread) when dropped or [`finish`](Self::finish)ed.
pub(crate) struct Collector {
    shared: Arc<Shared>,
    /// Dropped to stop the thread (which wakes at once).
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    /// Subscribes to `cluster`'s events and starts the collecting thread.
    pub(crate) fn start(cluster: &Cluster) -> Result<Collector> {
        let started = cluster.inner().started;
        let origin = started.elapsed();
        let shared = Arc::new(Shared {
            aggregate: Mutex::new(Aggregate::new(origin)),
            started,
            managed: cluster.inner().managed.clone(),
        });
        let events = cluster.inner().events.subscribe_batched();
        let gpu_uuids: Vec<String> = cluster
            .plan()
            .gpus
            .iter()
            .filter_map(|&i| cluster.hardware().gpus.get(i).map(|g| g.uuid.clone()))
            .collect();
        let s = shared.clone();
        let (stop, stop_rx) = bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("onebox-diagnostics".into())
            .spawn(move || {
                let mut gpus = GpuSampler::new(gpu_uuids);
                let mut next_sample = Instant::now();
                loop {
                    let now = Instant::now();
                    if now >= next_sample {
                        let at = s.now();
                        let rss = process_rss();
                        let managed = s.managed_bytes();
                        let samples = gpus.sample();
                        let mut agg = lock(&s.aggregate);
                        if let Some(rss) = rss {
                            agg.add_memory(at, rss, managed);
                        }
                        for g in samples {
                            agg.add_gpu(at, g);
                        }
                        next_sample = now + SAMPLE_EVERY;
                    }
                    // Stopped when the sender is dropped; whatever was emitted before is
                    // already queued, and is taken below before the thread ends.
                    let stopping = !matches!(
                        stop_rx.recv_timeout(DRAIN_EVERY),
                        Err(RecvTimeoutError::Timeout)
                    );
                    {
                        let mut agg = lock(&s.aggregate);
                        events.poll_with(|r| agg.add_record(r));
                    }
                    if stopping {
                        break;
                    }
                }
                let at = s.now();
                let mut agg = lock(&s.aggregate);
                if let Some(rss) = process_rss() {
                    agg.add_memory(at, rss, s.managed_bytes());
                }
                agg.close_at(at);
            })
            .map_err(|e| Error::Invalid(format!("could not start the diagnostics thread: {e}")))?;
        Ok(Collector {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops collecting (every event emitted so far is taken) and returns the aggregate.
    pub(crate) fn finish(mut self) -> Aggregate {
        self.stop();
        lock(&self.shared.aggregate).clone()
    }

    fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The process's resident set size, from `/proc/self/status` (`None` where there is none).
pub(crate) fn process_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// GPU memory and utilisation through NVML, for the cluster's GPUs (by UUID).
struct GpuSampler {
    nvml: Option<nvml_wrapper::Nvml>,
    uuids: Vec<String>,
}

impl GpuSampler {
    fn new(uuids: Vec<String>) -> Self {
        let nvml = if uuids.is_empty() {
            None
        } else {
            nvml_wrapper::Nvml::init().ok()
        };
        GpuSampler { nvml, uuids }
    }

    fn sample(&mut self) -> Vec<GpuSample> {
        let Some(nvml) = &self.nvml else {
            return Vec::new();
        };
        self.uuids
            .iter()
            .enumerate()
            .filter_map(|(gpu, uuid)| {
                let dev = nvml.device_by_uuid(uuid.as_str()).ok()?;
                let mem = dev.memory_info().ok()?;
                let util = dev.utilization_rates().map(|u| u.gpu).unwrap_or(0);
                Some(GpuSample {
                    t: 0.0,
                    gpu,
                    memory_used: mem.used,
                    memory_total: mem.total,
                    utilisation: util,
                })
            })
            .collect()
    }
}
