//! The management API's knobs as a person sets them while the stack runs: flat, in
//! milliseconds and rates, under the same names in the `LOCAL_*` environment of `make dev`
//! ([`FaultPatch::from_env`]) and in the JSON of `GET|PUT /_admin/faults`.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::GatewayConfig;
use super::faults::{Faults, Latency};
use super::throttle::Throttle;

/// Every knob, as `GET /_admin/faults` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FaultSettings {
    /// The account throttle on the management API, calls per second; 0 turns it off.
    pub post_rate: f64,
    /// The throttle's burst (bucket size); 0 with a rate takes half the rate, API Gateway's
    /// default ratio (10,000/s, burst 5,000).
    pub post_burst: u32,
    /// Latency added to every management API call, ms ...
    pub latency_ms: u64,
    /// ... plus a uniform 0..=jitter, ms.
    pub jitter_ms: u64,
    /// Rate (0..=1) of posts answered 429 LimitExceededException.
    pub fault_429: f64,
    /// Rate of posts answered 500 InternalServerErrorException.
    pub fault_5xx: f64,
    /// Rate of posts to a connected id answered 410 GoneException.
    pub fault_410: f64,
}

/// A change to some knobs: the body of `PUT /_admin/faults`, or the `LOCAL_*` environment.
/// Absent fields keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    pub post_rate: Option<f64>,
    pub post_burst: Option<u32>,
    pub latency_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    pub fault_429: Option<f64>,
    pub fault_5xx: Option<f64>,
    pub fault_410: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("{name}={value:?} is not {expected}")]
    Parse {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Invalid(&'static str),
}

impl FaultSettings {
    pub(crate) fn new(throttle: Option<Throttle>, latency: Latency, faults: Faults) -> Self {
        let (post_rate, post_burst) = throttle.map_or((0.0, 0), |t| (t.rate_per_sec, t.burst));
        Self {
            post_rate,
            post_burst,
            latency_ms: millis(latency.fixed),
            jitter_ms: millis(latency.jitter),
            fault_429: faults.throttle_rate,
            fault_5xx: faults.error_rate,
            fault_410: faults.gone_rate,
        }
    }

    /// The settings a gateway with `config` starts with.
    pub fn of(config: &GatewayConfig) -> Self {
        Self::new(config.throttle, config.latency, config.faults)
    }

    /// The throttle these settings ask for; `None` when `post_rate` is 0.
    pub fn throttle(&self) -> Option<Throttle> {
        if self.post_rate <= 0.0 {
            return None;
        }
        let burst = match self.post_burst {
            // Half the rate, rounded up; the cast saturates, and a burst is at least 1.
            0 => ((self.post_rate / 2.0).ceil() as u32).max(1),
            burst => burst,
        };
        Some(Throttle::new(self.post_rate, burst))
    }

    pub fn latency(&self) -> Latency {
        Latency::new(
            Duration::from_millis(self.latency_ms),
            Duration::from_millis(self.jitter_ms),
        )
    }

    pub fn faults(&self) -> Faults {
        Faults {
            gone_rate: self.fault_410,
            throttle_rate: self.fault_429,
            error_rate: self.fault_5xx,
        }
    }

    /// These settings with `patch`'s fields, if the result is valid.
    pub fn patched(self, patch: &FaultPatch) -> Result<Self, SettingsError> {
        let next = Self {
            post_rate: patch.post_rate.unwrap_or(self.post_rate),
            post_burst: patch.post_burst.unwrap_or(self.post_burst),
            latency_ms: patch.latency_ms.unwrap_or(self.latency_ms),
            jitter_ms: patch.jitter_ms.unwrap_or(self.jitter_ms),
            fault_429: patch.fault_429.unwrap_or(self.fault_429),
            fault_5xx: patch.fault_5xx.unwrap_or(self.fault_5xx),
            fault_410: patch.fault_410.unwrap_or(self.fault_410),
        };
        next.validate()?;
        Ok(next)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        if !(self.post_rate.is_finite() && self.post_rate >= 0.0) {
            return Err(SettingsError::Invalid(
                "post_rate must be a number >= 0 (0 turns the throttle off)",
            ));
        }
        if !self.faults().is_valid() {
            return Err(SettingsError::Invalid(
                "fault_429, fault_5xx and fault_410 must be within 0..=1",
            ));
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl FaultPatch {
    /// The knobs that `LOCAL_POST_RATE`, `LOCAL_POST_BURST`, `LOCAL_LATENCY_MS`,
    /// `LOCAL_JITTER_MS`, `LOCAL_FAULT_429`, `LOCAL_FAULT_5XX` and `LOCAL_FAULT_410` set;
    /// `lookup` reads a variable (unset or empty: not set).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let rate = |name| parse::<f64>(&lookup, name, "a number");
        let ms = |name| parse::<u64>(&lookup, name, "a whole number of milliseconds");
        Ok(Self {
            post_rate: rate("LOCAL_POST_RATE")?,
            post_burst: parse(&lookup, "LOCAL_POST_BURST", "a whole number")?,
            latency_ms: ms("LOCAL_LATENCY_MS")?,
            jitter_ms: ms("LOCAL_JITTER_MS")?,
            fault_429: rate("LOCAL_FAULT_429")?,
            fault_5xx: rate("LOCAL_FAULT_5XX")?,
            fault_410: rate("LOCAL_FAULT_410")?,
        })
    }
}

fn parse<T: FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    expected: &'static str,
) -> Result<Option<T>, SettingsError> {
    let Some(value) = lookup(name).filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    value
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| SettingsError::Parse {
            name,
            value,
            expected,
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn no_environment_changes_nothing() {
        let patch = FaultPatch::from_env(env(&[("LOCAL_PORT", "3001")])).unwrap();
        assert_eq!(patch, FaultPatch::default());
        let settings = FaultSettings::default().patched(&patch).unwrap();
        assert_eq!(settings.throttle(), None);
        assert_eq!(settings.latency(), Latency::default());
        assert_eq!(settings.faults(), Faults::default());
    }

    #[test]
    fn every_variable_reaches_its_knob() {
        let patch = FaultPatch::from_env(env(&[
            ("LOCAL_POST_RATE", "10000"),
            ("LOCAL_POST_BURST", "5000"),
            ("LOCAL_LATENCY_MS", "20"),
            ("LOCAL_JITTER_MS", " 10 "),
            ("LOCAL_FAULT_429", "0.05"),
            ("LOCAL_FAULT_5XX", "0.02"),
            ("LOCAL_FAULT_410", "1"),
        ]))
        .unwrap();
        let settings = FaultSettings::default().patched(&patch).unwrap();
        assert_eq!(settings.throttle(), Some(Throttle::new(10_000.0, 5_000)));
        assert_eq!(
            settings.latency(),
            Latency::new(Duration::from_millis(20), Duration::from_millis(10))
        );
        assert_eq!(
            settings.faults(),
            Faults {
                gone_rate: 1.0,
                throttle_rate: 0.05,
                error_rate: 0.02,
            }
        );
    }

    #[test]
    fn a_rate_without_burst_takes_half_the_rate() {
        let patch =
            FaultPatch::from_env(env(&[("LOCAL_POST_RATE", "101"), ("LOCAL_POST_BURST", "")]));
        let settings = FaultSettings::default().patched(&patch.unwrap()).unwrap();
        assert_eq!(settings.throttle(), Some(Throttle::new(101.0, 51)));
        let off = settings
            .patched(&FaultPatch {
                post_rate: Some(0.0),
                ..FaultPatch::default()
            })
            .unwrap();
        assert_eq!(off.throttle(), None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = FaultPatch::from_env(env(&[("LOCAL_LATENCY_MS", "20ms")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"LOCAL_LATENCY_MS="20ms" is not a whole number of milliseconds"#
        );
        let patch = FaultPatch::from_env(env(&[("LOCAL_FAULT_5XX", "1.5")])).unwrap();
        assert!(FaultSettings::default().patched(&patch).is_err());
        let patch = FaultPatch::from_env(env(&[("LOCAL_POST_RATE", "-1")])).unwrap();
        assert!(FaultSettings::default().patched(&patch).is_err());
    }

    #[test]
    fn settings_read_back_what_the_knobs_hold() {
        let throttle = Some(Throttle::new(250.0, 7));
        let latency = Latency::new(Duration::from_millis(3), Duration::from_millis(4));
        let faults = Faults {
            gone_rate: 0.1,
            throttle_rate: 0.2,
            error_rate: 0.3,
        };
        let settings = FaultSettings::new(throttle, latency, faults);
        assert_eq!(
            (settings.throttle(), settings.latency(), settings.faults()),
            (throttle, latency, faults)
        );
    }

    #[test]
    fn a_patch_rejects_unknown_fields() {
        let patch: FaultPatch = serde_json::from_str(r#"{"fault_429": 1.0}"#).unwrap();
        assert_eq!(patch.fault_429, Some(1.0));
        assert!(serde_json::from_str::<FaultPatch>(r#"{"fault_492": 1.0}"#).is_err());
    }
}
