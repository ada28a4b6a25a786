//! GPU workers: one thread per GPU that owns the GPU's CUDA context and its streams.
//!
//! A CUDA context is bound to threads, and the cheapest way to keep a GPU busy from Rust is one
//! long-lived thread that owns it. So each GPU of a cluster gets a worker thread with:
//!
//! | on the CPU you have   | on a GPU worker you have                       |
//! |-----------------------|------------------------------------------------|
//! | a pool thread         | the worker thread, owner of the CUDA context   |
//! | one core's time       | `K` streams: queues of GPU work that overlap   |
//! | `&mut` to a `Vec<T>`  | a `CudaSlice<T>` allocated on a stream         |
//!
//! A task placed on a GPU (made by [`Cluster::delayed_on_gpu`](crate::Cluster::delayed_on_gpu)
//! or [`Cluster::submit_on_gpu`](crate::Cluster::submit_on_gpu)) runs on that thread and gets a
//! [`GpuContext`]: the context and one of the streams, taken in turn, so consecutive tasks'
//! copies and kernels overlap. The context is opened on the worker thread in the background, so
//! a cluster starts in milliseconds even with 8 GPUs; the first GPU task waits for it.
//!
//! NVML (where the GPU list comes from) and CUDA may number devices differently; the worker
//! finds its CUDA device by UUID. With no GPU, none of this starts, and a GPU task fails at once
//! with [`Error::NoGpu`](crate::Error::NoGpu).

pub mod kernels;
pub(crate) mod libs;
mod ops;
pub(crate) mod worker;

pub use kernels::{Expr, Reduce};
pub use ops::{DeviceBuffer, DeviceMemory, GpuFloat};

use std::sync::{Arc, OnceLock};

use cudarc::driver::{CudaContext, CudaStream};

use crate::hardware::GpuInfo;

/// What a task running on a GPU worker gets: the GPU, its CUDA context, and a stream.
pub struct GpuContext {
    index: usize,
    stream_index: usize,
    info: Arc<GpuInfo>,
    context: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    shared: Arc<ops::GpuShared>,
    blas: OnceLock<ops::BlasHandle>,
}

impl GpuContext {
    /// The GPU's index in the cluster.
    pub fn index(&self) -> usize {
        self.index
    }
    /// Which of the worker's streams this task was given.
    pub fn stream_index(&self) -> usize {
        self.stream_index
    }
    /// The GPU as detected (name, UUID, memory, compute capability).
    pub fn info(&self) -> &GpuInfo {
        &self.info
    }
    /// The CUDA context (cudarc), already bound to this thread.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.context
    }
    /// The stream this task should queue its work on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}
