//! The processor's environment.

use fanout::job::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;
use registry::RegistryConfig;
use registry::config::{ConfigError, Env, process_env};

use crate::broadcast::Pipeline;
use crate::message::MAX_MESSAGE_BYTES;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorConfig {
    pub registry: RegistryConfig,
    /// `FANOUT_QUEUE_URL`.
    pub queue_url: String,
    /// `QUEUE_MAX_MESSAGE_BYTES`: the queue's MaximumMessageSize (1 MiB; 256 KiB on old queues).
    pub queue_max_message_bytes: usize,
    /// `MAX_MESSAGE_BYTES`: the largest METRICS_UPDATE part, at most API Gateway's 128 KB.
    pub max_message_bytes: usize,
    /// `FANOUT_SHARD_SIZE` (connections per job, default 1000), `QUERY_PAGE_SIZE` (optional)
    /// and `SEND_CONCURRENCY` (default 4).
    pub pipeline: Pipeline,
}

impl ProcessorConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&process_env())
    }

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let page_size = env.number_or("QUERY_PAGE_SIZE", 0, 0..=10_000)?;
        let config = Self {
            registry: RegistryConfig::from(env)?,
            queue_url: env.required("FANOUT_QUEUE_URL", "the fanout queue's URL")?,
            queue_max_message_bytes: env.number_or(
                "QUEUE_MAX_MESSAGE_BYTES",
                DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
                1024..=DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
            )?,
            max_message_bytes: env.number_or(
                "MAX_MESSAGE_BYTES",
                MAX_MESSAGE_BYTES,
                1024..=MAX_MESSAGE_BYTES,
            )?,
            pipeline: Pipeline {
                shard_size: env.number_or("FANOUT_SHARD_SIZE", 1000, 1..=20_000)?,
                page_size: (page_size > 0).then_some(page_size),
                send_concurrency: env.number_or("SEND_CONCURRENCY", 4, 1..=64)?,
            },
        };
        if config.max_message_bytes + 1024 > config.queue_max_message_bytes {
            return Err(ConfigError::Invalid {
                name: "MAX_MESSAGE_BYTES",
                value: config.max_message_bytes.to_string(),
                reason: format!(
                    "a part must fit in a queue message of QUEUE_MAX_MESSAGE_BYTES={} with room for ids",
                    config.queue_max_message_bytes
                ),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::config::pairs_env;

    fn config(pairs: &[(&str, &str)]) -> Result<ProcessorConfig, ConfigError> {
        ProcessorConfig::from(&pairs_env(pairs))
    }

    const BASE: [(&str, &str); 2] = [
        ("CONNECTIONS_TABLE_NAME", "conns"),
        ("FANOUT_QUEUE_URL", "http://q"),
    ];

    #[test]
    fn defaults() {
        let c = config(&BASE).unwrap();
        assert_eq!(c.max_message_bytes, 131_072);
        assert_eq!(c.queue_max_message_bytes, 1_048_576);
        assert_eq!(
            c.pipeline,
            Pipeline {
                shard_size: 1000,
                page_size: None,
                send_concurrency: 4
            }
        );
        assert_eq!(c.registry.buckets.count(), 1);
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
