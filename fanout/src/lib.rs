//! Fan-out: the SQS-triggered Lambda that posts each broadcast to the connections of a shard.
//!
//! - [`policy`]: when to try a post again, and requeue delays;
//! - [`post`]: the [`Poster`] port to the API Gateway Management API and how its answers are
//!   classified;
//! - [`management`]: the aws-sdk-apigatewaymanagement adapter;
//! - [`budget`]: the posting budget every invocation shares, and the [`Poster`] that paces by
//!   it;
//! - [`deliver`]: one invocation's deliveries, pure over the port;
//! - [`handler`]: `SqsEvent` -> `SqsBatchResponse`, with clean-up, requeues, round accounting
//!   and metrics;
//! - [`config`]: the environment.
//!
//! The jobs themselves, and the queue they travel on, are the `jobs` crate's.

pub mod budget;
pub mod config;
pub mod deliver;
pub mod handler;
pub mod management;
pub mod policy;
pub mod post;

pub use config::FanoutConfig;
pub use handler::{Fanout, InvocationReport};
pub use post::{PostOutcome, Poster};
