//! Fan-out: the SQS-triggered Lambda that posts each broadcast to the connections of a shard.
//!
//! - [`job`]: the `FanoutJob` wire type between the processor and this function;
//! - [`policy`]: retry with exponential backoff and full jitter, and requeue delays;
//! - [`post`]: the port to the API Gateway Management API and how its answers are classified;
//! - [`management`]: the aws-sdk-apigatewaymanagement adapter;
//! - [`queue`]: the SQS adapter (requeues here, shard batches for the processor);
//! - [`deliver`]: one invocation's deliveries, pure over the port;
//! - [`handler`]: `SqsEvent` -> `SqsBatchResponse`, with clean-up, requeues and metrics;
//! - [`config`]: the environment.

pub mod config;
pub mod deliver;
pub mod handler;
pub mod job;
pub mod management;
pub mod policy;
pub mod post;
pub mod queue;

pub use config::FanoutConfig;
pub use handler::{Fanout, InvocationReport};
pub use job::{FanoutJob, JobError};
pub use post::{Connections, PostOutcome};
