//! Snapshots on open: a connection that sends `{"action":"snapshot"}` receives the current
//! state of every entity its interest matches (its filter within its token's entity types), in
//! SNAPSHOT parts of at most 128 KB. Also the `message` Lambda (the `$default` route), which
//! answers client messages with the registry's handlers and sends snapshots with this crate.
//!
//! - [`entry`]: the state table's entity changes as snapshot items, and which match (pure);
//! - [`message`]: the SNAPSHOT parts (pure);
//! - [`cache`]: the source, read at most once per `SNAPSHOT_CACHE_MS` and once at a time;
//! - [`service`]: [`registry::handlers::Snapshots`] over the cache and fanout's `Poster`;
//! - [`config`]: the `message` function's environment.
//!
//! The source is the broadcast state table's `entity` items, each entity's latest change,
//! which the processor writes before it broadcasts the change (in both broadcast modes): a
//! snapshot asked for after an update arrived holds that update or a newer one, unless it is
//! served from a read up to `SNAPSHOT_CACHE_MS` old.

pub mod cache;
pub mod config;
pub mod entry;
pub mod message;
pub mod service;

pub use cache::EntitySource;
pub use config::{MessageConfig, SnapshotConfig};
pub use service::SnapshotService;

use fanout::management::ManagementApi;
use rounds::RoundStore;

/// The service as functions build it: the state table's entities, posted through the
/// management API.
pub type StateSnapshots = SnapshotService<ManagementApi, RoundStore>;

/// [`StateSnapshots`] of `config`, with the clients given.
pub fn state_snapshots(
    sdk: &aws_config::SdkConfig,
    dynamo: &aws_sdk_dynamodb::Client,
    config: &SnapshotConfig,
) -> StateSnapshots {
    SnapshotService::new(
        ManagementApi::new(sdk, &config.endpoint),
        RoundStore::new(dynamo.clone(), &config.state_table),
        config.cache,
    )
}
