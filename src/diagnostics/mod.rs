//! Diagnostics: what people see of a running cluster, all read from its event stream.
//!
//! Four things people can look at, all built on that stream:
//!
//! - [`progress`]: bars on the terminal for a `compute()` that runs longer than a second;
//! - [`report`]: a self-contained HTML performance report of a stretch of work
//!   ([`Cluster::performance_report`](crate::Cluster::performance_report));
//! - [`dashboard`]: a live web page and its `/api/status` JSON, off by default;
//! - [`aggregate`]: the figures all three draw, from events (usable on its own).
//!
//! None of them runs on the scheduler's threads: each has a thread of its own that collects
//! the events every few milliseconds from per-thread buffers, so a task pays for two readings
//! of the processor's time-stamp counter and one compact record pushed onto its thread's
//! buffer when it ends (its submission is counted with others of its label), and never waits
//! for a reader; see "Diagnostics cost" in `BENCHMARKS.md`. With all of them off, the cost is
//! one relaxed atomic load when a task is submitted and two when it runs.
//!
//! Memory is the one figure not read from events: the collector samples, every 100 ms, the
//! process's resident memory (RSS) and the cluster's **managed bytes**
//! ([`Cluster::managed_bytes`](crate::Cluster::managed_bytes)), like Dask's managed memory.
//! Managed bytes are the finished task outputs the scheduler holds until their consumers take
//! them, counted for the outputs whose size their maker knows: array blocks (elements times
//! the element's size), bag partitions (items times the item's size: a shallow size, what an
//! item owns on the heap is not followed) and frame partitions (polars' estimate). Outputs of
//! plain `delayed` tasks carry no size and are not counted. The gap between the two lines is
//! everything else: inputs being read, tasks' working memory, unsized outputs, and memory
//! freed but not yet returned to the system. Keeping the count costs a sized task one atomic
//! add when its output is stored and one subtract when it is released, and an unsized task
//! one branch, whether diagnostics are on or off.
//!
//! Every task start and end goes to one [`Event`] stream per cluster. With no subscriber the
//! cost is a few relaxed atomic loads per task (no clock read, no allocation); subscribe with
//! [`Cluster::events`](crate::Cluster::events) to receive every event from then on.
//!
//! ```
//! use onebox::prelude::*;
//! use onebox::diagnostics::Event;
//! let cluster = Cluster::builder().threads(2).build()?;
//! let events = cluster.events();
//! cluster.delayed(|| 1).label("one").compute()?;
//! let finished = events.try_iter().filter(|e| matches!(e, Event::Task(_))).count();
//! assert_eq!(finished, 1);
//! # Ok::<(), onebox::Error>(())
//! ```

pub mod aggregate;
mod clock;
mod collector;
pub mod dashboard;
mod events;
pub mod progress;
pub mod report;

pub use aggregate::Aggregate;
pub use dashboard::Dashboard;
pub(crate) use events::{Batched, EventBus, Ran, Record, SubmitTally};
pub use events::{Event, TaskEvent, TaskOutcome};
pub use report::PerformanceReport;
