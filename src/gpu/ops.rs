//! What a GPU task can do with its [`GpuContext`]: device buffers under the GPU's memory
//! limit, fused elementwise kernels, fused reductions, and matrix products through cuBLAS.
//!
//! ```no_run
//! use onebox::prelude::*;
//! use onebox::gpu::{Expr, Reduce};
//! let cluster = Cluster::local()?;
//! let mean = cluster
//!     .delayed_on_gpu(|gpu| {
//!         let x = gpu.upload(&vec![1.0f32; 1 << 20])?;
//!         let total = gpu.reduce(Reduce::Sum, &Expr::input(0), &[&x])?;
//!         Ok(total / x.len() as f64)
//!     })
//!     .compute()?;
//! # Ok::<(), onebox::Error>(())
//! ```

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    CudaFunction, CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};

use super::GpuContext;
use super::kernels::{Expr, Reduce, combine_partials, elementwise_source, reduce_source};
use super::libs::{self, CublasHandle};
use crate::error::{Error, Result};
use crate::graph::node::lock;
use crate::hardware::format_bytes;

/// Element types the GPU kernels support: `f32` and `f64`.
pub trait GpuFloat: DeviceRepr + ValidAsZeroBits + Copy + Send + Sync + 'static {
    /// The CUDA C++ name of the type.
    const CUDA: &'static str;
    /// True for `f64` (cuBLAS's `Dgemm`), false for `f32` (`Sgemm`).
    const DOUBLE: bool;
}

impl GpuFloat for f32 {
    const CUDA: &'static str = "float";
    const DOUBLE: bool = false;
}

impl GpuFloat for f64 {
    const CUDA: &'static str = "double";
    const DOUBLE: bool = true;
}

/// The device-memory budget of one GPU: allocations through onebox are counted against it, so
/// work that would exceed it gets a clear error instead of a CUDA out-of-memory in the middle.
#[derive(Debug)]
pub struct DeviceMemory {
    gpu: usize,
    limit: u64,
    used: AtomicU64,
}

impl DeviceMemory {
    pub(crate) fn new(gpu: usize, limit: u64) -> Self {
        DeviceMemory {
            gpu,
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held by live [`DeviceBuffer`]s.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Counts `bytes` against the budget, or says why not.
    pub(crate) fn reserve(&self, bytes: u64) -> Result<()> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if next > self.limit {
                return Err(Error::Gpu {
                    gpu: self.gpu,
                    message: format!(
                        "allocating {} would exceed this GPU's memory limit of {} ({} in use by onebox)",
                        format_bytes(bytes),
                        format_bytes(self.limit),
                        format_bytes(used)
                    ),
                });
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    pub(crate) fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Device memory holding `len` elements of `T`, counted against its GPU's [`DeviceMemory`].
pub struct DeviceBuffer<T> {
    slice: CudaSlice<T>,
    memory: Arc<DeviceMemory>,
}

impl<T> DeviceBuffer<T> {
    /// Elements in the buffer.
    pub fn len(&self) -> usize {
        self.slice.len()
    }
    /// True when the buffer holds no element.
    pub fn is_empty(&self) -> bool {
        self.slice.len() == 0
    }
    /// The underlying cudarc slice, for custom kernels.
    pub fn as_slice(&self) -> &CudaSlice<T> {
        &self.slice
    }
    /// The underlying cudarc slice, mutably.
    pub fn as_slice_mut(&mut self) -> &mut CudaSlice<T> {
        &mut self.slice
    }
}

impl<T> Drop for DeviceBuffer<T> {
    fn drop(&mut self) {
        self.memory
            .release((self.slice.len() * std::mem::size_of::<T>()) as u64);
    }
}

/// What the streams of one GPU worker share: compiled kernels and the memory budget.
pub(crate) struct GpuShared {
    pub(crate) memory: Arc<DeviceMemory>,
    kernels: Mutex<HashMap<String, CudaFunction>>,
    sm_count: u32,
}

impl GpuShared {
    pub(crate) fn new(memory: DeviceMemory, sm_count: u32) -> Self {
        GpuShared {
            memory: Arc::new(memory),
            kernels: Mutex::new(HashMap::new()),
            sm_count: sm_count.max(1),
        }
    }
}

/// A cuBLAS handle bound to one stream; destroyed with it.
pub(crate) struct BlasHandle {
    handle: CublasHandle,
    blas: &'static libs::Cublas,
}

impl Drop for BlasHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was created by this cuBLAS and is destroyed once.
        unsafe { (self.blas.destroy)(self.handle) };
    }
}

// SAFETY: a handle is only used from its GPU worker's thread (GpuContext is not shared).
unsafe impl Send for BlasHandle {}
unsafe impl Sync for BlasHandle {}

const BLOCK: u32 = 256;

impl GpuContext {
    fn err(&self, what: &str, e: impl std::fmt::Debug) -> Error {
        Error::Gpu {
            gpu: self.index,
            message: format!("{what}: {e:?}"),
        }
    }

    /// This GPU's memory budget.
    pub fn memory(&self) -> &Arc<DeviceMemory> {
        &self.shared.memory
    }

    /// Zeroed device memory for `len` elements, counted against the budget.
    pub fn alloc_zeros<T: GpuFloat>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        self.alloc_with(len, |stream| stream.alloc_zeros::<T>(len))
    }

    /// Device memory for `len` elements that the caller will overwrite entirely (no memset).
    fn alloc_for_overwrite<T: GpuFloat>(&self, len: usize) -> Result<DeviceBuffer<T>> {
        // SAFETY: every caller launches a kernel that writes all `len` elements before the
        // buffer can be read.
        self.alloc_with(len, |stream| unsafe { stream.alloc::<T>(len) })
    }

    fn alloc_with<T: GpuFloat>(
        &self,
        len: usize,
        alloc: impl FnOnce(
            &Arc<cudarc::driver::CudaStream>,
        ) -> std::result::Result<CudaSlice<T>, cudarc::driver::DriverError>,
    ) -> Result<DeviceBuffer<T>> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        self.shared.memory.reserve(bytes)?;
        match alloc(&self.stream) {
            Ok(slice) => Ok(DeviceBuffer {
                slice,
                memory: self.shared.memory.clone(),
            }),
            Err(e) => {
                self.shared.memory.release(bytes);
                Err(self.alloc_error(bytes, e))
            }
        }
    }

    fn alloc_error(&self, bytes: u64, e: cudarc::driver::DriverError) -> Error {
        let free = self
            .context
            .mem_get_info()
            .map(|(f, _)| format_bytes(f as u64))
            .unwrap_or_default();
        if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            Error::Gpu {
                gpu: self.index,
                message: format!(
                    "out of device memory allocating {} ({free} free)",
                    format_bytes(bytes)
                ),
            }
        } else {
            self.err("allocation failed", e)
        }
    }

    /// Copies `data` to a new device buffer (on this task's stream).
    pub fn upload<T: GpuFloat>(&self, data: &[T]) -> Result<DeviceBuffer<T>> {
        let mut buf = self.alloc_for_overwrite::<T>(data.len())?;
        self.stream
            .memcpy_htod(data, &mut buf.slice)
            .map_err(|e| self.err("copy to device", e))?;
        Ok(buf)
    }

    /// Copies a device buffer back to the host (waits for the stream).
    pub fn download<T: GpuFloat>(&self, buf: &DeviceBuffer<T>) -> Result<Vec<T>> {
        self.stream
            .clone_dtoh(&buf.slice)
            .map_err(|e| self.err("copy to host", e))
    }

    /// Copies a device buffer into another on the device.
    pub fn copy<T: GpuFloat>(
        &self,
        src: &DeviceBuffer<T>,
        dst: &mut DeviceBuffer<T>,
    ) -> Result<()> {
        if src.len() != dst.len() {
            return Err(Error::Invalid(format!(
                "device copy of {} elements into {}",
                src.len(),
                dst.len()
            )));
        }
        self.stream
            .memcpy_dtod(&src.slice, &mut dst.slice)
            .map_err(|e| self.err("device copy", e))
    }

    /// Waits until everything queued on this task's stream has run.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| self.err("synchronize", e))
    }

    /// The compiled kernel `name` of `source`, compiling it on first use on this GPU.
    fn kernel(&self, name: &str, source: &str) -> Result<CudaFunction> {
        if let Some(f) = lock(&self.shared.kernels).get(name) {
            return Ok(f.clone());
        }
        let cc = self.info.compute_capability;
        let nvrtc = libs::nvrtc_for(cc).map_err(|m| Error::Gpu {
            gpu: self.index,
            message: m,
        })?;
        let ptx = nvrtc.compile_ptx(source, cc).map_err(|m| Error::Gpu {
            gpu: self.index,
            message: m,
        })?;
        let module = self
            .context
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| self.err(&format!("loading the PTX of NVRTC {}", nvrtc.major()), e))?;
        let f = module
            .load_function(name)
            .map_err(|e| self.err("kernel lookup", e))?;
        lock(&self.shared.kernels).insert(name.to_string(), f.clone());
        Ok(f)
    }

    fn check_inputs<T>(&self, expr: &Expr, inputs: &[&DeviceBuffer<T>]) -> Result<usize> {
        if inputs.len() < expr.arity() {
            return Err(Error::Invalid(format!(
                "the expression reads {} inputs but {} were given",
                expr.arity(),
                inputs.len()
            )));
        }
        let n = inputs.first().map_or(0, |b| b.len());
        if let Some(b) = inputs.iter().find(|b| b.len() != n) {
            return Err(Error::Invalid(format!(
                "GPU inputs of different lengths: {n} and {}",
                b.len()
            )));
        }
        Ok(n)
    }

    /// A fixed number of blocks per multiprocessor for the kernels' grid-stride loops (and one
    /// partial per block for reductions).
    fn grid_strided(&self, n: usize) -> LaunchConfig {
        let blocks = n
            .div_ceil(BLOCK as usize)
            .clamp(1, self.shared.sm_count as usize * 32) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// `expr` applied to every element of `inputs` (all of one length), in one kernel.
    pub fn elementwise<T: GpuFloat>(
        &self,
        expr: &Expr,
        inputs: &[&DeviceBuffer<T>],
    ) -> Result<DeviceBuffer<T>> {
        let n = self.check_inputs(expr, inputs)?;
        let mut out = self.alloc_for_overwrite::<T>(n)?;
        if n == 0 {
            return Ok(out);
        }
        let (name, src) = elementwise_source(expr, T::CUDA);
        let f = self.kernel(&name, &src)?;
        let n64 = n as u64;
        let mut launch = self.stream.launch_builder(&f);
        launch.arg(&n64).arg(&mut out.slice);
        for b in &inputs[..expr.arity()] {
            launch.arg(&b.slice);
        }
        // SAFETY: the kernel's parameters are (u64 n, T* out, const T* in0..) as generated by
        // `elementwise_source`, every buffer holds `n` elements, and the grid-stride loop stays
        // below `n`.
        unsafe { launch.launch(self.grid_strided(n)) }.map_err(|e| self.err("kernel launch", e))?;
        Ok(out)
    }

    /// `expr` over every element of `inputs`, combined with `op` (in double precision).
    /// The sum of nothing is 0; the min and max of nothing are +inf and -inf.
    pub fn reduce<T: GpuFloat>(
        &self,
        op: Reduce,
        expr: &Expr,
        inputs: &[&DeviceBuffer<T>],
    ) -> Result<f64> {
        let n = self.check_inputs(expr, inputs)?;
        if n == 0 {
            return Ok(combine_partials(op, &[]));
        }
        let (name, src) = reduce_source(expr, op, T::CUDA);
        let f = self.kernel(&name, &src)?;
        let cfg = self.grid_strided(n);
        let blocks = cfg.grid_dim.0 as usize;
        let mut partial = self.alloc_for_overwrite::<f64>(blocks)?;
        let n64 = n as u64;
        let mut launch = self.stream.launch_builder(&f);
        launch.arg(&n64).arg(&mut partial.slice);
        for b in &inputs[..expr.arity()] {
            launch.arg(&b.slice);
        }
        // SAFETY: parameters (u64 n, double* partial, const T* in0..) as generated by
        // `reduce_source`; `partial` has one slot per block; inputs hold `n` elements.
        unsafe { launch.launch(cfg) }.map_err(|e| self.err("kernel launch", e))?;
        let partials = self.download(&partial)?;
        Ok(combine_partials(op, &partials))
    }

    fn blas(&self) -> Result<&BlasHandle> {
        if let Some(h) = self.blas.get() {
            return Ok(h);
        }
        let blas = libs::cublas_for(self.info.compute_capability).map_err(|m| Error::Gpu {
            gpu: self.index,
            message: m,
        })?;
        self.context
            .bind_to_thread()
            .map_err(|e| self.err("bind context", e))?;
        let mut handle: CublasHandle = std::ptr::null_mut();
        // SAFETY: creating a handle for the current (bound) context, then attaching it to this
        // task's stream, which outlives the handle (both belong to this GpuContext).
        unsafe {
            let rc = (blas.create)(&mut handle);
            if rc != 0 {
                return Err(Error::Gpu {
                    gpu: self.index,
                    message: format!("cublasCreate failed with status {rc}"),
                });
            }
            let rc = (blas.set_stream)(handle, self.stream.cu_stream() as *mut c_void);
            if rc != 0 {
                (blas.destroy)(handle);
                return Err(Error::Gpu {
                    gpu: self.index,
                    message: format!("cublasSetStream failed with status {rc}"),
                });
            }
        }
        Ok(self.blas.get_or_init(|| BlasHandle { handle, blas }))
    }

    /// The row-major product `a (m x k) * b (k x n)`, by cuBLAS on this task's stream.
    pub fn matmul<T: GpuFloat + From<f32>>(
        &self,
        a: &DeviceBuffer<T>,
        b: &DeviceBuffer<T>,
        (m, k, n): (usize, usize, usize),
    ) -> Result<DeviceBuffer<T>> {
        if a.len() != m * k || b.len() != k * n {
            return Err(Error::Invalid(format!(
                "matmul of {m}x{k} by {k}x{n} needs {} and {} elements, got {} and {}",
                m * k,
                k * n,
                a.len(),
                b.len()
            )));
        }
        let dims = [m, k, n];
        if dims.iter().any(|&d| d > i32::MAX as usize) {
            return Err(Error::Invalid(format!(
                "matmul dimensions {dims:?} exceed cuBLAS's 32-bit sizes"
            )));
        }
        let mut c = self.alloc_zeros::<T>(m * n)?;
        if m == 0 || n == 0 || k == 0 {
            return Ok(c);
        }
        let h = self.blas()?;
        let (alpha, beta) = (T::from(1.0), T::from(0.0));
        {
            let (ap, _ga) = a.slice.device_ptr(&self.stream);
            let (bp, _gb) = b.slice.device_ptr(&self.stream);
            let (cp, _gc) = c.slice.device_ptr_mut(&self.stream);
            // Row-major C = A B is column-major C^T = B^T A^T: pass B first, with n and m swapped.
            // SAFETY: the pointers address buffers of the checked sizes on this stream's context;
            // the guards keep cudarc's stream ordering until the call is queued.
            let (one, zero) = (&alpha as *const T, &beta as *const T);
            let (n32, m32, k32) = (n as i32, m as i32, k as i32);
            // `T` is f64 exactly when `T::DOUBLE`, so each cast below is an identity.
            let rc = unsafe {
                if T::DOUBLE {
                    let (a, b, c) = (ap as *const f64, bp as *const f64, cp as *mut f64);
                    (h.blas.dgemm)(
                        h.handle,
                        0,
                        0,
                        n32,
                        m32,
                        k32,
                        one.cast(),
                        b,
                        n32,
                        a,
                        k32,
                        zero.cast(),
                        c,
                        n32,
                    )
                } else {
                    let (a, b, c) = (ap as *const f32, bp as *const f32, cp as *mut f32);
                    (h.blas.sgemm)(
                        h.handle,
                        0,
                        0,
                        n32,
                        m32,
                        k32,
                        one.cast(),
                        b,
                        n32,
                        a,
                        k32,
                        zero.cast(),
                        c,
                        n32,
                    )
                }
            };
            if rc != 0 {
                return Err(Error::Gpu {
                    gpu: self.index,
                    message: format!("cuBLAS gemm failed with status {rc}"),
                });
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceMemory;

    #[test]
    fn the_memory_budget_refuses_what_would_exceed_it_and_names_the_sizes() {
        let m = DeviceMemory::new(2, 1000);
        m.reserve(600).unwrap();
        let e = m.reserve(500).unwrap_err().to_string();
        assert!(
            e.contains("GPU 2") && e.contains("1000 B") && e.contains("600 B"),
            "{e}"
        );
        m.release(600);
        m.reserve(1000).unwrap();
        assert_eq!(m.used(), 1000);
    }
}
