//! SQS -> a function, as Lambda's SQS event source mapping does it: long polling, batches,
//! `concurrency` invocations at once, handled messages deleted, failed ones left for the
//! visibility timeout (and so, in the end, the queue's redrive to its DLQ).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::Function;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSourceConfig {
    /// Messages per invocation (1..=10).
    pub batch_size: i32,
    /// Long-poll wait (production: up to 20 s).
    pub wait: Duration,
    /// Invocations at once: the mapping's maximum concurrency.
    pub concurrency: usize,
}

impl Default for QueueSourceConfig {
    fn default() -> Self {
        Self {
            batch_size: 10,
            wait: Duration::from_secs(1),
            concurrency: 4,
        }
    }
}

#[derive(Debug, Default)]
pub struct QueueStats {
    pub invocations: AtomicU64,
    pub messages: AtomicU64,
    pub deleted: AtomicU64,
    /// Messages returned to the queue (batch item failures or failed invocations).
    pub returned: AtomicU64,
}

pub struct QueuePoller {
    pub sqs: Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub config: QueueSourceConfig,
    pub function: Arc<dyn Function<SqsEvent, SqsBatchResponse>>,
    pub stats: Arc<QueueStats>,
}

impl QueuePoller {
    /// Runs `concurrency` pollers until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let workers: Vec<_> = (0..self.config.concurrency.max(1))
            .map(|_| {
                let poller = self.clone();
                let stop = stop.clone();
                tokio::spawn(async move { poller.work(stop).await })
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
    }

    async fn work(&self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let received = tokio::select! {
                () = stop.cancelled() => break,
                received = self
                    .sqs
                    .receive_message()
                    .queue_url(&self.queue_url)
                    .max_number_of_messages(self.config.batch_size.clamp(1, 10))
                    .wait_time_seconds(i32::try_from(self.config.wait.as_secs()).unwrap_or(20).min(20))
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send() => received,
            };
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    warn!(queue = %self.queue_url, error = %DisplayErrorContext(&e), "ReceiveMessage failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                // moto answers an empty queue at once instead of waiting.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            self.invoke(messages).await;
        }
    }

    /// One invocation: the batch in, then the handled messages deleted and the failed ones
    /// left to come back after the visibility timeout.
    async fn invoke(&self, messages: Vec<Message>) {
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.stats
            .messages
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let Some(event) = self.lambda_event(&messages) else {
            return;
        };
        let failed = self.failed_ids(&messages, event).await;
        self.stats
            .returned
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        self.delete(handled_entries(&messages, &failed)).await;
    }

    fn lambda_event(&self, messages: &[Message]) -> Option<SqsEvent> {
        let records: Vec<Value> = messages.iter().map(|m| self.lambda_record(m)).collect();
        serde_json::from_value(json!({ "Records": records }))
            .inspect_err(|e| error!(error = %e, "SQS messages do not form a Lambda event"))
            .ok()
    }

    /// Invokes the function; the ids it reports as batch item failures, or every id when the
    /// invocation itself fails.
    async fn failed_ids(&self, messages: &[Message], event: SqsEvent) -> Vec<String> {
        match self.function.invoke(event).await {
            Ok(response) => response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Err(e) => {
                warn!(queue = %self.queue_url, error = %e, "invocation failed; the whole batch returns to the queue");
                messages
                    .iter()
                    .filter_map(|m| m.message_id.clone())
                    .collect()
            }
        }
    }

    /// Deletes the handled messages; any left undeleted are delivered again, as on AWS.
    async fn delete(&self, entries: Vec<DeleteMessageBatchRequestEntry>) {
        if entries.is_empty() {
            return;
        }
        let count = entries.len() as u64;
        match self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                let failed = out.failed.len() as u64;
                self.stats
                    .deleted
                    .fetch_add(count - failed, Ordering::Relaxed);
                if failed > 0 {
                    warn!(
                        failed,
                        "DeleteMessageBatch left messages; they will be delivered again"
                    );
                }
            }
            Err(e) => {
                warn!(error = %DisplayErrorContext(&e), "DeleteMessageBatch failed; the messages will be delivered again")
            }
        }
    }

    /// One message in the JSON form Lambda delivers.
    fn lambda_record(&self, message: &Message) -> Value {
        let attributes: serde_json::Map<String, Value> = message
            .attributes
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
            .collect();
        json!({
            "messageId": message.message_id,
            "receiptHandle": message.receipt_handle,
            "body": message.body.as_deref().unwrap_or_default(),
            "attributes": attributes,
            "messageAttributes": {},
            "md5OfBody": message.md5_of_body,
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        })
    }
}

/// Delete entries for the messages whose ids are not in `failed`.
fn handled_entries(messages: &[Message], failed: &[String]) -> Vec<DeleteMessageBatchRequestEntry> {
    messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.message_id.as_ref().is_none_or(|id| !failed.contains(id)))
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle.clone())
                .build()
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: Option<&str>, receipt: &str) -> Message {
        Message::builder()
            .set_message_id(id.map(str::to_owned))
            .receipt_handle(receipt)
            .build()
    }

    #[test]
    fn failed_messages_are_left_and_the_rest_deleted() {
        let messages = [
            message(Some("a"), "ra"),
            message(Some("b"), "rb"),
            message(None, "rc"),
        ];
        let entries = handled_entries(&messages, &["b".to_owned()]);
        let handles: Vec<&str> = entries.iter().map(|e| e.receipt_handle()).collect();
        assert_eq!(handles, ["ra", "rc"]);
        let ids: Vec<&str> = entries.iter().map(|e| e.id()).collect();
        assert_eq!(ids, ["0", "2"], "entry ids are unique within the batch");
    }
}
