//! The local stack: the whole pipeline on one machine, without an AWS account.
//!
//! - [`bootstrap`]: tables, stream, queues and DLQs, as production names them;
//! - [`moto`]: the SDK configuration for the moto server, and the wait for it;
//! - [`simulator`]: a processing job writing the metrics table;
//! - [`canary`]: the end-to-end canary, run every few seconds against the gateway;
//! - [`page`]: the live dashboard page (`static/`);
//! - [`stack`]: all of it wired to the emulator (`apigw`) and the pollers
//!   (`event-sources`), for `make dev`, the end-to-end tests and the benchmark.

pub mod bootstrap;
pub mod canary;
pub mod moto;
pub mod page;
pub mod simulator;
pub mod stack;

pub use stack::{Stack, StackConfig};
