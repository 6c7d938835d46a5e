//! Conflated broadcast rounds (`BROADCAST_MODE=rounds`).
//!
//! Metrics are state: a dashboard needs each entity's latest value, not every intermediate
//! one. So changes are not broadcast as they arrive; they are merged per entity into a pending
//! set, and at most one *round* per stage broadcasts that set at a time. While a round is in
//! flight newer changes replace older pending ones; when it completes the next round takes
//! whatever is pending. Staleness is then bounded by about two rounds, whatever the write rate.
//!
//! - [`change`]: a change of one entity and the merge (the latest by stream order wins);
//! - [`coordinator`]: ending a round and waking the processor, and what an ended round reports;
//! - [`round`]: the in-flight round's state, its lease and its completion rule;
//! - [`store`]: the DynamoDB adapter for all of it (the state table);
//! - [`tick`]: the SQS messages that wake the processor when a round ends or its lease runs out;
//! - [`settings`]: `BROADCAST_MODE`, `STATE_TABLE_NAME`, `TICK_QUEUE_URL`, the lease.
//!
//! The state lives in DynamoDB, not in a function's memory: it holds with several stream
//! shards, concurrent processor invocations and fanout retries.

pub mod change;
pub mod coordinator;
pub mod round;
pub mod settings;
pub mod store;
pub mod tick;

pub use change::{Change, latest};
pub use coordinator::{Coordinator, Ended, RoundError};
pub use round::RoundState;
pub use settings::{BroadcastMode, RoundSettings};
pub use store::{RoundStore, Start, StoreError};
pub use tick::{Tick, Ticks};
