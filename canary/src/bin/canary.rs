//! The canary Lambda, invoked every minute by an EventBridge schedule: one run per invocation,
//! its outcome in the log and its `CanaryLatency` / `CanaryFailures` in EMF. A failed run still
//! returns success: the metrics carry the outcome, and a retry would only overlap the next run.

use std::sync::Mutex;
use std::time::Duration;

use canary::probe::wait_within;
use canary::{Canary, CanaryConfig};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use platform::clock::now_ms;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) = platform::function::start(CanaryConfig::from_env).await?;
    let canary = &Canary::new(&sdk, config);
    // The last latency this instance measured, written into the next heartbeat.
    let previous = &Mutex::new(None::<u64>);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let left = i64::try_from(event.context.deadline).unwrap_or(i64::MAX) - now_ms();
        let left = Duration::from_millis(u64::try_from(left).unwrap_or(0));
        let last = *previous.lock().expect("not poisoned");
        let report = canary
            .run(wait_within(canary.config.timeout, left), last)
            .await;
        *previous.lock().expect("not poisoned") = report.latency_ms();
        report.log();
        report.metrics().emit();
        Ok::<_, Error>(json!({"outcome": report.outcome.name(), "latencyMs": report.latency_ms()}))
    }))
    .await
}
