//! What one run saw: one log line and one EMF document. `CanaryLatency` exists only when the
//! heartbeat came back, so a pipeline that delivers nothing makes the metric go missing, which
//! the `canary-latency` alarm treats as breaching.

use platform::telemetry::Metrics;
use serde_json::json;

/// How a run ended. Each failure names the first stage that did not answer, which is where
/// on-call starts (RUNBOOK.md, canary-latency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its own update arrived over the WebSocket, `latency_ms` after the write was sent.
    Arrived { latency_ms: u64 },
    /// The write succeeded, but its update did not arrive in time: a stage between the table's
    /// stream and the post to the connection is silent or slow.
    TimedOut,
    /// The socket closed (or failed) before the update arrived.
    Closed { detail: String },
    /// No token: the secret could not be read or the token not signed.
    TokenFailed { detail: String },
    /// The WebSocket handshake failed: the stage, `$connect` or the authorizer refused it.
    ConnectFailed { detail: String },
    /// PutItem on the metrics table failed.
    WriteFailed { detail: String },
}

impl Outcome {
    /// The log's `outcome` field.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Arrived { .. } => "arrived",
            Self::TimedOut => "timed_out",
            Self::Closed { .. } => "closed",
            Self::TokenFailed { .. } => "token_failed",
            Self::ConnectFailed { .. } => "connect_failed",
            Self::WriteFailed { .. } => "write_failed",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Self::Arrived { .. } | Self::TimedOut => "",
            Self::Closed { detail }
            | Self::TokenFailed { detail }
            | Self::ConnectFailed { detail }
            | Self::WriteFailed { detail } => detail,
        }
    }
}

/// One run: its outcome, and what else the connection received meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryReport {
    pub outcome: Outcome,
    pub entity_id: String,
    /// Empty when the run failed before writing.
    pub nonce: String,
    /// Text messages received before the heartbeat's (other entities, other parts).
    pub other_messages: u64,
    /// How long the run waited for the update at most.
    pub timeout_ms: u64,
}

impl CanaryReport {
    pub fn latency_ms(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Arrived { latency_ms } => Some(latency_ms),
            _ => None,
        }
    }

    pub fn arrived(&self) -> bool {
        self.latency_ms().is_some()
    }

    pub fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("canary");
        metrics
            .add("CanaryFailures", u64::from(!self.arrived()))
            .expect("catalogued canary metric");
        if let Some(latency) = self.latency_ms() {
            metrics
                .add("CanaryLatency", latency)
                .expect("catalogued canary metric");
        }
        metrics.property("outcome", json!(self.outcome.name()));
        metrics
    }

    /// The one structured log line of the run.
    pub fn log(&self) {
        let (outcome, detail) = (self.outcome.name(), self.outcome.detail());
        let (entity_id, nonce) = (self.entity_id.as_str(), self.nonce.as_str());
        match self.latency_ms() {
            Some(latency_ms) => tracing::info!(
                outcome,
                latency_ms,
                entity_id,
                nonce,
                other_messages = self.other_messages,
                "canary heartbeat arrived"
            ),
            None => tracing::error!(
                outcome,
                detail,
                entity_id,
                nonce,
                other_messages = self.other_messages,
                timeout_ms = self.timeout_ms,
                "canary heartbeat did not arrive"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> CanaryReport {
        CanaryReport {
            outcome,
            entity_id: "canary-heartbeat".into(),
            nonce: "n".into(),
            other_messages: 3,
            timeout_ms: 20_000,
        }
    }

    #[test]
    fn every_catalogued_metric_is_emitted_by_an_arrival() {
        let metrics = report(Outcome::Arrived { latency_ms: 812 }).metrics();
        for name in platform::telemetry::catalogued("canary") {
            assert!(
                metrics.value(&name).is_some(),
                "{name} is catalogued but never emitted"
            );
        }
        assert_eq!(metrics.value("CanaryLatency"), Some(&json!(812)));
        assert_eq!(metrics.value("CanaryFailures"), Some(&json!(0)));
    }

    #[test]
    fn a_failure_counts_and_leaves_the_latency_missing() {
        for outcome in [
            Outcome::TimedOut,
            Outcome::Closed {
                detail: "1001".into(),
            },
            Outcome::TokenFailed { detail: "x".into() },
            Outcome::ConnectFailed {
                detail: "403".into(),
            },
            Outcome::WriteFailed {
                detail: "AccessDenied".into(),
            },
        ] {
            let name = outcome.name();
            let metrics = report(outcome).metrics();
            assert_eq!(metrics.value("CanaryLatency"), None, "{name}");
            assert_eq!(metrics.value("CanaryFailures"), Some(&json!(1)), "{name}");
            let doc: serde_json::Value = serde_json::from_str(&metrics.render()).unwrap();
            assert_eq!(doc["Service"], "canary");
            assert_eq!(doc["outcome"], name);
        }
    }
}
