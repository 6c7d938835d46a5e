//! Fanout jobs: what the processor hands the fanout function, and the queue between them.
//!
//! - [`job`]: the versioned `FanoutJob` message body;
//! - [`queue`]: the SQS adapter (packed batches for the processor, delayed requeues for fanout);
//! - [`settings`]: the queue's URL and message size, read once for both functions.

pub mod job;
pub mod queue;
pub mod settings;

pub use job::{FanoutJob, JobError, RoundRef};
pub use queue::{JobQueue, QueueError};
pub use settings::QueueSettings;
