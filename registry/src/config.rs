//! The connections table's settings, read from the environment by every function.

use platform::env::{ConfigError, Env, process_env};

use crate::bucket::Buckets;

/// The GSI over `connected` / `connectedAt`; the seed did not name it.
pub const DEFAULT_INDEX_NAME: &str = "connected-connectedAt-index";
/// The seed's 24 hours.
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;
/// A ping refreshes its row's `ttl` at most this often: every ping is a `$default` invocation,
/// and at 1M dashboards pinging every minute, refreshing on each would be ~17k writes/s.
pub const DEFAULT_TOUCH_INTERVAL_SECONDS: u64 = 300;

/// What every function that touches the connections table needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `CONNECTIONS_TABLE_NAME` (seed name), required.
    pub table_name: String,
    /// `CONNECTIONS_INDEX_NAME`, default [`DEFAULT_INDEX_NAME`].
    pub index_name: String,
    /// `CONNECTION_BUCKETS`, 1..=1000, default 1 (the seed's single `"true"` partition).
    pub buckets: Buckets,
    /// `CONNECTION_BUCKETS_PREVIOUS`: while `CONNECTION_BUCKETS` changes, the old count, so
    /// that readers still find rows written under it (unset once those have expired: 2 h, API
    /// Gateway's longest connection).
    pub previous_buckets: Option<Buckets>,
    /// `CONNECTION_TTL_SECONDS`, 60..=604800, default 86400; more than `touch_interval_seconds`.
    pub ttl_seconds: u64,
    /// `CONNECTION_TOUCH_INTERVAL_SECONDS`, 0..=3600, default 300: a ping refreshes the row only
    /// when its `lastSeenAt` is older than this (0: on every ping).
    pub touch_interval_seconds: u64,
}

impl RegistryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&process_env())
    }

    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let config = Self {
            table_name: env.required(
                "CONNECTIONS_TABLE_NAME",
                "the DynamoDB connections table, e.g. iops-dashboard-websocket-connections",
            )?,
            index_name: env.string_or("CONNECTIONS_INDEX_NAME", DEFAULT_INDEX_NAME),
            buckets: Buckets::new(env.number_or("CONNECTION_BUCKETS", 1, 1..=Buckets::MAX)?)
                .expect("range checked above"),
            previous_buckets: match env.number_or(
                "CONNECTION_BUCKETS_PREVIOUS",
                0,
                0..=Buckets::MAX,
            )? {
                0 => None,
                n => Buckets::new(n),
            },
            ttl_seconds: env.number_or(
                "CONNECTION_TTL_SECONDS",
                DEFAULT_TTL_SECONDS,
                60..=7 * 86_400,
            )?,
            touch_interval_seconds: env.number_or(
                "CONNECTION_TOUCH_INTERVAL_SECONDS",
                DEFAULT_TOUCH_INTERVAL_SECONDS,
                0..=3600,
            )?,
        };
        config.check_ttl_outlives_touches()
    }

    /// A row's `ttl` is pushed out only once per touch interval, so a ttl not longer than the
    /// interval would let live connections' rows expire between refreshes.
    fn check_ttl_outlives_touches(self) -> Result<Self, ConfigError> {
        if self.ttl_seconds > self.touch_interval_seconds {
            return Ok(self);
        }
        Err(ConfigError::Invalid {
            name: "CONNECTION_TTL_SECONDS",
            value: self.ttl_seconds.to_string(),
            reason: format!(
                "must be more than CONNECTION_TOUCH_INTERVAL_SECONDS ({}): rows would expire \
                 between ttl refreshes",
                self.touch_interval_seconds
            ),
        })
    }

    /// Milliseconds of `touch_interval_seconds`.
    pub fn touch_interval_ms(&self) -> i64 {
        i64::try_from(self.touch_interval_seconds.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Every partition key live rows may be under: the current buckets', and during a change of
    /// `CONNECTION_BUCKETS` the previous ones' too (each key once).
    pub fn partition_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.buckets.partition_keys().collect();
        for key in self
            .previous_buckets
            .iter()
            .flat_map(|b| b.partition_keys())
        {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// The defaults for `table_name`, as local runs and tests use them.
    pub fn for_table(table_name: impl Into<String>) -> Self {
        Self {
            table_name: table_name.into(),
            index_name: DEFAULT_INDEX_NAME.to_owned(),
            buckets: Buckets::SEED,
            previous_buckets: None,
            ttl_seconds: DEFAULT_TTL_SECONDS,
            touch_interval_seconds: DEFAULT_TOUCH_INTERVAL_SECONDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::env::pairs_env;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        pairs_env(pairs)
    }

    #[test]
    fn defaults_follow_the_seed() {
        let config = RegistryConfig::read(&env(&[("CONNECTIONS_TABLE_NAME", "conns")])).unwrap();
        assert_eq!(config, RegistryConfig::for_table("conns"));
        assert_eq!(config.buckets.count(), 1);
        assert_eq!(config.ttl_seconds, 86_400);
        assert_eq!(config.touch_interval_seconds, 300);
        assert_eq!(config.touch_interval_ms(), 300_000);
    }

    #[test]
    fn every_variable_is_read() {
        let config = RegistryConfig::read(&env(&[
            ("CONNECTIONS_TABLE_NAME", " t "),
            ("CONNECTIONS_INDEX_NAME", "idx"),
            ("CONNECTION_BUCKETS", "8"),
            ("CONNECTION_TTL_SECONDS", "3600"),
            ("CONNECTION_TOUCH_INTERVAL_SECONDS", "600"),
        ]))
        .unwrap();
        assert_eq!(config.table_name, "t");
        assert_eq!(config.index_name, "idx");
        assert_eq!(config.buckets.count(), 8);
        assert_eq!(config.ttl_seconds, 3600);
        assert_eq!(config.touch_interval_seconds, 600);
    }

    #[test]
    fn the_touch_interval_is_range_checked_and_the_ttl_must_outlive_it() {
        let read = |ttl: &str, interval: &str| {
            RegistryConfig::read(&env(&[
                ("CONNECTIONS_TABLE_NAME", "t"),
                ("CONNECTION_TTL_SECONDS", ttl),
                ("CONNECTION_TOUCH_INTERVAL_SECONDS", interval),
            ]))
        };
        assert_eq!(read("60", "0").unwrap().touch_interval_seconds, 0);
        assert_eq!(read("301", "300").unwrap().ttl_seconds, 301);
        let err = read("86400", "3601").unwrap_err().to_string();
        assert!(
            err.contains("CONNECTION_TOUCH_INTERVAL_SECONDS") && err.contains("between 0 and 3600"),
            "{err}"
        );
        for (ttl, interval) in [("300", "300"), ("120", "300"), ("600", "3600")] {
            let err = read(ttl, interval).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Invalid {
                        name: "CONNECTION_TTL_SECONDS",
                        ..
                    }
                ),
                "ttl {ttl}, interval {interval}: {err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("CONNECTION_TOUCH_INTERVAL_SECONDS ({interval})")),
                "{err}"
            );
        }
        // The default interval applies when only the ttl is set.
        let err = RegistryConfig::read(&env(&[
            ("CONNECTIONS_TABLE_NAME", "t"),
            ("CONNECTION_TTL_SECONDS", "120"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("(300)"), "{err}");
    }

    #[test]
    fn a_bucket_change_reads_both_layouts_once() {
        let config = RegistryConfig::read(&env(&[
            ("CONNECTIONS_TABLE_NAME", "t"),
            ("CONNECTION_BUCKETS", "4"),
            ("CONNECTION_BUCKETS_PREVIOUS", "2"),
        ]))
        .unwrap();
        assert_eq!(
            config.partition_keys(),
            ["true#0", "true#1", "true#2", "true#3"]
        );
        let config = RegistryConfig::read(&env(&[
            ("CONNECTIONS_TABLE_NAME", "t"),
            ("CONNECTION_BUCKETS", "2"),
            ("CONNECTION_BUCKETS_PREVIOUS", "1"),
        ]))
        .unwrap();
        assert_eq!(config.partition_keys(), ["true#0", "true#1", "true"]);
        let seed = RegistryConfig::for_table("t");
        assert_eq!(seed.partition_keys(), ["true"]);
    }

    #[test]
    fn a_missing_table_names_the_variable() {
        let err = RegistryConfig::read(&env(&[("CONNECTIONS_TABLE_NAME", "  ")])).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Missing {
                name: "CONNECTIONS_TABLE_NAME",
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("CONNECTIONS_TABLE_NAME is not set")
        );
    }

    #[test]
    fn invalid_numbers_say_why() {
        for (value, reason) in [
            ("0", "between 1 and 1000"),
            ("eight", "invalid digit"),
            ("1001", "between 1 and 1000"),
        ] {
            let err = RegistryConfig::read(&env(&[
                ("CONNECTIONS_TABLE_NAME", "t"),
                ("CONNECTION_BUCKETS", value),
            ]))
            .unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains("CONNECTION_BUCKETS") && text.contains(reason),
                "{text}"
            );
        }
        let err = RegistryConfig::read(&env(&[
            ("CONNECTIONS_TABLE_NAME", "t"),
            ("CONNECTION_TTL_SECONDS", "-5"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("CONNECTION_TTL_SECONDS=\"-5\""));
    }
}
