//! The worker thread of one GPU: opens the context, makes the streams, runs queued tasks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use crossbeam::channel::{Sender, unbounded};

use super::GpuContext;
use super::ops::{DeviceMemory, GpuShared};
use crate::error::{Error, TaskFailure};
use crate::graph::Worker;
use crate::graph::node::{self, Task};
use crate::hardware::{GpuInfo, format_cuda_uuid};

/// A running GPU worker, as the cluster sees it.
pub(crate) struct GpuWorker {
    index: usize,
    tx: Option<Sender<Arc<dyn Task>>>,
    queued: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl GpuWorker {
    /// Starts the worker of cluster GPU `index`; its context opens in the background.
    pub(crate) fn start(
        index: usize,
        info: GpuInfo,
        streams: usize,
        memory_limit: u64,
    ) -> std::io::Result<GpuWorker> {
        let (tx, rx) = unbounded::<Arc<dyn Task>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let thread = std::thread::Builder::new()
            .name(format!("onebox-gpu-{index}"))
            .spawn(move || {
                let info = Arc::new(info);
                let contexts = open(index, &info, streams, memory_limit);
                for (n, task) in rx.into_iter().enumerate() {
                    q.fetch_sub(1, Ordering::Relaxed);
                    match &contexts {
                        Ok(cs) => {
                            let c = &cs[n % cs.len()];
                            node::run(
                                task,
                                Worker::Gpu {
                                    gpu: index,
                                    stream: c.stream_index,
                                },
                                Some(c),
                            );
                        }
                        Err(message) => {
                            let e = Error::Gpu {
                                gpu: index,
                                message: message.clone(),
                            };
                            node::fail(task, TaskFailure::Error(Arc::new(e)));
                        }
                    }
                }
            })?;
        Ok(GpuWorker {
            index,
            tx: Some(tx),
            queued,
            thread: Some(thread),
        })
    }

    /// Tasks waiting in this worker's queue.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Queues a task on this GPU.
    pub(crate) fn send(&self, task: Arc<dyn Task>) {
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Some(tx) = &self.tx
            && let Err(returned) = tx.send(task)
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            let e = Error::Gpu {
                gpu: self.index,
                message: "the GPU worker has stopped".into(),
            };
            node::fail(returned.0, TaskFailure::Error(Arc::new(e)));
        }
    }

    /// Closes the queue and joins the thread (unless called from that thread itself).
    pub(crate) fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// Opens the CUDA context of the device whose UUID is `info.uuid`, and `streams` streams on it.
fn open(
    index: usize,
    info: &Arc<GpuInfo>,
    streams: usize,
    memory_limit: u64,
) -> Result<Vec<GpuContext>, String> {
    use cudarc::driver::{CudaContext, result, sys};

    // SAFETY: only tries to open the library. cudarc panics on a driver call without it.
    if !unsafe { sys::is_culib_present() } {
        return Err("the CUDA driver library (libcuda.so.1) could not be loaded".into());
    }
    let err = |e: cudarc::driver::DriverError| format!("{e:?}");
    result::init().map_err(err)?;
    let count = result::device::get_count().map_err(err)?;
    let ordinal = (0..count)
        .find(|&i| {
            result::device::get(i)
                .and_then(result::device::get_uuid)
                .is_ok_and(|u| format_cuda_uuid(&u.bytes.map(|b| b as u8)) == info.uuid)
        })
        .ok_or_else(|| {
            format!(
                "CUDA shows no device with UUID {} (check CUDA_VISIBLE_DEVICES)",
                info.uuid
            )
        })?;
    let context = CudaContext::new(ordinal as usize).map_err(err)?;
    let sms = context
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(err)?;
    let shared = Arc::new(GpuShared::new(
        DeviceMemory::new(index, memory_limit),
        sms.max(1) as u32,
    ));
    (0..streams.max(1))
        .map(|s| {
            Ok(GpuContext {
                index,
                stream_index: s,
                info: info.clone(),
                context: context.clone(),
                stream: context.new_stream().map_err(err)?,
                shared: shared.clone(),
                blas: std::sync::OnceLock::new(),
            })
        })
        .collect()
}
