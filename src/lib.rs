//! # onebox: one machine as a local cluster
//!
//! onebox runs task graphs and chunked collections on every core and GPU of one
//! machine, with microseconds of overhead per task. The one idea: **one cluster, one graph,
//! one scheduler**. Whatever API made a piece of work, it becomes a task in a graph that a
//! single scheduler runs on the [`Cluster`]'s work-stealing CPU pool or on a GPU worker; that
//! one place decides placement, retries, error propagation and the event stream that
//! diagnostics read.
//!
//! ```text
//!  hardware  ->  Cluster  ->  scheduler  <-  Delayed, TaskHandle, map
//!  (detect)      (pool,       (tasks, deps,
//!                GPU workers,  retries,    ->  events  ->  diagnostics
//!                memory)       errors)
//! ```
//!
//! ```
//! use onebox::prelude::*;
//!
//! let cluster = Cluster::local()?;                       // sized from the hardware, in ms
//! let squares: Vec<u64> = cluster.map(0..10_000u64, |x| x * x)?;   // Pool.map, on threads
//! let a = cluster.delayed(|| 2);                          // a lazy task graph
//! let b = a.clone().map(|x| x * 10);
//! let c = a.zip(b).map(|(a, b)| a + b);
//! assert_eq!(c.compute()?, 22);
//! assert_eq!(squares[3], 9);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! Modules, one concept each: [`hardware`] (what the machine has), [`cluster`] (sizing and
//! the pools), [`graph`] (tasks, `Delayed`, handles, the scheduler), [`map`] (Pool-style map),
//! [`bag`] (partitioned lists, like `dask.bag`), [`array`](mod@array) (chunked arrays, like `dask.array`),
//! `frame` (partitioned polars dataframes, like `dask.dataframe`; feature `frame`), [`train`]
//! (data-parallel training), [`gpu`] (GPU workers, kernels, cuBLAS), [`diagnostics`] (the event
//! stream, progress bars, the performance report and the live dashboard), [`error`].
//!
//! Job batches of shell commands (Saturn Run's `run.yaml` and `tasks.yaml`, locally, on Slurm
//! or on Dask) and the `onebox` command live in the companion crate `onebox-run`, which runs
//! its local tasks on a [`Cluster`] of this crate.

#![warn(missing_docs)]

pub mod array;
pub mod bag;
pub mod cluster;
pub mod diagnostics;
pub mod error;
#[cfg(feature = "frame")]
pub mod frame;
pub mod gpu;
pub mod graph;
pub mod hardware;
pub mod map;
pub mod train;

pub use array::Array;
pub use bag::{Bag, TextOptions};
pub use cluster::{Cluster, ClusterBuilder, Plan, Settings};
pub use diagnostics::{Dashboard, PerformanceReport};
pub use error::{BoxError, Error, Result, TaskError, TaskFailure};
#[cfg(feature = "frame")]
pub use frame::Frame;
pub use graph::{
    AsCompleted, Delayed, TaskContext, TaskHandle, TaskKey, Worker, as_completed, gather, wait,
};
pub use hardware::{GpuInfo, GpuSource, Hardware};

/// The names most programs need: `use onebox::prelude::*;`.
pub mod prelude {
    pub use crate::{Bag, Cluster, Delayed, Error, Result, TaskHandle, as_completed, gather, wait};
}
