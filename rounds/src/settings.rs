//! How changes become broadcasts, read once from the environment.

use std::time::Duration;

use platform::env::{ConfigError, Env};

/// `POST_BUDGET_PER_SECOND`'s default: 90% of API Gateway's default account throttle of
/// 10,000 posts/s, leaving room for pings and the account's other APIs.
pub const DEFAULT_POST_BUDGET: u32 = 9_000;

/// `BROADCAST_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastMode {
    /// Changes merge per entity; one round in flight per stage (the default).
    Rounds,
    /// Every stream batch is broadcast as it comes (the first design; kept for comparison).
    Batch,
}

/// What rounds need beyond the broadcast itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundSettings {
    /// `STATE_TABLE_NAME`: pending changes, the round in flight, the posting budget.
    pub table_name: String,
    /// `TICK_QUEUE_URL`: where a round's end and its lease's end wake the processor.
    pub tick_queue_url: String,
    /// `ROUND_LEASE_SECONDS` (default 60): the lease of a round before its posting time.
    pub lease: Duration,
    /// `POST_BUDGET_PER_SECOND`: the posting budget the lease is sized from.
    pub budget_per_second: u32,
}

impl BroadcastMode {
    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        match env.string_or("BROADCAST_MODE", "rounds").as_str() {
            "rounds" => Ok(Self::Rounds),
            "batch" => Ok(Self::Batch),
            other => Err(ConfigError::Invalid {
                name: "BROADCAST_MODE",
                value: other.to_owned(),
                reason: "must be `rounds` or `batch`".into(),
            }),
        }
    }
}

/// `POST_BUDGET_PER_SECOND` (default 9,000; 0 turns pacing off).
pub fn post_budget<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<u32, ConfigError> {
    env.number_or("POST_BUDGET_PER_SECOND", DEFAULT_POST_BUDGET, 0..=1_000_000)
}

impl RoundSettings {
    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: state_table(env)?,
            tick_queue_url: env.required(
                "TICK_QUEUE_URL",
                "the queue whose messages wake the processor to start the next round",
            )?,
            lease: round_lease(env)?,
            budget_per_second: post_budget(env)?,
        })
    }
}

/// `ROUND_LEASE_SECONDS` (default 60, 1..=3600).
pub fn round_lease<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(env.number_or(
        "ROUND_LEASE_SECONDS",
        60,
        1..=3_600,
    )?))
}

/// `STATE_TABLE_NAME`.
pub fn state_table<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<String, ConfigError> {
    env.required(
        "STATE_TABLE_NAME",
        "the broadcast state table (pending changes, the round in flight, the posting budget)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::env::pairs_env;

    #[test]
    fn rounds_is_the_default_and_needs_its_table_and_queue() {
        assert_eq!(
            BroadcastMode::read(&pairs_env(&[])).unwrap(),
            BroadcastMode::Rounds
        );
        let err = RoundSettings::read(&pairs_env(&[("TICK_QUEUE_URL", "http://q")])).unwrap_err();
        assert!(err.to_string().contains("STATE_TABLE_NAME"), "{err}");
        let settings = RoundSettings::read(&pairs_env(&[
            ("TICK_QUEUE_URL", "http://q"),
            ("STATE_TABLE_NAME", "state"),
        ]))
        .unwrap();
        assert_eq!(settings.lease, Duration::from_secs(60));
        assert_eq!(settings.budget_per_second, 9_000);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let err = BroadcastMode::read(&pairs_env(&[("BROADCAST_MODE", "fast")])).unwrap_err();
        assert!(err.to_string().contains("BROADCAST_MODE"), "{err}");
        let err = post_budget(&pairs_env(&[("POST_BUDGET_PER_SECOND", "-1")])).unwrap_err();
        assert!(err.to_string().contains("POST_BUDGET_PER_SECOND"), "{err}");
    }
}
