//! DynamoDB Streams -> a function, as Lambda's stream event source mapping does it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsOutput;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use futures::future::BoxFuture;
use platform::clock::now_ms;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{Function, InvokeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSourceConfig {
    /// Records per invocation (production: 100).
    pub batch_size: usize,
    /// How long a partial batch waits for more records (production: 5 s).
    pub window: Duration,
    /// Retries of a failing batch before it is bisected or sent to the on-failure destination
    /// (production: 3).
    pub retries: u32,
    pub bisect_on_error: bool,
    /// Pause between GetRecords calls that returned nothing.
    pub poll_interval: Duration,
}

impl Default for StreamSourceConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            window: Duration::from_secs(5),
            retries: 3,
            bisect_on_error: true,
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// What a stream poller has done; readable while it runs.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub invocations: AtomicU64,
    pub records: AtomicU64,
    pub failed_invocations: AtomicU64,
    /// Batches sent to the on-failure destination.
    pub discarded_batches: AtomicU64,
    /// ms between the newest delivered record's creation and its delivery.
    pub iterator_age_ms: AtomicI64,
}

/// Where a batch that keeps failing goes (an SQS queue, as production's on-failure destination).
#[derive(Clone, Debug)]
pub struct OnFailure {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
}

pub struct StreamPoller {
    pub client: Client,
    pub stream_arn: String,
    pub config: StreamSourceConfig,
    pub function: Arc<dyn Function<Event, ()>>,
    pub on_failure: OnFailure,
    pub stats: Arc<StreamStats>,
}

impl StreamPoller {
    /// Polls every shard of the stream until `stop`, from the oldest record (a fresh local
    /// table has nothing older than the stack).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut running: std::collections::HashMap<String, tokio::task::JoinHandle<()>> =
            Default::default();
        while !stop.is_cancelled() {
            match self.shards().await {
                Ok(shards) => {
                    for shard in shards {
                        if running.contains_key(&shard) {
                            continue;
                        }
                        let poller = self.clone();
                        let stop = stop.clone();
                        let id = shard.clone();
                        running.insert(
                            shard,
                            tokio::spawn(async move { poller.poll_shard(id, stop).await }),
                        );
                    }
                }
                Err(e) => warn!(stream = %self.stream_arn, error = %e, "DescribeStream failed"),
            }
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
        for (_, task) in running {
            let _ = task.await;
        }
    }

    async fn shards(&self) -> Result<Vec<String>, InvokeError> {
        let out = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await?;
        Ok(out
            .stream_description
            .map(|d| d.shards.unwrap_or_default())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.shard_id)
            .collect())
    }

    /// Reads one shard from its oldest record, batching as the mapping does (batch size,
    /// window), until the shard ends or `stop`.
    async fn poll_shard(&self, shard_id: String, stop: CancellationToken) {
        let mut iterator = self.first_iterator(&shard_id).await;
        let mut batch = PendingBatch::new();
        while let Some(current) = iterator.take() {
            if stop.is_cancelled() {
                break;
            }
            let room = batch.room(self.config.batch_size);
            let Some(out) = self.get_records(&shard_id, &current, room).await else {
                iterator = Some(current);
                tokio::time::sleep(self.config.poll_interval).await;
                continue;
            };
            iterator = out.next_shard_iterator;
            let records = out.records.unwrap_or_default();
            let got_records = !records.is_empty();
            let records = records.iter().map(|r| lambda_record(r, &self.stream_arn));
            batch.add(records, self.config.window);
            if batch.is_ready(self.config.batch_size, iterator.is_none()) {
                self.deliver(&shard_id, batch.take()).await;
            }
            if !got_records && !pause(self.config.poll_interval, &stop).await {
                break;
            }
        }
        info!(shard_id, "stream shard poller stopped");
    }

    async fn first_iterator(&self, shard_id: &str) -> Option<String> {
        self.client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .inspect_err(|e| error!(shard_id, error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(e), "GetShardIterator failed"))
            .ok()?
            .shard_iterator
    }

    /// One GetRecords call; `None` (logged) when it failed and should be retried.
    async fn get_records(
        &self,
        shard_id: &str,
        iterator: &str,
        room: i32,
    ) -> Option<GetRecordsOutput> {
        self.client
            .get_records()
            .shard_iterator(iterator)
            .limit(room)
            .send()
            .await
            .inspect_err(|e| warn!(shard_id, error = %aws_sdk_dynamodbstreams::error::DisplayErrorContext(e), "GetRecords failed; retrying"))
            .ok()
    }

    /// Invokes the function with `records`, retrying; a batch that keeps failing is bisected
    /// (each half retried afresh) down to single records, which go to the on-failure destination.
    fn deliver<'a>(&'a self, shard_id: &'a str, records: Vec<Value>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for attempt in 0..=self.config.retries {
                let event: Event = match serde_json::from_value(json!({ "Records": records })) {
                    Ok(event) => event,
                    Err(e) => {
                        error!(shard_id, error = %e, "stream records do not form a Lambda event");
                        break;
                    }
                };
                let newest = event
                    .records
                    .iter()
                    .map(|r| r.change.approximate_creation_date_time.timestamp_millis())
                    .max()
                    .unwrap_or_default();
                self.stats.invocations.fetch_add(1, Ordering::Relaxed);
                match self.function.invoke(event).await {
                    Ok(()) => {
                        self.stats
                            .records
                            .fetch_add(records.len() as u64, Ordering::Relaxed);
                        self.stats
                            .iterator_age_ms
                            .store(now_ms() - newest, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => {
                        self.stats
                            .failed_invocations
                            .fetch_add(1, Ordering::Relaxed);
                        warn!(shard_id, attempt, records = records.len(), error = %e, "stream batch failed");
                        tokio::time::sleep(Duration::from_millis(200) * (attempt + 1)).await;
                    }
                }
            }
            if self.config.bisect_on_error && records.len() > 1 {
                let mut first = records;
                let second = first.split_off(first.len() / 2);
                self.deliver(shard_id, first).await;
                self.deliver(shard_id, second).await;
                return;
            }
            self.discard(shard_id, &records).await;
        })
    }

    /// Sends what Lambda sends to an on-failure destination: where the batch was, not its data.
    async fn discard(&self, shard_id: &str, records: &[Value]) {
        self.stats.discarded_batches.fetch_add(1, Ordering::Relaxed);
        let sequence = |r: Option<&Value>| {
            r.map(|r| r["dynamodb"]["SequenceNumber"].clone())
                .unwrap_or(Value::Null)
        };
        let body = json!({
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": self.config.retries + 1},
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": sequence(records.first()),
                "endSequenceNumber": sequence(records.last()),
                "batchSize": records.len(),
                "streamArn": self.stream_arn,
            }
        });
        error!(
            shard_id,
            records = records.len(),
            "stream batch discarded to the on-failure destination"
        );
        if let Err(e) = self
            .on_failure
            .sqs
            .send_message()
            .queue_url(&self.on_failure.queue_url)
            .message_body(body.to_string())
            .send()
            .await
        {
            error!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not write to the on-failure destination");
        }
    }
}

/// Records read but not yet delivered, and when their batching window ends.
struct PendingBatch {
    records: Vec<Value>,
    window_ends: Instant,
}

impl PendingBatch {
    fn new() -> Self {
        Self {
            records: Vec::new(),
            window_ends: Instant::now(),
        }
    }

    /// How many records the next GetRecords call may return.
    fn room(&self, batch_size: usize) -> i32 {
        i32::try_from(batch_size.saturating_sub(self.records.len()))
            .unwrap_or(1000)
            .clamp(1, 1000)
    }

    /// Adds records; the first records of an empty batch open its window.
    fn add(&mut self, records: impl ExactSizeIterator<Item = Value>, window: Duration) {
        if self.records.is_empty() && records.len() > 0 {
            self.window_ends = Instant::now() + window;
        }
        self.records.extend(records);
    }

    /// Full, its window over, or the shard has ended: deliver now.
    fn is_ready(&self, batch_size: usize, shard_ended: bool) -> bool {
        if self.records.is_empty() {
            return false;
        }
        self.records.len() >= batch_size || Instant::now() >= self.window_ends || shard_ended
    }

    fn take(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.records)
    }
}

/// Waits `interval`; `false` if `stop` came first.
async fn pause(interval: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(interval) => true,
    }
}

/// Whether every attribute has a type this SDK knows: serde_dynamo panics on `Unknown` (a type
/// newer than the SDK), so such an image goes on as absent and the processor skips the record
/// and counts it, instead of the shard's poller dying.
fn known(value: &aws_sdk_dynamodbstreams::types::AttributeValue) -> bool {
    use aws_sdk_dynamodbstreams::types::AttributeValue as A;
    match value {
        A::M(map) => map.values().all(known),
        A::L(list) => list.iter().all(known),
        A::S(_) | A::N(_) | A::B(_) | A::Ss(_) | A::Ns(_) | A::Bs(_) | A::Bool(_) | A::Null(_) => {
            true
        }
        _ => false,
    }
}

/// One stream record in the JSON form Lambda delivers.
pub fn lambda_record(record: &Record, stream_arn: &str) -> Value {
    let change = record.dynamodb.as_ref();
    let image = |image: Option<
        &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>,
    >| {
        image
            .filter(|m| m.values().all(known))
            .map_or(Value::Null, |m| {
                serde_json::to_value(serde_dynamo::Item::from(m.clone())).unwrap_or(Value::Null)
            })
    };
    json!({
        "eventID": record.event_id,
        "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": record.event_version.as_deref().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.aws_region.as_deref().unwrap_or("us-east-1"),
        "eventSourceARN": stream_arn,
        "dynamodb": {
            "ApproximateCreationDateTime": change
                .and_then(|c| c.approximate_creation_date_time)
                .map_or(now_ms() / 1000, |t| t.secs()),
            "Keys": image(change.and_then(|c| c.keys.as_ref())),
            "NewImage": image(change.and_then(|c| c.new_image.as_ref())),
            "OldImage": image(change.and_then(|c| c.old_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
            "SizeBytes": change.and_then(|c| c.size_bytes),
            "StreamViewType": change.and_then(|c| c.stream_view_type.as_ref()).map(|v| v.as_str()),
        }
    })
}

#[cfg(test)]
mod known_tests {
    use super::*;
    use aws_sdk_dynamodbstreams::types::AttributeValue as A;

    /// `Unknown` cannot be built outside the SDK; every type it can build is known, at any depth.
    #[test]
    fn every_attribute_type_the_sdk_builds_is_known_at_any_depth() {
        let all = vec![
            A::S("x".into()),
            A::N("1".into()),
            A::B(aws_sdk_dynamodbstreams::primitives::Blob::new(vec![1])),
            A::Ss(vec!["a".into()]),
            A::Ns(vec!["1".into()]),
            A::Bs(vec![aws_sdk_dynamodbstreams::primitives::Blob::new(vec![
                2,
            ])]),
            A::Bool(true),
            A::Null(true),
        ];
        let nested = A::M([("l".to_owned(), A::L(all))].into());
        assert!(known(&nested));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> std::vec::IntoIter<Value> {
        vec![json!({}); n].into_iter()
    }

    #[test]
    fn a_batch_is_delivered_when_full_when_its_window_ends_or_when_the_shard_ends() {
        let hour = Duration::from_secs(3600);
        let mut batch = PendingBatch::new();
        assert!(!batch.is_ready(3, true), "nothing to deliver");
        assert_eq!(batch.room(3), 3);
        batch.add(records(2), hour);
        assert!(!batch.is_ready(3, false));
        assert!(batch.is_ready(3, true));
        assert_eq!(batch.room(3), 1);
        batch.add(records(1), hour);
        assert!(batch.is_ready(3, false));
        assert_eq!(batch.take().len(), 3);
        assert_eq!(batch.room(5000), 1000, "GetRecords' own limit");

        // A window of zero is over as soon as the first records arrive.
        batch.add(records(1), Duration::ZERO);
        assert!(batch.is_ready(3, false));
    }

    #[test]
    fn an_empty_read_does_not_open_the_window() {
        let mut batch = PendingBatch::new();
        batch.add(records(0), Duration::ZERO);
        batch.add(records(1), Duration::from_secs(3600));
        assert!(!batch.is_ready(3, false));
    }
}
