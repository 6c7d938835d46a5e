//! A metrics simulator: a processing job writing the metrics table a few times a second, so
//! the dashboard has something to show.

use std::collections::HashMap;
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

/// Entity kinds, in turn: entity `i` is a `TYPES[i % 3]`.
const TYPES: [&str; 3] = ["stream", "job", "queue"];

/// Writes until `stop`: entity after entity, each a random walk from where it was.
pub async fn run(
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
    config: SimulatorConfig,
    stop: CancellationToken,
) {
    let mut readings = initial_readings(config.entities.max(1));
    let mut ticker = tokio::time::interval(config.interval);
    for i in (0..readings.len()).cycle() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        readings[i].step(&mut rand::rng());
        write(&dynamo, &table, i, &readings[i]).await;
    }
}

/// Distinct starting points, so that the entities are told apart on the dashboard.
fn initial_readings(entities: usize) -> Vec<Reading> {
    (0..entities)
        .map(|i| Reading {
            metric_value: 1000.0 + 150.0 * i as f64,
            throughput: 400.0 + 25.0 * i as f64,
            latency_ms: 20.0 + 3.0 * i as f64,
            error_rate: 0.01,
        })
        .collect()
}

/// Puts entity `i`'s reading; a failed write is logged and the next tick goes on.
async fn write(dynamo: &aws_sdk_dynamodb::Client, table: &str, i: usize, reading: &Reading) {
    let result = dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(item(i, reading)))
        .send()
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "simulator write failed");
    }
}

/// Entity `i`'s row in the metrics table.
fn item(i: usize, reading: &Reading) -> HashMap<String, AttributeValue> {
    let kind = TYPES[i % TYPES.len()];
    let number = |v: f64, places: i32| AttributeValue::N(round(v, places));
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    HashMap::from([
        (
            METRICS_KEY.to_owned(),
            AttributeValue::S(format!("{kind}-{:03}", i + 1)),
        ),
        ("entity_type".to_owned(), AttributeValue::S(kind.to_owned())),
        ("metric_value".to_owned(), number(reading.metric_value, 1)),
        ("throughput".to_owned(), number(reading.throughput, 1)),
        ("latency_ms".to_owned(), number(reading.latency_ms, 2)),
        ("error_rate".to_owned(), number(reading.error_rate, 4)),
        ("timestamp".to_owned(), AttributeValue::S(timestamp)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_take_turns_at_types_and_carry_rounded_readings() {
        let readings = initial_readings(4);
        let row = item(3, &readings[3]);
        assert_eq!(row[METRICS_KEY], AttributeValue::S("stream-004".to_owned()));
        assert_eq!(row["entity_type"], AttributeValue::S("stream".to_owned()));
        assert_eq!(row["metric_value"], AttributeValue::N("1450".to_owned()));
        assert_eq!(row["error_rate"], AttributeValue::N("0.01".to_owned()));
        assert!(matches!(&row["timestamp"], AttributeValue::S(t) if t.ends_with('Z')));
        let kind = |i: usize| item(i, &readings[i])["entity_type"].clone();
        assert_eq!(kind(1), AttributeValue::S("job".to_owned()));
        assert_eq!(kind(2), AttributeValue::S("queue".to_owned()));
    }
}
