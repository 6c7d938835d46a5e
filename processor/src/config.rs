//! The processor's environment.

use jobs::QueueSettings;
use platform::env::{ConfigError, Env, process_env};
use registry::RegistryConfig;

use rounds::{BroadcastMode, RoundSettings};

use crate::broadcast::BroadcastSettings;
use crate::message::MAX_MESSAGE_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub registry: RegistryConfig,
    /// Where the jobs go.
    pub queue: QueueSettings,
    /// `MAX_MESSAGE_BYTES`: the largest METRICS_UPDATE part, at most API Gateway's 128 KB.
    pub max_message_bytes: usize,
    /// `FANOUT_SHARD_SIZE` (connections per job, default 1000), `QUERY_PAGE_SIZE` (optional)
    /// and `SEND_CONCURRENCY` (default 4).
    pub broadcast: BroadcastSettings,
    /// `BROADCAST_MODE=rounds` (the default): the rounds' table, tick queue, lease and budget.
    /// `None` with `BROADCAST_MODE=batch`: every stream batch is broadcast as it comes.
    pub rounds: Option<RoundSettings>,
    /// `STATE_TABLE_NAME` in batch mode, where it is optional: when set, each entity's latest
    /// change is kept there, the snapshots' source (rounds mode keeps it as it records).
    pub batch_state_table: Option<String>,
}

impl ProcessorConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&process_env())
    }

    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let page_size = env.number_or("QUERY_PAGE_SIZE", 0, 0..=10_000)?;
        let mode = BroadcastMode::read(env)?;
        let config = Self {
            registry: RegistryConfig::read(env)?,
            queue: QueueSettings::read(env)?,
            max_message_bytes: env.number_or(
                "MAX_MESSAGE_BYTES",
                MAX_MESSAGE_BYTES,
                1024..=MAX_MESSAGE_BYTES,
            )?,
            broadcast: BroadcastSettings {
                shard_size: env.number_or("FANOUT_SHARD_SIZE", 1000, 1..=20_000)?,
                page_size: (page_size > 0).then_some(page_size),
                send_concurrency: env.number_or("SEND_CONCURRENCY", 4, 1..=64)?,
            },
            rounds: match mode {
                BroadcastMode::Rounds => Some(RoundSettings::read(env)?),
                BroadcastMode::Batch => None,
            },
            batch_state_table: match mode {
                BroadcastMode::Rounds => None,
                BroadcastMode::Batch => env.optional("STATE_TABLE_NAME"),
            },
        };
        if config.max_message_bytes + 1024 > config.queue.max_message_bytes {
            return Err(ConfigError::Invalid {
                name: "MAX_MESSAGE_BYTES",
                value: config.max_message_bytes.to_string(),
                reason: format!(
                    "a part must fit in a queue message of QUEUE_MAX_MESSAGE_BYTES={} with room for ids",
                    config.queue.max_message_bytes
                ),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::env::pairs_env;

    fn config(pairs: &[(&str, &str)]) -> Result<ProcessorConfig, ConfigError> {
        ProcessorConfig::read(&pairs_env(pairs))
    }

    const BASE: [(&str, &str); 4] = [
        ("CONNECTIONS_TABLE_NAME", "conns"),
        ("FANOUT_QUEUE_URL", "http://q"),
        ("STATE_TABLE_NAME", "state"),
        ("TICK_QUEUE_URL", "http://ticks"),
    ];

    #[test]
    fn defaults() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.max_message_bytes, 131_072);
        assert_eq!(c.queue.max_message_bytes, 1_048_576);
        assert_eq!(
            c.broadcast,
            BroadcastSettings {
                shard_size: 1000,
                page_size: None,
                send_concurrency: 4
            }
        );
        assert_eq!(c.registry.buckets.count(), 1);
        assert_eq!(c.rounds.unwrap().table_name, "state");
    }

    #[test]
    fn batch_mode_needs_no_round_settings() {
        let c = config(&[
            ("CONNECTIONS_TABLE_NAME", "conns"),
            ("FANOUT_QUEUE_URL", "http://q"),
            ("BROADCAST_MODE", "batch"),
        ])
        .unwrap();
        assert_eq!(c.rounds, None);
        assert_eq!(c.batch_state_table, None);
        let c = config(&[
            ("CONNECTIONS_TABLE_NAME", "conns"),
            ("FANOUT_QUEUE_URL", "http://q"),
            ("BROADCAST_MODE", "batch"),
            ("STATE_TABLE_NAME", "state"),
        ])
        .unwrap();
        assert_eq!(
            c.batch_state_table.as_deref(),
            Some("state"),
            "entities kept"
        );
        assert_eq!(config(&BASE).unwrap().batch_state_table, None);
        let err = config(&BASE[..3]).unwrap_err();
        assert!(err.to_string().contains("TICK_QUEUE_URL"), "{err}");
    }

    #[test]
    fn errors_are_clear() {
        let err = config(&BASE[..1]).unwrap_err();
        assert!(err.to_string().contains("FANOUT_QUEUE_URL"));
        let mut pairs = BASE.to_vec();
        pairs.push(("MAX_MESSAGE_BYTES", "200000"));
        assert!(
            config(&pairs)
                .unwrap_err()
                .to_string()
                .contains("between 1024 and 131072")
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("QUEUE_MAX_MESSAGE_BYTES", "65536"));
        assert!(
            config(&pairs)
                .unwrap_err()
                .to_string()
                .contains("must fit in a queue message")
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("FANOUT_SHARD_SIZE", "lots"));
        assert!(
            config(&pairs)
                .unwrap_err()
                .to_string()
                .contains("FANOUT_SHARD_SIZE")
        );
    }
}
