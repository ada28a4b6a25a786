//! Diagnostics read the cluster's event stream; they never touch the scheduler's hot path.
//!
//! Four things people can look at, all built on that stream:
//!
//! - [`progress`]: bars on the terminal for a `compute()` that runs longer than a second;
//! - [`report`]: a self-contained HTML performance report of a stretch of work
//!   ([`Cluster::performance_report`](crate::Cluster::performance_report));
//! - [`dashboard`]: a live web page and its `/api/status` JSON, off by default;
//! - [`aggregate`]: the figures all three draw, from events (usable on its own).
//!
//! Every task start and end goes to one [`Event`] stream per cluster. With no subscriber the
//! cost is one relaxed atomic load per task (no clock read, no allocation); subscribe with
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
mod collector;
pub mod dashboard;
mod events;
pub mod progress;
pub mod report;

pub use aggregate::Aggregate;
pub use dashboard::Dashboard;
pub(crate) use events::EventBus;
pub use events::{Event, TaskEvent, TaskOutcome};
pub use report::PerformanceReport;
