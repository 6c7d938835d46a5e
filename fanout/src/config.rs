//! The fanout function's environment.

use jobs::QueueSettings;
use platform::env::{ConfigError, Env, process_env};
use registry::RegistryConfig;

use crate::policy::RetryPolicy;

/// Posts in progress per invocation: at ~20 ms per post, 64 give ~3,000 posts/s per function,
/// a few functions reach the 10,000/s account throttle, and a 128 MB function copes.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// `WEBSOCKET_API_ENDPOINT`, the Management API endpoint posts go to (`hint` says what for when
/// it is missing), without a trailing `/`.
pub fn management_endpoint<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    hint: &'static str,
) -> Result<String, ConfigError> {
    let endpoint = env.required("WEBSOCKET_API_ENDPOINT", hint)?;
    if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
        return Err(ConfigError::Invalid {
            name: "WEBSOCKET_API_ENDPOINT",
            value: endpoint,
            reason: "must be an https:// URL ending in the stage".into(),
        });
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutConfig {
    pub registry: RegistryConfig,
    /// `WEBSOCKET_API_ENDPOINT`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
    pub endpoint: String,
    /// Where requeued jobs go (the queue this function reads).
    pub queue: QueueSettings,
    /// `FANOUT_CONCURRENCY`, 1..=1000.
    pub concurrency: usize,
    /// `FANOUT_MAX_ATTEMPTS` (1..=20) and the backoff defaults.
    pub policy: RetryPolicy,
    /// `POST_BUDGET_PER_SECOND` (default 9,000; 0 posts unpaced).
    pub budget_per_second: u32,
    /// `STATE_TABLE_NAME`: the budget's lanes and the rounds' counts; needed unless the
    /// budget is 0.
    pub state_table: Option<String>,
    /// `TICK_QUEUE_URL`: where the end of a round wakes the processor; without it, rounds end
    /// by their lease.
    pub tick_queue_url: Option<String>,
}

impl FanoutConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&process_env())
    }

    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let endpoint = management_endpoint(
            env,
            "the management endpoint, https://{api-id}.execute-api.{region}.amazonaws.com/{stage}",
        )?;
        let budget_per_second = rounds::settings::post_budget(env)?;
        let state_table = env.optional("STATE_TABLE_NAME");
        if budget_per_second > 0 && state_table.is_none() {
            rounds::settings::state_table(env)?;
        }
        Ok(Self {
            budget_per_second,
            state_table,
            tick_queue_url: env.optional("TICK_QUEUE_URL"),
            registry: RegistryConfig::read(env)?,
            endpoint,
            queue: QueueSettings::read(env)?,
            concurrency: env.number_or("FANOUT_CONCURRENCY", DEFAULT_CONCURRENCY, 1..=1000)?,
            policy: RetryPolicy {
                max_attempts: env.number_or("FANOUT_MAX_ATTEMPTS", 5, 1..=20)?,
                ..RetryPolicy::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::env::pairs_env;

    fn config(pairs: &[(&str, &str)]) -> Result<FanoutConfig, ConfigError> {
        FanoutConfig::read(&pairs_env(pairs))
    }

    const BASE: [(&str, &str); 4] = [
        (
            "WEBSOCKET_API_ENDPOINT",
            "https://abc123.execute-api.us-east-1.amazonaws.com/prod/",
        ),
        ("CONNECTIONS_TABLE_NAME", "conns"),
        (
            "FANOUT_QUEUE_URL",
            "https://sqs.us-east-1.amazonaws.com/1/fanout",
        ),
        ("STATE_TABLE_NAME", "state"),
    ];

    #[test]
    fn defaults_and_overrides() {
        let c = config(&BASE).unwrap();
        assert_eq!(
            c.endpoint,
            "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
        );
        assert_eq!((c.concurrency, c.policy.max_attempts), (64, 5));
        assert_eq!(c.budget_per_second, 9_000);
        assert_eq!(c.tick_queue_url, None);
        let mut pairs = BASE.to_vec();
        pairs.extend([("FANOUT_CONCURRENCY", "200"), ("FANOUT_MAX_ATTEMPTS", "3")]);
        let c = config(&pairs).unwrap();
        assert_eq!((c.concurrency, c.policy.max_attempts), (200, 3));
    }

    #[test]
    fn errors_name_the_variable() {
        for missing in [
            "WEBSOCKET_API_ENDPOINT",
            "CONNECTIONS_TABLE_NAME",
            "FANOUT_QUEUE_URL",
            "STATE_TABLE_NAME",
        ] {
            let pairs: Vec<_> = BASE
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = config(&pairs).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
        let mut unpaced: Vec<_> = BASE[..3].to_vec();
        unpaced.push(("POST_BUDGET_PER_SECOND", "0"));
        assert_eq!(config(&unpaced).unwrap().state_table, None);
        let mut pairs = BASE.to_vec();
        pairs[0] = ("WEBSOCKET_API_ENDPOINT", "wss://abc/prod");
        assert!(config(&pairs).unwrap_err().to_string().contains("https://"));
        let mut pairs = BASE.to_vec();
        pairs.push(("FANOUT_CONCURRENCY", "0"));
        assert!(
            config(&pairs)
                .unwrap_err()
                .to_string()
                .contains("FANOUT_CONCURRENCY")
        );
    }
}
