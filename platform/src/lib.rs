//! What every function shares, and nothing about the fan-out itself.
//!
//! - [`clock`]: wall-clock time in the units the tables store;
//! - [`env`]: configuration from the environment, with errors that name the variable;
//! - [`telemetry`]: JSON logs (Lambda's logging controls honoured) and CloudWatch EMF metrics;
//! - [`aws`]: the one way SDK clients are configured;
//! - [`function`]: what every Lambda bin does before its first event;
//! - [`backoff`]: capped exponential backoff with full jitter;
//! - [`pack`]: the greedy packer that fills size-limited batches (messages, jobs, SQS batches);
//! - [`hash`]: a hash that is stable across builds (stored bucket keys, broadcast ids).

pub mod aws;
pub mod backoff;
pub mod clock;
pub mod env;
pub mod function;
pub mod hash;
pub mod pack;
#[cfg(feature = "properties")]
pub mod properties;
pub mod telemetry;

pub use backoff::Backoff;
pub use env::{ConfigError, Env};
