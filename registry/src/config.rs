//! The connections table's settings, read from the environment by every function.

use platform::env::{ConfigError, Env, process_env};

use crate::bucket::Buckets;

/// The GSI over `connected` / `connectedAt`; the seed did not name it.
pub const DEFAULT_INDEX_NAME: &str = "connected-connectedAt-index";
/// The seed's 24 hours.
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;

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
    /// `CONNECTION_TTL_SECONDS`, 60..=604800, default 86400.
    pub ttl_seconds: u64,
}

impl RegistryConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(&process_env())
    }

    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
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
        })
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
    }

    #[test]
    fn every_variable_is_read() {
        let config = RegistryConfig::read(&env(&[
            ("CONNECTIONS_TABLE_NAME", " t "),
            ("CONNECTIONS_INDEX_NAME", "idx"),
            ("CONNECTION_BUCKETS", "8"),
            ("CONNECTION_TTL_SECONDS", "3600"),
        ]))
        .unwrap();
        assert_eq!(config.table_name, "t");
        assert_eq!(config.index_name, "idx");
        assert_eq!(config.buckets.count(), 8);
        assert_eq!(config.ttl_seconds, 3600);
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
