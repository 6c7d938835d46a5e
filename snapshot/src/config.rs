//! The `message` function's environment: the registry's, and what snapshots need.

use std::time::Duration;

use platform::env::{ConfigError, Env, process_env};
use registry::RegistryConfig;

/// `SNAPSHOT_CACHE_MS`'s default: a reconnect storm costs each function instance one read of
/// the entities a second.
pub const DEFAULT_CACHE_MS: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageConfig {
    pub registry: RegistryConfig,
    /// `None` without `STATE_TABLE_NAME`: a `snapshot` action gets ERROR.
    pub snapshots: Option<SnapshotConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// `STATE_TABLE_NAME`: the broadcast state table, whose `entity` items are the source.
    pub state_table: String,
    /// `WEBSOCKET_API_ENDPOINT`, required with a state table: where the parts are posted.
    pub endpoint: String,
    /// `SNAPSHOT_CACHE_MS` (0..=60000, default 1000): how old a read of the entities a
    /// snapshot may be served from.
    pub cache: Duration,
}

impl MessageConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&process_env())
    }

    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let registry = RegistryConfig::read(env)?;
        let cache_ms = env.number_or("SNAPSHOT_CACHE_MS", DEFAULT_CACHE_MS, 0..=60_000)?;
        let Some(state_table) = env.optional("STATE_TABLE_NAME") else {
            return Ok(Self {
                registry,
                snapshots: None,
            });
        };
        let endpoint = fanout::config::management_endpoint(
            env,
            "the management endpoint snapshots are posted to, https://{api-id}.execute-api.{region}.amazonaws.com/{stage}",
        )?;
        Ok(Self {
            registry,
            snapshots: Some(SnapshotConfig {
                state_table,
                endpoint,
                cache: Duration::from_millis(cache_ms),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::env::pairs_env;

    fn config(pairs: &[(&str, &str)]) -> Result<MessageConfig, ConfigError> {
        MessageConfig::read(&pairs_env(pairs))
    }

    const BASE: [(&str, &str); 3] = [
        ("CONNECTIONS_TABLE_NAME", "conns"),
        ("STATE_TABLE_NAME", "state"),
        (
            "WEBSOCKET_API_ENDPOINT",
            "https://abc123.execute-api.us-east-1.amazonaws.com/prod/",
        ),
    ];

    #[test]
    fn snapshots_need_the_state_table_and_the_endpoint() {
        let c = config(&BASE).unwrap();
        assert_eq!(
            c.snapshots,
            Some(SnapshotConfig {
                state_table: "state".into(),
                endpoint: "https://abc123.execute-api.us-east-1.amazonaws.com/prod".into(),
                cache: Duration::from_millis(1000),
            })
        );
        assert_eq!(c.registry, RegistryConfig::for_table("conns"));
        let mut pairs = BASE.to_vec();
        pairs.push(("SNAPSHOT_CACHE_MS", "0"));
        assert_eq!(
            config(&pairs).unwrap().snapshots.unwrap().cache,
            Duration::ZERO
        );
    }

    #[test]
    fn without_a_state_table_there_are_no_snapshots() {
        let c = config(&BASE[..1]).unwrap();
        assert_eq!(c.snapshots, None);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = config(&BASE[..2]).unwrap_err();
        assert!(err.to_string().contains("WEBSOCKET_API_ENDPOINT"), "{err}");
        let mut pairs = BASE.to_vec();
        pairs[2] = ("WEBSOCKET_API_ENDPOINT", "wss://abc/prod");
        assert!(config(&pairs).unwrap_err().to_string().contains("https://"));
        let mut pairs = BASE.to_vec();
        pairs.push(("SNAPSHOT_CACHE_MS", "61000"));
        let err = config(&pairs).unwrap_err().to_string();
        assert!(err.contains("SNAPSHOT_CACHE_MS"), "{err}");
        let err = config(&BASE[1..]).unwrap_err().to_string();
        assert!(err.contains("CONNECTIONS_TABLE_NAME"), "{err}");
    }
}
