//! A metrics simulator: a processing job writing the metrics table a few times a second, so
//! the dashboard has something to show.

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::bootstrap::METRICS_KEY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulatorConfig {
    pub entities: usize,
    /// Time between writes (each write updates one entity).
    pub interval: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            entities: 6,
            interval: Duration::from_millis(300),
        }
    }
}

/// One entity's simulated readings.
#[derive(Debug, Clone, PartialEq)]
struct Reading {
    metric_value: f64,
    throughput: f64,
    latency_ms: f64,
    error_rate: f64,
}

impl Reading {
    fn step(&mut self, rng: &mut impl Rng) {
        let walk = |v: f64, scale: f64, rng: &mut dyn rand::RngCore| {
            (v + (rng.random::<f64>() - 0.5) * scale).max(0.0)
        };
        self.metric_value = walk(self.metric_value, 80.0, rng);
        self.throughput = walk(self.throughput, 40.0, rng);
        self.latency_ms = walk(self.latency_ms, 6.0, rng).max(1.0);
        self.error_rate = walk(self.error_rate, 0.004, rng).min(1.0);
    }
}

fn round(v: f64, places: i32) -> String {
    let factor = 10f64.powi(places);
    ((v * factor).round() / factor).to_string()
}

/// Writes until `stop`: entity after entity, each a random walk from where it was.
pub async fn run(
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    config: SimulatorConfig,
    stop: CancellationToken,
) {
    const TYPES: [&str; 3] = ["stream", "job", "queue"];
    let mut readings: Vec<Reading> = (0..config.entities.max(1))
        .map(|i| Reading {
            metric_value: 1000.0 + 150.0 * i as f64,
            throughput: 400.0 + 25.0 * i as f64,
            latency_ms: 20.0 + 3.0 * i as f64,
            error_rate: 0.01,
        })
        .collect();
    let mut ticker = tokio::time::interval(config.interval);
    for i in (0..readings.len()).cycle() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let reading = {
            let mut rng = rand::rng();
            readings[i].step(&mut rng);
            readings[i].clone()
        };
        let result = dynamo
            .put_item()
            .table_name(&table)
            .item(
                METRICS_KEY,
                AttributeValue::S(format!("{}-{:03}", TYPES[i % 3], i + 1)),
            )
            .item("entity_type", AttributeValue::S(TYPES[i % 3].to_owned()))
            .item(
                "metric_value",
                AttributeValue::N(round(reading.metric_value, 1)),
            )
            .item(
                "throughput",
                AttributeValue::N(round(reading.throughput, 1)),
            )
            .item(
                "latency_ms",
                AttributeValue::N(round(reading.latency_ms, 2)),
            )
            .item(
                "error_rate",
                AttributeValue::N(round(reading.error_rate, 4)),
            )
            .item(
                "timestamp",
                AttributeValue::S(
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            )
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "simulator write failed");
        }
    }
}
