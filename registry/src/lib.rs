//! The WebSocket connection registry.
//!
//! One row per open API Gateway WebSocket connection in the connections table (the seed's schema,
//! see DESIGN.md), written by `$connect`, removed by `$disconnect` or by fan-out on 410 Gone, and
//! read back page by page through the `connected` / `connectedAt` GSI by the processor.
//!
//! - [`config`]: the connections table's settings, shared by every function;
//! - [`bucket`]: write sharding of the GSI partition key;
//! - [`connection`]: the item model;
//! - [`identity`]: who the `$connect` authorizer said a connection is;
//! - [`store`]: the DynamoDB adapter;
//! - [`filter`]: what a connection receives: its subscription filter within its token's types;
//! - [`client_message`]: what clients may send on `$default`, and the replies;
//! - [`handlers`]: the three route handlers;
//! - [`sampler`]: log sampling for what clients control;
//! - [`runtime`]: the glue the `connect` and `disconnect` binaries share (`message`, which also
//!   sends snapshots, is the `snapshot` crate's).

pub mod bucket;
pub mod client_message;
pub mod config;
pub mod connection;
pub mod filter;
pub mod handlers;
pub mod identity;
pub mod runtime;
pub mod sampler;
pub mod store;

pub use bucket::Buckets;
pub use config::RegistryConfig;
pub use connection::Connection;
pub use filter::{EntityRef, Filter, FilterError, Interest};
pub use store::{Page, Registry, RegistryError, Touch};
