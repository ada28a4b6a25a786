//! Diagnostics read the cluster's event stream; they never touch the scheduler's hot path.
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

mod events;

pub(crate) use events::EventBus;
pub use events::{Event, TaskEvent, TaskOutcome};
