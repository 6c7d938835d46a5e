//! One processor invocation: a DynamoDB stream batch becomes one broadcast (batch mode), or
//! pending changes and perhaps a round (rounds mode); a tick or the schedule may start a round.

use aws_lambda_events::dynamodb::Event;
use jobs::JobQueue;
use platform::clock::now_ms;
use platform::telemetry::Metrics;
use registry::Registry;
use serde_json::json;

use rounds::store::Recorded;
use rounds::{Coordinator, RoundState, RoundStore, Ticks};

use crate::broadcast::{BroadcastError, BroadcastStats, broadcast};
use crate::config::ProcessorConfig;
use crate::conflation::{Advanced, ConflationError, RoundContext, advance, changes};
use crate::editions::Editions;
use crate::message::{broadcast_id, stream_arn, stream_label};
use crate::update::convert;

pub struct Processor {
    pub registry: Registry,
    pub queue: JobQueue,
    pub config: ProcessorConfig,
    /// The rounds' state and ticks; `None` in batch mode.
    pub rounds: Option<Coordinator>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error(transparent)]
    Rounds(#[from] ConflationError),
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
    /// Rounds mode: the changes recorded as pending, and the rounds started and ended.
    pub recorded: Recorded,
    pub rounds: Advanced,
}

/// What the schedule sees of the rounds: the alarms' data, sent even when all is quiet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundStatus {
    /// ms the round in flight has run (0 when none is).
    pub round_age_ms: i64,
    pub pending_entities: u64,
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
        let label = stream.and_then(stream_label);
        let Some(context) = self.round_context() else {
            return self.broadcast_batch(event, &updates, report).await;
        };
        let changes = changes(&updates, label, self.config.max_message_bytes - 1024);
        report.recorded = context
            .rounds
            .store
            .record(&changes)
            .await
            .map_err(ConflationError::from)?;
        report.rounds = advance(&context).await?;
        Ok(report)
    }

    /// A tick (a round ended, a lease ran out) or the schedule: start a round if one may.
    pub async fn tick(&self) -> Result<ProcessorReport, ProcessorError> {
        let mut report = ProcessorReport::default();
        if let Some(context) = self.round_context() {
            report.rounds = advance(&context).await?;
        }
        Ok(report)
    }

    /// The rounds' state for the schedule's metrics; `None` in batch mode.
    pub async fn round_status(&self) -> Result<Option<RoundStatus>, ProcessorError> {
        let Some(rounds) = &self.rounds else {
            return Ok(None);
        };
        let round = rounds.store.round().await.map_err(ConflationError::from)?;
        let pending = rounds
            .store
            .pending()
            .await
            .map_err(ConflationError::from)?;
        Ok(Some(RoundStatus {
            round_age_ms: round.map_or(0, |r: RoundState| r.age(now_ms())),
            pending_entities: pending.len() as u64,
        }))
    }

    fn round_context(&self) -> Option<RoundContext<'_>> {
        Some(RoundContext {
            rounds: self.rounds.as_ref()?,
            settings: self.config.rounds.as_ref()?,
            registry: &self.registry,
            queue: &self.queue,
            broadcast: self.config.broadcast,
            max_message_bytes: self.config.max_message_bytes,
        })
    }

    /// Batch mode: the batch is one broadcast, now; with a state table, its changes are kept
    /// as their entities' latest first (the snapshots' source).
    async fn broadcast_batch(
        &self,
        event: &Event,
        updates: &[(crate::update::Update, Box<serde_json::value::RawValue>)],
        mut report: ProcessorReport,
    ) -> Result<ProcessorReport, ProcessorError> {
        let stream = stream_arn(&event.records);
        let id = broadcast_id(
            stream,
            event
                .records
                .iter()
                .map(|r| r.change.sequence_number.as_deref().unwrap_or(&r.event_id)),
        );
        let label = stream.and_then(stream_label);
        if let Some(table) = &self.config.batch_state_table {
            // Kept before the broadcast: a snapshot asked for after an update arrived has it.
            let kept = changes(updates, label, self.config.max_message_bytes - 1024);
            let store = RoundStore::new(self.registry.client().clone(), table);
            report.recorded.stale = store.keep(&kept).await.map_err(ConflationError::from)?;
        }
        let mut editions = Editions::new(
            &id,
            label,
            updates.to_vec(),
            self.config.max_message_bytes,
            false,
        );
        report.broadcast_id = Some(id.clone());
        report.truncated = editions.everything.truncated.len() as u64;
        report.parts = editions.everything.messages.len() as u64;
        report.stats = broadcast(
            &self.registry,
            &self.queue,
            &mut editions,
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

/// The rounds' coordinator a configuration asks for; `None` in batch mode.
pub fn coordinator(
    config: &ProcessorConfig,
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
) -> Option<Coordinator> {
    let settings = config.rounds.as_ref()?;
    Some(Coordinator {
        store: RoundStore::new(dynamo.clone(), &settings.table_name),
        ticks: Ticks::new(sqs.clone(), &settings.tick_queue_url),
    })
}

impl ProcessorReport {
    pub fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("processor");
        let started = &self.rounds.started;
        let sum = |f: fn(&crate::conflation::Started) -> u64| started.iter().map(f).sum::<u64>();
        metrics
            .add_counts(&[
                ("Records", self.records),
                ("RecordsSkipped", self.skipped),
                ("RecordsTruncated", self.truncated + sum(|s| s.truncated)),
                ("Parts", self.parts + sum(|s| s.parts)),
                (
                    "ConnectionsPaged",
                    self.stats.connections + sum(|s| s.stats.connections),
                ),
                ("Pages", self.stats.pages + sum(|s| s.stats.pages)),
                (
                    "JobsSent",
                    self.stats.jobs_sent + sum(|s| s.stats.jobs_sent),
                ),
                ("ChangesPending", self.recorded.pending),
                ("ChangesStale", self.recorded.stale),
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
        if !started.is_empty() {
            let ids: Vec<&str> = started.iter().map(|s| s.round_id.as_str()).collect();
            metrics.property("roundIds", json!(ids));
        }
        metrics
    }

    /// The rounds' metrics of this invocation: rounds started and expired, and one document
    /// per round that ended here.
    pub fn round_metrics(&self) -> Vec<Metrics> {
        let mut counts = Metrics::new("rounds");
        counts
            .add_counts(&[
                ("RoundsStarted", self.rounds.started.len() as u64),
                ("RoundsExpired", self.rounds.expired.len() as u64),
            ])
            .expect("catalogued rounds metrics");
        std::iter::once(counts)
            .chain(self.rounds.ended.iter().map(rounds::Ended::metrics))
            .collect()
    }

    pub fn log(&self) {
        let started: Vec<&str> = self
            .rounds
            .started
            .iter()
            .map(|s| s.round_id.as_str())
            .collect();
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
            pending = self.recorded.pending,
            stale = self.recorded.stale,
            rounds_started = ?started,
            rounds_expired = ?self.rounds.expired,
            round_in_flight = self.rounds.busy,
            "processor invocation"
        );
    }
}

impl RoundStatus {
    /// Sent on every scheduled tick, so that the stuck-round alarm has data while all is
    /// quiet, and none when the schedule itself stopped.
    pub fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("rounds");
        metrics
            .add("RoundAge", self.round_age_ms)
            .expect("catalogued rounds metric");
        metrics
            .add("PendingEntities", self.pending_entities)
            .expect("catalogued rounds metric");
        metrics
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

    #[test]
    fn every_catalogued_rounds_metric_is_emitted_by_the_processor_or_an_ended_round() {
        let report = ProcessorReport {
            rounds: Advanced {
                ended: vec![rounds::Ended {
                    round: RoundState {
                        oldest_change: Some(1),
                        ..RoundState::default()
                    },
                    ended_at: 2,
                }],
                ..Advanced::default()
            },
            ..ProcessorReport::default()
        };
        let mut documents = report.round_metrics();
        documents.push(RoundStatus::default().metrics());
        for name in platform::telemetry::catalogued("rounds") {
            assert!(
                documents.iter().any(|m| m.value(&name).is_some()),
                "{name} is catalogued but never emitted"
            );
        }
    }
}
