//! The moto server the local stack, the tests and the benchmark run against.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use aws_config::SdkConfig;

/// The SDK configuration for the moto server at `endpoint` (loopback only).
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    platform::aws::loopback(endpoint).await
}

/// Waits until moto answers a DynamoDB call, `within` at most (moto takes a second or two to
/// start). The error says who should have started it.
pub async fn wait_until_ready(sdk: &SdkConfig, within: Duration) -> anyhow::Result<()> {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let deadline = Instant::now() + within;
    let endpoint = sdk.endpoint_url().unwrap_or("the configured endpoint");
    loop {
        match dynamo.list_tables().limit(1).send().await {
            Ok(_) => return Ok(()),
            Err(_) if Instant::now() < deadline => {
                tracing::debug!(endpoint, "waiting for moto");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("moto does not answer at {endpoint} (`make dev`, `make test` and `make bench` start one)")
                });
            }
        }
    }
}
