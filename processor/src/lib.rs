//! The stream processor: metrics-table changes become broadcasts, per batch or in conflated
//! rounds.
//!
//! - [`update`]: stream records to the seed's update objects (plain JSON data);
//! - [`message`]: updates to METRICS_UPDATE parts of at most 128 KB, and the broadcast id;
//! - [`shard`]: registry pages to shards to `FanoutJob`s within the queue's size limit;
//! - [`broadcast`]: the pipeline that pages the registry and sends the jobs;
//! - [`conflation`]: rounds mode: changes recorded as pending, rounds started when none is in
//!   flight;
//! - [`trigger`]: what woke the function (a stream batch, ticks, the schedule);
//! - [`handler`]: the event in, the report out;
//! - [`config`]: the environment.

pub mod broadcast;
pub mod config;
pub mod conflation;
pub mod editions;
pub mod handler;
pub mod message;
pub mod shard;
pub mod trigger;
pub mod update;

pub use config::ProcessorConfig;
pub use handler::{Processor, ProcessorError, ProcessorReport};
