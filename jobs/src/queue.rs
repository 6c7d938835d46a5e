//! The SQS adapter for `FanoutJob`s: single delayed sends (requeues) and packed batches (the
//! processor's shards).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::stream::{self, StreamExt, TryStreamExt};
use platform::Backoff;
use platform::pack::pack;

use crate::job::{FanoutJob, JobError};
use crate::settings::QueueSettings;

/// SQS's limit of entries per SendMessageBatch.
pub const BATCH_ENTRIES: usize = 10;
/// Attempts at a batch's failed entries before the send is reported failed.
const ENTRY_ATTEMPTS: u32 = 5;
/// Between attempts at a batch's failed entries.
const ENTRY_BACKOFF: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error("SQS {operation} to {queue} failed: {detail}")]
    Sqs {
        operation: &'static str,
        queue: String,
        detail: String,
    },
    #[error("{count} messages to {queue} still failed after {ENTRY_ATTEMPTS} attempts: {detail}")]
    EntriesFailed {
        queue: String,
        count: usize,
        detail: String,
    },
}

#[derive(Clone, Debug)]
pub struct JobQueue {
    client: Client,
    url: String,
    max_message_bytes: usize,
}

impl JobQueue {
    pub fn new(client: Client, settings: &QueueSettings) -> Self {
        Self {
            client,
            url: settings.url.clone(),
            max_message_bytes: settings.max_message_bytes,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The queue's MaximumMessageSize; a message, and a batch in total, stays under it.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Sends one job, visible after `delay` (at most 15 minutes).
    pub async fn send_delayed(&self, job: &FanoutJob, delay: Duration) -> Result<(), QueueError> {
        let body = job.encode(self.max_message_bytes)?;
        let seconds = i32::try_from(delay.as_secs().min(900)).expect("<= 900");
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| self.sqs_error("SendMessage", &e))?;
        Ok(())
    }

    /// Sends jobs in SendMessageBatch calls of at most 10 entries and `max_message_bytes` in
    /// all, `concurrency` calls at once; failed entries are retried. Returns the number sent.
    pub async fn send_all(
        &self,
        jobs: &[FanoutJob],
        concurrency: usize,
    ) -> Result<usize, QueueError> {
        let bodies = jobs
            .iter()
            .map(|job| job.encode(self.max_message_bytes))
            .collect::<Result<Vec<_>, _>>()?;
        stream::iter(batches(bodies, self.max_message_bytes))
            .map(|batch| self.send_batch(batch))
            .buffer_unordered(concurrency.max(1))
            .try_fold(0, |sent, n| async move { Ok(sent + n) })
            .await
    }

    async fn send_batch(&self, mut bodies: Vec<String>) -> Result<usize, QueueError> {
        let total = bodies.len();
        let mut detail = String::new();
        for attempt in 0..ENTRY_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(ENTRY_BACKOFF.delay(attempt)).await;
            }
            let entries = bodies
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let output = match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => output,
                Err(e) => {
                    detail = DisplayErrorContext(&e).to_string();
                    tracing::warn!(queue = %self.url, attempt, error = %detail, "SendMessageBatch failed");
                    continue;
                }
            };
            if output.failed.is_empty() {
                return Ok(total);
            }
            let failed: Vec<usize> = output
                .failed
                .iter()
                .filter_map(|f| f.id.parse().ok())
                .collect();
            detail = output
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.code, f.message.as_deref().unwrap_or("")))
                .collect::<Vec<_>>()
                .join("; ");
            if output.failed.iter().any(|f| f.sender_fault) {
                // The request itself is wrong (size, content): retrying cannot fix it.
                break;
            }
            tracing::warn!(queue = %self.url, attempt, failed = failed.len(), %detail, "batch entries failed; retrying them");
            bodies = failed
                .into_iter()
                .filter_map(|i| bodies.get(i).cloned())
                .collect();
        }
        Err(QueueError::EntriesFailed {
            queue: self.url.clone(),
            count: bodies.len(),
            detail,
        })
    }

    fn sqs_error<E: std::error::Error + 'static>(
        &self,
        operation: &'static str,
        error: &E,
    ) -> QueueError {
        QueueError::Sqs {
            operation,
            queue: self.url.clone(),
            detail: DisplayErrorContext(error).to_string(),
        }
    }
}

/// Groups bodies, in order, into batches of at most 10 entries and `max_bytes` in total.
pub fn batches(bodies: Vec<String>, max_bytes: usize) -> Vec<Vec<String>> {
    pack(bodies, max_bytes, BATCH_ENTRIES, String::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_entries_and_bytes() {
        let bodies: Vec<String> = (0..25).map(|i| "x".repeat(100 + i)).collect();
        let packed = batches(bodies.clone(), 1_000_000);
        assert_eq!(packed.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
        assert_eq!(packed.concat(), bodies, "order and content kept");

        let packed = batches(bodies.clone(), 450);
        assert!(
            packed
                .iter()
                .all(|b| b.iter().map(String::len).sum::<usize>() <= 450)
        );
        assert_eq!(packed.concat(), bodies);
        assert!(batches(Vec::new(), 10).is_empty());
    }
}
