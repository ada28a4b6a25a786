//! Task graphs: the one scheduler every onebox API hands its work to.
//!
//! A **task** is a closure plus the tasks whose outputs it consumes. Tasks form a directed
//! acyclic graph; the scheduler runs a task as soon as its last input is done (dependency
//! counting, no level-by-level barriers), on the cluster's work-stealing CPU pool or on a GPU
//! worker. Every task has a [`TaskKey`]: a unique id plus the user's label, so that errors,
//! progress bars and reports can name it.
//!
//! Two handles reach the same graph:
//!
//! - [`Delayed<T>`] is **lazy**, like `dask.delayed`: building one runs nothing; `compute()`
//!   submits the task and every not-yet-started task it depends on, then waits for its value.
//! - [`TaskHandle<T>`] is **eager**, like a Dask future: `Cluster::submit` starts the task now;
//!   [`gather`], [`as_completed`] and [`wait`] collect results; a handle can feed more tasks.
//!
//! ```
//! use onebox::prelude::*;
//! let cluster = Cluster::builder().threads(2).build()?;
//! let a = cluster.delayed(|| 20);
//! let b = cluster.delayed(|| 22);
//! let sum = a.zip(b).map(|(a, b)| a + b);
//! assert_eq!(sum.compute()?, 42);
//! # Ok::<(), onebox::Error>(())
//! ```
//!
//! ## What a task's output costs
//!
//! An output is computed once, however many tasks consume it. It is *moved* into its consumer
//! when nothing else can see it any more (the common chain `a.map(f).map(g)` copies nothing), and
//! cloned only while someone else (another consumer, or a handle the user still holds) can still
//! ask for it. That is why outputs are `Clone`: cheap types (`Arc`, polars frames) or values that
//! are rarely shared.
//!
//! While the scheduler holds an output whose size is known (collections give their partitions
//! and blocks one), its bytes count in the cluster's
//! [managed bytes](crate::Cluster::managed_bytes), from when the task stores it until a
//! consumer takes it or the last handle to the task is dropped.
//!
//! ## Failures
//!
//! A task that panics or returns an error becomes a [`TaskError`](crate::TaskError) naming it;
//! it is retried first if it asked for [`retries`](Delayed::retries). Its dependents do not run:
//! they fail at once with [`TaskFailure::InputFailed`](crate::TaskFailure::InputFailed). Panics
//! are caught at the task boundary, so the pool keeps working for the next compute.

mod delayed;
mod futures;
mod key;
pub(crate) mod node;

pub use delayed::Delayed;
pub(crate) use delayed::user_error;
pub use futures::{AsCompleted, TaskHandle, as_completed, gather, wait};
pub use key::TaskKey;
pub use node::{TaskContext, Worker};

pub(crate) use node::{Placement, lock as lock_unpoisoned};
