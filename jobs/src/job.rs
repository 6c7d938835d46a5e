//! The `FanoutJob`: one shard of one broadcast, as an SQS message body.
//!
//! ```json
//! {"v":1,"broadcastId":"b-…","attempt":0,"enqueuedAt":1764104603000,
//!  "parts":[{"type":"METRICS_UPDATE",…}],"connections":["L0SM9cOFvHcCIhw=",…]}
//! ```
//! `parts` are the exact messages clients receive, embedded as raw JSON (not re-escaped
//! strings) so a job costs little more than its payload and the poster sends the bytes as they
//! are. The version lets a new processor and an old fanout (or the reverse) refuse each
//! other's jobs loudly instead of misreading them.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FanoutJob {
    pub v: u32,
    pub broadcast_id: String,
    /// 0 when the processor sends it; +1 at each requeue.
    pub attempt: u32,
    /// Epoch ms when the processor first enqueued this shard (kept across requeues, so
    /// delivery latency includes the retries).
    pub enqueued_at: i64,
    /// The messages to post, in order; each is at most 128 KB.
    pub parts: Vec<Box<RawValue>>,
    /// The shard's connection ids.
    pub connections: Vec<String>,
    /// The broadcast round this job belongs to (`BROADCAST_MODE=rounds`); absent in batch
    /// mode and from older processors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<RoundRef>,
}

/// A job's place in a broadcast round: the round, and the job's key within it. A requeued
/// piece has a key of its own below its parent's, so that the round counts each piece once
/// however often SQS delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRef {
    pub id: String,
    pub job: String,
}

impl RoundRef {
    pub fn job(round_id: &str, index: u64) -> Self {
        Self {
            id: round_id.to_owned(),
            job: index.to_string(),
        }
    }

    /// The key of the piece a job is requeued as, resuming at `part` on `attempt`.
    pub fn piece(&self, attempt: u32, part: usize) -> Self {
        Self {
            id: self.id.clone(),
            job: format!("{}.{attempt}.{part}", self.job),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error("job is not valid JSON or misses fields: {0}")]
    Malformed(String),
    #[error("job version {found} is not understood (this build reads version {VERSION})")]
    UnknownVersion { found: u64 },
    #[error("job has no {0}")]
    Empty(&'static str),
    #[error("job is {size} bytes encoded; the queue's limit is {max}")]
    TooLarge { size: usize, max: usize },
}

impl FanoutJob {
    pub fn new(
        broadcast_id: impl Into<String>,
        enqueued_at: i64,
        parts: Vec<Box<RawValue>>,
        connections: Vec<String>,
    ) -> Self {
        Self {
            v: VERSION,
            broadcast_id: broadcast_id.into(),
            attempt: 0,
            enqueued_at,
            parts,
            connections,
            round: None,
        }
    }

    /// The same job, part of `round`.
    pub fn in_round(self, round: RoundRef) -> Self {
        Self {
            round: Some(round),
            ..self
        }
    }

    /// The same broadcast for other connections from part `from_part` (0-based) on, one attempt
    /// later: a piece of its round of its own.
    pub fn retry(&self, from_part: usize, connections: Vec<String>) -> Self {
        let attempt = self.attempt + 1;
        Self {
            v: self.v,
            broadcast_id: self.broadcast_id.clone(),
            attempt,
            enqueued_at: self.enqueued_at,
            parts: self.parts[from_part.min(self.parts.len())..].to_vec(),
            connections,
            round: self.round.as_ref().map(|r| r.piece(attempt, from_part)),
        }
    }

    /// The message body, refused when over `max_bytes` (the queue's maximum message size).
    pub fn encode(&self, max_bytes: usize) -> Result<String, JobError> {
        let body = serde_json::to_string(self).expect("jobs always serialize");
        if body.len() > max_bytes {
            return Err(JobError::TooLarge {
                size: body.len(),
                max: max_bytes,
            });
        }
        Ok(body)
    }

    /// Bytes the encoding grows by per connection id (quotes and a comma).
    pub fn id_overhead(connection_id: &str) -> usize {
        connection_id.len() + 3
    }

    pub fn decode(body: &str) -> Result<Self, JobError> {
        #[derive(Deserialize)]
        struct Envelope {
            v: u64,
        }
        let envelope: Envelope =
            serde_json::from_str(body).map_err(|e| JobError::Malformed(e.to_string()))?;
        if envelope.v != u64::from(VERSION) {
            return Err(JobError::UnknownVersion { found: envelope.v });
        }
        let job: Self =
            serde_json::from_str(body).map_err(|e| JobError::Malformed(e.to_string()))?;
        if job.parts.is_empty() {
            return Err(JobError::Empty("parts"));
        }
        if job.connections.is_empty() {
            return Err(JobError::Empty("connections"));
        }
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;

    fn part(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn job() -> FanoutJob {
        FanoutJob::new(
            "b-1",
            1_764_104_603_000,
            vec![part(r#"{"type":"METRICS_UPDATE","updates":[]}"#)],
            vec!["a=".into(), "b=".into()],
        )
    }

    #[test]
    fn encoding_embeds_parts_as_raw_json() {
        let body = job().encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES).unwrap();
        assert_eq!(
            body,
            r#"{"v":1,"broadcastId":"b-1","attempt":0,"enqueuedAt":1764104603000,"parts":[{"type":"METRICS_UPDATE","updates":[]}],"connections":["a=","b="]}"#
        );
        let back = FanoutJob::decode(&body).unwrap();
        assert_eq!(
            back.parts[0].get(),
            r#"{"type":"METRICS_UPDATE","updates":[]}"#
        );
        assert_eq!(back.connections, ["a=", "b="]);
        assert_eq!(back.attempt, 0);
    }

    #[test]
    fn the_size_limit_is_checked_exactly() {
        let body = job().encode(usize::MAX).unwrap();
        assert!(job().encode(body.len()).is_ok());
        assert_eq!(
            job().encode(body.len() - 1),
            Err(JobError::TooLarge {
                size: body.len(),
                max: body.len() - 1
            })
        );
    }

    #[test]
    fn id_overhead_predicts_the_growth() {
        let mut j = job();
        let before = j.encode(usize::MAX).unwrap().len();
        j.connections.push("L0SM9cOFvHcCIhw=".into());
        let after = j.encode(usize::MAX).unwrap().len();
        assert_eq!(after - before, FanoutJob::id_overhead("L0SM9cOFvHcCIhw="));
    }

    #[test]
    fn retries_keep_the_broadcast_and_count_attempts() {
        let retried = job().retry(0, vec!["b=".into()]);
        assert_eq!(retried.attempt, 1);
        assert_eq!(retried.round, None);
        assert_eq!(retried.broadcast_id, "b-1");
        assert_eq!(retried.enqueued_at, 1_764_104_603_000);
        assert_eq!(retried.connections, ["b="]);
    }

    #[test]
    fn a_job_keeps_its_round_and_each_requeued_piece_gets_its_own_key() {
        let mut two_parts = job();
        two_parts
            .parts
            .push(part(r#"{"type":"METRICS_UPDATE","part":2}"#));
        let job = two_parts.in_round(RoundRef::job("r-1", 4));
        let body = job.encode(usize::MAX).unwrap();
        assert!(
            body.ends_with(r#","round":{"id":"r-1","job":"4"}}"#),
            "{body}"
        );
        assert_eq!(FanoutJob::decode(&body).unwrap().round, job.round);
        let piece = job.retry(1, vec!["b=".into()]);
        assert_eq!(piece.parts.len(), 1);
        assert_eq!(
            piece.round,
            Some(RoundRef {
                id: "r-1".into(),
                job: "4.1.1".into()
            })
        );
        assert_ne!(piece.round, job.retry(0, vec!["b=".into()]).round);
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        assert!(matches!(
            FanoutJob::decode("nope"),
            Err(JobError::Malformed(_))
        ));
        assert!(matches!(
            FanoutJob::decode(r#"{"v":1}"#),
            Err(JobError::Malformed(_))
        ));
        assert_eq!(
            FanoutJob::decode(r#"{"v":2,"anything":true}"#).unwrap_err(),
            JobError::UnknownVersion { found: 2 }
        );
        let no_ids =
            r#"{"v":1,"broadcastId":"b","attempt":0,"enqueuedAt":0,"parts":[{}],"connections":[]}"#;
        assert_eq!(
            FanoutJob::decode(no_ids).unwrap_err(),
            JobError::Empty("connections")
        );
        let no_parts = r#"{"v":1,"broadcastId":"b","attempt":0,"enqueuedAt":0,"parts":[],"connections":["a"]}"#;
        assert_eq!(
            FanoutJob::decode(no_parts).unwrap_err(),
            JobError::Empty("parts")
        );
    }
}
