//! The end-to-end canary: once a minute it connects to the stage as a dashboard does, writes a
//! heartbeat entity to the metrics table and times how long the heartbeat's own update takes
//! to come back over the WebSocket (stream -> processor -> queue -> fanout -> post). Every
//! stage of the pipeline lies on that path, so whichever one stops, the latency goes missing.
//!
//! - [`config`]: `CANARY_*`, the metrics table, and the `AUTH_*` its token needs;
//! - [`heartbeat`]: the item and how its update is recognised among all others (pure);
//! - [`report`]: one run's outcome, log line and EMF document (pure);
//! - [`probe`]: one run: token, handshake, write, wait.

pub mod config;
pub mod heartbeat;
pub mod probe;
pub mod report;

pub use config::{CanaryConfig, CanaryConfigError};
pub use heartbeat::Heartbeat;
pub use probe::Canary;
pub use report::{CanaryReport, Outcome};
