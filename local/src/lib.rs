//! The local stack: everything needed to run and test the fan-out without an AWS account.
//!
//! - [`gateway`]: the API Gateway WebSocket API emulator (sockets, route events, `@connections`);
//! - [`bootstrap`]: tables, stream, queues and DLQs, as production names them;
//! - [`pollers`]: the event source mappings (Streams -> processor, SQS -> fanout);
//! - [`simulator`]: a processing job writing the metrics table;
//! - [`page`]: the live dashboard page;
//! - [`stack`]: all of it wired together, for `make dev` and the end-to-end tests;
//! - [`bench`]: the fan-out benchmark (`make bench`), ours against the seed's design.

pub mod bench;
pub mod bootstrap;
pub mod gateway;
pub mod page;
pub mod pollers;
pub mod simulator;
pub mod stack;
