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
        }
    }

    /// The same broadcast for other connections (and possibly fewer parts), one attempt later.
    pub fn retry(&self, parts: Vec<Box<RawValue>>, connections: Vec<String>) -> Self {
        Self {
            attempt: self.attempt + 1,
            parts,
            connections,
            ..self.clone()
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
        let retried = job().retry(vec![part("{}")], vec!["b=".into()]);
        assert_eq!(retried.attempt, 1);
        assert_eq!(retried.broadcast_id, "b-1");
        assert_eq!(retried.enqueued_at, 1_764_104_603_000);
        assert_eq!(retried.connections, ["b="]);
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
