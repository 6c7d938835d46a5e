//! The end-to-end canary in the local stack: its heartbeat's round trip through the whole
//! pipeline is measured while the pipeline runs, and once the fanout queue's poller stops (a
//! disabled mapping, a dead fanout) no run measures anything: `CanaryLatency` goes missing and
//! `CanaryFailures` counts, which is what the `canary-latency` alarm pages on.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use canary::Outcome;
use e2e::{eventually, put_metric, start_stack};
use serde_json::json;
use stack::canary::{CanaryRun, LocalCanary};
use stack::{Stack, StackConfig};
use tokio::time::Instant;

/// Runs back to back: each waits at most `TIMEOUT` for its update.
const LOCAL: LocalCanary = LocalCanary {
    interval: Duration::from_millis(300),
    timeout: Duration::from_millis(1500),
};
const WAIT: Duration = Duration::from_secs(20);

fn with_canary(mut config: StackConfig) -> StackConfig {
    config.canary = Some(LOCAL);
    config
}

fn arrivals(stack: &Stack) -> Vec<CanaryRun> {
    let runs = stack.canary_runs.all();
    runs.into_iter().filter(|r| r.report.arrived()).collect()
}

fn outcomes(runs: &[CanaryRun]) -> Vec<&'static str> {
    runs.iter().map(|r| r.report.outcome.name()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_measures_the_pipeline_and_its_latency_goes_missing_when_fanout_stops() {
    let stack = start_stack(with_canary(StackConfig::for_tests())).await;

    // While the pipeline runs, other entities' updates reach the canary's connection too.
    let mut i = 0;
    let deadline = Instant::now() + WAIT;
    while arrivals(&stack).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no two heartbeats came back: {:?}",
            outcomes(&stack.canary_runs.all())
        );
        put_metric(&stack, &format!("stream-{:03}", i % 5), f64::from(i)).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for run in arrivals(&stack) {
        let latency = run.report.latency_ms().unwrap();
        assert!(latency > 0 && latency < 1500, "{latency} ms");
        let metrics = run.report.metrics();
        assert_eq!(metrics.value("CanaryLatency"), Some(&json!(latency)));
        assert_eq!(metrics.value("CanaryFailures"), Some(&json!(0)));
        assert!(!run.report.nonce.is_empty());
    }

    stack.stop_fanout();
    let stopped = Instant::now();
    let records_at_stop = stack.stream_stats.records.load(Relaxed);
    let two_runs = eventually(WAIT, || stack.canary_runs.since(stopped).len() >= 2).await;
    assert!(two_runs, "the canary stopped running");
    let after = stack.canary_runs.since(stopped);
    for run in &after {
        assert_eq!(
            run.report.outcome,
            Outcome::TimedOut,
            "runs after the stop: {:?}",
            outcomes(&after)
        );
        let metrics = run.report.metrics();
        assert_eq!(
            metrics.value("CanaryLatency"),
            None,
            "the metric goes missing"
        );
        assert_eq!(metrics.value("CanaryFailures"), Some(&json!(1)));
    }
    // The heartbeats still reach the processor: the silent stage is after it.
    assert!(stack.stream_stats.records.load(Relaxed) > records_at_stop);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_the_canary_connects_with_a_token_it_signs() {
    let mut config = with_canary(StackConfig::for_tests());
    config.auth = Some(e2e::auth::config());
    let stack = start_stack(config).await;
    let arrived = eventually(WAIT, || !arrivals(&stack).is_empty()).await;
    assert!(
        arrived,
        "no heartbeat came back: {:?}",
        stack
            .canary_runs
            .all()
            .iter()
            .map(|r| format!("{:?}", r.report.outcome))
            .collect::<Vec<_>>()
    );
    assert!(
        stack
            .canary_runs
            .all()
            .iter()
            .all(|r| !matches!(r.report.outcome, Outcome::ConnectFailed { .. })),
        "the authorizer let the canary in every time"
    );
    stack.shutdown().await;
}
