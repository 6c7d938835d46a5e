//! Configuration from the environment, with errors that name the variable and say what is wrong.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {name} is not set: {hint}")]
    Missing {
        name: &'static str,
        hint: &'static str,
    },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// A view of environment variables; tests pass a map instead of the process environment.
pub struct Env<F>(F);

/// The process environment.
pub fn process_env() -> Env<impl Fn(&str) -> Option<String>> {
    Env(|name: &str| std::env::var(name).ok())
}

/// A fixed set of variables (tests, tools).
pub fn pairs_env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String> + use<>> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Env(move |name: &str| map.get(name).cloned())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Self(lookup)
    }

    /// The value, with surrounding whitespace removed; an empty value counts as unset.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.optional(name)
            .ok_or(ConfigError::Missing { name, hint })
    }

    /// A parsed value within `range`, or `default` when unset.
    pub fn number_or<T>(
        &self,
        name: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let Some(value) = self.optional(name) else {
            return Ok(default);
        };
        let invalid = |reason: String| ConfigError::Invalid {
            name,
            value: value.clone(),
            reason,
        };
        let parsed: T = value.parse().map_err(|e: T::Err| invalid(e.to_string()))?;
        if range.contains(&parsed) {
            Ok(parsed)
        } else {
            Err(invalid(format!(
                "must be between {} and {}",
                range.start(),
                range.end()
            )))
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.optional(name).unwrap_or_else(|| default.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_values_count_as_unset_and_values_are_trimmed() {
        let env = pairs_env(&[("A", "  "), ("B", " x ")]);
        assert!(matches!(
            env.required("A", "hint"),
            Err(ConfigError::Missing { name: "A", .. })
        ));
        assert_eq!(env.required("B", "hint").unwrap(), "x");
        assert_eq!(env.string_or("A", "d"), "d");
    }

    #[test]
    fn numbers_are_range_checked_with_a_reason() {
        let env = pairs_env(&[("N", "12"), ("BAD", "twelve"), ("BIG", "99")]);
        assert_eq!(env.number_or("N", 1, 1..=20), Ok(12));
        assert_eq!(env.number_or("UNSET", 7, 1..=20), Ok(7));
        let err = env.number_or("BAD", 1u32, 1..=20).unwrap_err().to_string();
        assert!(
            err.contains("BAD=\"twelve\"") && err.contains("invalid digit"),
            "{err}"
        );
        let err = env.number_or("BIG", 1u32, 1..=20).unwrap_err().to_string();
        assert!(err.contains("between 1 and 20"), "{err}");
    }
}
