//! The stream processor: a batch of metrics-table changes becomes one broadcast.
//!
//! - [`update`]: stream records to the seed's update objects (plain JSON data);
//! - [`message`]: updates to METRICS_UPDATE parts of at most 128 KB, and the broadcast id;
//! - [`shard`]: registry pages to shards to `FanoutJob`s within the queue's size limit;
//! - [`broadcast`]: the pipeline that pages the registry and sends the jobs;
//! - [`handler`]: the stream event in, the report out;
//! - [`config`]: the environment.

pub mod broadcast;
pub mod config;
pub mod handler;
pub mod message;
pub mod shard;
pub mod update;

pub use config::ProcessorConfig;
pub use handler::{Processor, ProcessorError, ProcessorReport};
