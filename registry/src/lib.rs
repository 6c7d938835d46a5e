//! The WebSocket connection registry.
//!
//! One row per open API Gateway WebSocket connection in the connections table (the seed's schema,
//! see DESIGN.md), written by `$connect`, removed by `$disconnect` or by fan-out on 410 Gone, and
//! read back page by page through the `connected` / `connectedAt` GSI by the processor.
//!
//! - [`config`]: environment configuration shared by every function;
//! - [`bucket`]: write sharding of the GSI partition key;
//! - [`connection`]: the item model;
//! - [`store`]: the DynamoDB adapter;
//! - [`client_message`]: what clients may send on `$default`, and the replies;
//! - [`handlers`]: the three route handlers;
//! - [`telemetry`]: JSON logs and CloudWatch Embedded Metric Format for every function;
//! - [`runtime`]: the glue the thin Lambda binaries use.

pub mod bucket;
pub mod client_message;
pub mod clock;
pub mod config;
pub mod connection;
pub mod handlers;
pub mod runtime;
pub mod schema;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use bucket::Buckets;
pub use config::{ConfigError, Env, RegistryConfig};
pub use connection::Connection;
pub use store::{Page, Registry, RegistryError};
