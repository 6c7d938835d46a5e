//! Log lines on stdout, where CloudWatch Logs keeps them as they are.
//!
//! Lambda's advanced logging controls set `AWS_LAMBDA_LOG_LEVEL` and `AWS_LAMBDA_LOG_FORMAT`;
//! they win over `RUST_LOG` so that an operator can turn on debug logs from the console without
//! a deploy. Without either, `RUST_LOG` (default `info`) and JSON.

use crate::env::Env;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: Logs Insights can query every field.
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing_subscriber::EnvFilter` directive.
    pub filter: String,
    pub format: LogFormat,
}

impl LogSettings {
    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Self {
        let filter = env
            .optional("AWS_LAMBDA_LOG_LEVEL")
            .map(|level| lambda_level(&level).to_owned())
            .or_else(|| env.optional("RUST_LOG"))
            .unwrap_or_else(|| "info".to_owned());
        let format = match env.optional("AWS_LAMBDA_LOG_FORMAT") {
            Some(format) if format.eq_ignore_ascii_case("text") => LogFormat::Text,
            _ => LogFormat::Json,
        };
        Self { filter, format }
    }
}

/// Lambda's level names (TRACE, DEBUG, INFO, WARN, ERROR, FATAL) as tracing directives.
fn lambda_level(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => "info",
    }
}

/// Installs the process-wide subscriber (once; later calls are ignored).
pub fn install(settings: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_env_filter(filter);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.without_time().with_ansi(false).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::pairs_env;

    fn settings(pairs: &[(&str, &str)]) -> LogSettings {
        LogSettings::read(&pairs_env(pairs))
    }

    #[test]
    fn defaults_are_json_at_info() {
        assert_eq!(
            settings(&[]),
            LogSettings {
                filter: "info".into(),
                format: LogFormat::Json
            }
        );
        assert_eq!(
            settings(&[("RUST_LOG", "fanout=debug")]).filter,
            "fanout=debug"
        );
    }

    #[test]
    fn lambda_controls_win_over_rust_log() {
        let s = settings(&[
            ("RUST_LOG", "info"),
            ("AWS_LAMBDA_LOG_LEVEL", "DEBUG"),
            ("AWS_LAMBDA_LOG_FORMAT", "Text"),
        ]);
        assert_eq!((s.filter.as_str(), s.format), ("debug", LogFormat::Text));
        assert_eq!(
            settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]).filter,
            "error"
        );
        assert_eq!(
            settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).format,
            LogFormat::Json
        );
    }
}
