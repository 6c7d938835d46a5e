//! Structured logs and CloudWatch Embedded Metric Format, for every function.
//!
//! - [`logs`]: JSON (or text) log lines, with Lambda's logging controls honoured;
//! - [`metrics`]: EMF documents whose names and units come from `metrics.json`.

pub mod logs;
pub mod metrics;

pub use logs::{LogFormat, LogSettings};
pub use metrics::{Metrics, UnknownMetric, catalogued};

use crate::env::{ConfigError, Env, process_env};

/// What a Lambda bin calls first: logs as its settings ask, and the stage that every metric
/// document carries. A missing `STAGE` is reported after logging is up, so it is seen.
pub fn init_function() -> Result<(), ConfigError> {
    init_function_with(&process_env())
}

pub fn init_function_with<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<(), ConfigError> {
    logs::install(&LogSettings::read(env));
    metrics::set_stage(env.required(
        "STAGE",
        "the stack's stage name, the `Stage` dimension of every metric (set by infra/)",
    )?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::pairs_env;

    #[test]
    fn a_function_without_a_stage_does_not_start() {
        let err = init_function_with(&pairs_env(&[])).unwrap_err();
        assert!(err.to_string().contains("STAGE is not set"), "{err}");
    }
}
