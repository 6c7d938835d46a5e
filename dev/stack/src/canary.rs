//! The end-to-end canary in the local stack: the production canary's run (the `canary` crate)
//! every few seconds against the emulated stage instead of every minute against API Gateway.
//! Each run logs its latency, writes it into the next heartbeat (the page shows it as the
//! `canary-heartbeat` entity's `previous_latency_ms`), and is kept for tests to read.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authorizer::AuthConfig;
use aws_config::SdkConfig;
use canary::config::{DEFAULT_ENTITY_ID, SecretSource, TokenSettings};
use canary::{Canary, CanaryConfig, CanaryReport};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// How often the local canary runs and how long each run waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalCanary {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for LocalCanary {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
        }
    }
}

/// One run and when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryRun {
    pub started: Instant,
    pub report: CanaryReport,
}

/// The latest runs, oldest first; a long `make dev` keeps only the last [`CanaryRuns::KEEP`].
#[derive(Debug, Default)]
pub struct CanaryRuns(Mutex<VecDeque<CanaryRun>>);

impl CanaryRuns {
    pub const KEEP: usize = 1000;

    pub fn all(&self) -> Vec<CanaryRun> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect()
    }

    /// The runs that started at or after `at`.
    pub fn since(&self, at: Instant) -> Vec<CanaryRun> {
        self.all().into_iter().filter(|r| r.started >= at).collect()
    }

    fn push(&self, run: CanaryRun) {
        let mut runs = self.0.lock().expect("not poisoned");
        if runs.len() == Self::KEEP {
            runs.pop_front();
        }
        runs.push_back(run);
    }
}

/// The token the canary signs when the stack authenticates: with the stack's HS256 secret and
/// the claims its authorizer checks. A stack that verifies JWKS keys only has no secret to sign
/// with, so no canary (`Err` says why).
pub fn token_settings(auth: Option<&AuthConfig>) -> Result<Option<TokenSettings>, &'static str> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let secret = auth
        .hs256_secret
        .clone()
        .ok_or("AUTH_MODE=jwt without AUTH_JWT_SECRET: the canary has no secret to sign with")?;
    Ok(Some(TokenSettings {
        secret: SecretSource::Value(secret),
        issuer: auth.claims.issuer.clone(),
        audience: auth.claims.audiences.first().cloned(),
    }))
}

/// Starts the canary against the gateway at `ws_url`, writing `metrics_table`; `None` when the
/// stack's authentication leaves it no way to connect (logged).
pub fn spawn(
    sdk: &SdkConfig,
    ws_url: String,
    metrics_table: String,
    auth: Option<&AuthConfig>,
    local: LocalCanary,
    runs: &Arc<CanaryRuns>,
    stop: CancellationToken,
) -> Option<JoinHandle<()>> {
    let token = match token_settings(auth) {
        Ok(token) => token,
        Err(reason) => {
            tracing::warn!(reason, "canary off");
            return None;
        }
    };
    let config = CanaryConfig {
        ws_url,
        metrics_table,
        entity_id: DEFAULT_ENTITY_ID.to_owned(),
        timeout: local.timeout,
        token,
    };
    tracing::info!(
        interval_ms = local.interval.as_millis() as u64,
        entity_id = %config.entity_id,
        "canary on: a heartbeat write timed until it comes back over the WebSocket"
    );
    Some(tokio::spawn(run(
        Canary::new(sdk, config),
        local,
        runs.clone(),
        stop,
    )))
}

/// Runs every `interval` (a run slower than that delays the next) until `stop`.
async fn run(canary: Canary, local: LocalCanary, runs: Arc<CanaryRuns>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(local.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut previous = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let started = Instant::now();
        let report = tokio::select! {
            () = stop.cancelled() => return,
            report = canary.run(local.timeout, previous) => report,
        };
        previous = report.latency_ms();
        report.log();
        runs.push(CanaryRun { started, report });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authorizer::config::Secret;
    use authorizer::verify::ClaimRules;
    use canary::Outcome;

    fn run(latency_ms: u64) -> CanaryRun {
        CanaryRun {
            started: Instant::now(),
            report: CanaryReport {
                outcome: Outcome::Arrived { latency_ms },
                entity_id: DEFAULT_ENTITY_ID.into(),
                nonce: "n".into(),
                other_messages: 0,
                timeout_ms: 1000,
            },
        }
    }

    #[test]
    fn only_the_latest_runs_are_kept() {
        let runs = CanaryRuns::default();
        for i in 0..=CanaryRuns::KEEP as u64 {
            runs.push(run(i));
        }
        let all = runs.all();
        assert_eq!(all.len(), CanaryRuns::KEEP);
        assert_eq!(all[0].report.latency_ms(), Some(1), "the oldest went");
        assert!(
            runs.since(Instant::now() + Duration::from_secs(1))
                .is_empty()
        );
    }

    #[test]
    fn the_token_follows_the_stacks_authentication() {
        assert_eq!(token_settings(None), Ok(None));
        let secret = Secret::new("0123456789abcdef0123456789abcdef").unwrap();
        let auth = AuthConfig {
            hs256_secret: Some(secret.clone()),
            hs256_previous_secret: None,
            jwks: None,
            claims: ClaimRules {
                issuer: Some("local".into()),
                audiences: vec!["dashboards".into(), "ops".into()],
                ..ClaimRules::default()
            },
        };
        assert_eq!(
            token_settings(Some(&auth)),
            Ok(Some(TokenSettings {
                secret: SecretSource::Value(secret),
                issuer: Some("local".into()),
                audience: Some("dashboards".into()),
            }))
        );
        let jwks_only = AuthConfig {
            hs256_secret: None,
            ..auth
        };
        assert!(token_settings(Some(&jwks_only)).is_err());
    }
}
