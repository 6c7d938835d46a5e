//! One processor invocation: a DynamoDB stream batch becomes one broadcast.

use aws_lambda_events::dynamodb::Event;
use jobs::JobQueue;
use platform::clock::now_ms;
use platform::telemetry::Metrics;
use registry::Registry;
use serde_json::json;

use crate::broadcast::{BroadcastError, BroadcastStats, broadcast};
use crate::config::ProcessorConfig;
use crate::message::{broadcast_id, split, stream_arn, stream_label};
use crate::update::convert;

pub struct Processor {
    pub registry: Registry,
    pub queue: JobQueue,
    pub config: ProcessorConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("broadcast {broadcast_id} failed: {source}")]
    Broadcast {
        broadcast_id: String,
        #[source]
        source: BroadcastError,
    },
}

/// What one invocation did; one log line and one EMF document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessorReport {
    pub broadcast_id: Option<String>,
    pub records: u64,
    pub skipped: u64,
    pub truncated: u64,
    pub parts: u64,
    pub stats: BroadcastStats,
    /// ms from the oldest record's creation to now.
    pub lag_ms: Option<i64>,
}

impl Processor {
    pub async fn handle(&self, event: &Event) -> Result<ProcessorReport, ProcessorError> {
        let mut report = ProcessorReport {
            records: event.records.len() as u64,
            ..ProcessorReport::default()
        };
        let (updates, skipped) = convert(&event.records);
        for s in &skipped {
            tracing::error!(keys = %s.keys, sequence = ?s.sequence, error = %s.error, "stream record skipped");
        }
        report.skipped = skipped.len() as u64;
        report.lag_ms = event
            .records
            .iter()
            .map(|r| r.change.approximate_creation_date_time.timestamp_millis())
            .filter(|t| *t > 0)
            .min()
            .map(|oldest| now_ms() - oldest);
        if updates.is_empty() {
            return Ok(report);
        }
        let stream = stream_arn(&event.records);
        let id = broadcast_id(
            stream,
            event
                .records
                .iter()
                .map(|r| r.change.sequence_number.as_deref().unwrap_or(&r.event_id)),
        );
        let label = stream.and_then(stream_label);
        let parts = split(&id, label, &updates, self.config.max_message_bytes);
        report.broadcast_id = Some(id.clone());
        report.truncated = parts.truncated.len() as u64;
        report.parts = parts.messages.len() as u64;
        report.stats = broadcast(
            &self.registry,
            &self.queue,
            &parts,
            now_ms(),
            self.config.broadcast,
        )
        .await
        .map_err(|source| ProcessorError::Broadcast {
            broadcast_id: id,
            source,
        })?;
        Ok(report)
    }
}

impl ProcessorReport {
    pub fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("processor");
        metrics
            .add_counts(&[
                ("Records", self.records),
                ("RecordsSkipped", self.skipped),
                ("RecordsTruncated", self.truncated),
                ("Parts", self.parts),
                ("ConnectionsPaged", self.stats.connections),
                ("Pages", self.stats.pages),
                ("JobsSent", self.stats.jobs_sent),
            ])
            .expect("catalogued processor metrics");
        if let Some(lag) = self.lag_ms {
            metrics
                .add("BroadcastLag", lag)
                .expect("catalogued processor metric");
        }
        if let Some(id) = &self.broadcast_id {
            metrics.property("broadcastId", json!(id));
        }
        metrics
    }

    pub fn log(&self) {
        tracing::info!(
            broadcast_id = self.broadcast_id.as_deref().unwrap_or(""),
            records = self.records,
            skipped = self.skipped,
            truncated = self.truncated,
            parts = self.parts,
            pages = self.stats.pages,
            connections = self.stats.connections,
            jobs_sent = self.stats.jobs_sent,
            lag_ms = self.lag_ms,
            "processor invocation"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogued_metric_is_emitted() {
        let report = ProcessorReport {
            lag_ms: Some(10),
            ..ProcessorReport::default()
        };
        let metrics = report.metrics();
        for name in platform::telemetry::catalogued("processor") {
            assert!(
                metrics.value(&name).is_some(),
                "{name} is catalogued but never emitted"
            );
        }
    }
}
