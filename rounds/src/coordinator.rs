//! Ending a round, wherever it ends (the fanout that finishes its last job, or the processor
//! when the round had nothing to post), and what an ended round reports.

use std::time::Duration;

use platform::telemetry::Metrics;
use serde_json::json;

use crate::round::RoundState;
use crate::store::{RoundStore, StoreError};
use crate::tick::{Tick, TickError, Ticks};

#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tick(#[from] TickError),
}

/// The state table and the tick queue, together.
#[derive(Debug, Clone)]
pub struct Coordinator {
    pub store: RoundStore,
    pub ticks: Ticks,
}

impl Coordinator {
    /// Ends `round_id` and wakes the processor for the next one. Returns the round as it
    /// ended, if this call ended it.
    pub async fn end(&self, round_id: &str, now: i64) -> Result<Option<Ended>, RoundError> {
        let Some(round) = self.store.finish(round_id, now).await? else {
            return Ok(None);
        };
        let tick = Tick {
            reason: "round-ended".into(),
            round_id: round_id.to_owned(),
        };
        self.ticks.send(&tick, Duration::ZERO).await?;
        let ended = Ended {
            round,
            ended_at: now,
        };
        ended.log();
        Ok(Some(ended))
    }

    /// Counts a job of `round_id` done (replaced by `pieces` requeued jobs), and ends the
    /// round when it was the last.
    pub async fn job_done(
        &self,
        round_id: &str,
        job_key: &str,
        pieces: u64,
        now: i64,
    ) -> Result<Option<Ended>, RoundError> {
        match self.store.job_done(round_id, job_key, pieces, now).await? {
            Some(_) => self.end(round_id, now).await,
            None => Ok(None),
        }
    }
}

/// A round that ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub round: RoundState,
    pub ended_at: i64,
}

impl Ended {
    /// ms from the round's start to its end.
    pub fn duration_ms(&self) -> i64 {
        (self.ended_at - self.round.started_at).max(0)
    }

    /// ms from the oldest change the round carried to the end of the round: by then every
    /// connection holds that value or a newer one.
    pub fn staleness_ms(&self) -> Option<i64> {
        self.round
            .oldest_change
            .map(|oldest| (self.ended_at - oldest).max(0))
    }

    pub fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("rounds");
        metrics
            .add("RoundDuration", self.duration_ms())
            .expect("catalogued rounds metric");
        metrics
            .add("RoundEntities", self.round.entities)
            .expect("catalogued rounds metric");
        if let Some(staleness) = self.staleness_ms() {
            metrics
                .add("Staleness", staleness)
                .expect("catalogued rounds metric");
        }
        metrics.property("roundId", json!(self.round.round_id));
        metrics
    }

    fn log(&self) {
        tracing::info!(
            round_id = %self.round.round_id,
            duration_ms = self.duration_ms(),
            staleness_ms = self.staleness_ms(),
            entities = self.round.entities,
            "round ended"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_round_reports_its_duration_and_staleness() {
        let ended = Ended {
            round: RoundState {
                round_id: "r-1".into(),
                started_at: 10_000,
                oldest_change: Some(8_000),
                entities: 3,
                ..RoundState::default()
            },
            ended_at: 14_000,
        };
        assert_eq!(ended.duration_ms(), 4_000);
        assert_eq!(ended.staleness_ms(), Some(6_000));
        let metrics = ended.metrics();
        assert_eq!(metrics.value("Staleness"), Some(&json!(6_000)));
        assert_eq!(metrics.value("RoundEntities"), Some(&json!(3)));
    }
}
