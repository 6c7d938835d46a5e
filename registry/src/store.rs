//! The DynamoDB adapter for the connections table.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest,
    ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use platform::Backoff;

use crate::config::RegistryConfig;
use crate::connection::{Connection, expiry};
use crate::filter::{Filter, Interest};
use crate::sampler::LogSampler;

/// DynamoDB's BatchWriteItem limit.
pub const BATCH_WRITE_LIMIT: usize = 25;
/// DynamoDB's BatchGetItem limit.
const BATCH_GET_LIMIT: usize = 100;
/// Attempts at a batch's unprocessed items before giving up (DynamoDB returns them when a
/// partition is throttled; the SDK does not retry them).
const BATCH_ATTEMPTS: u32 = 8;
/// Batches written at once by [`Registry::remove_many`].
const BATCH_CONCURRENCY: usize = 4;
/// Failed reads in front of a ttl refresh (a missing `dynamodb:GetItem` grant would fail
/// every ping): logged a few times a minute, not once per ping.
static READ_FAILURES: LogSampler = LogSampler::new(5, 60_000);
/// Between attempts at unprocessed items.
const UNPROCESSED_BACKOFF: Backoff =
    Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("DynamoDB {operation} on {table} failed: {detail}")]
    Dynamo {
        operation: &'static str,
        table: String,
        detail: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("{count} writes to {table} were still unprocessed after {BATCH_ATTEMPTS} attempts")]
    Unprocessed { table: String, count: usize },
    #[error("connection item could not be converted: {0}")]
    Item(#[from] serde_dynamo::Error),
}

/// What a ping did to its connection's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// `ttl` and `lastSeenAt` were written.
    Refreshed,
    /// Nothing was written: the row was refreshed within the touch interval.
    Recent,
    /// Nothing was written: the connection has no row (removed; a ping must not resurrect it).
    Gone,
}

/// One GSI Query page: the ids of live connections in one bucket (possibly none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub partition: String,
    pub connection_ids: Vec<String>,
    /// What the page's connections with a filter or a token limit receive (the others
    /// receive everything). From the GSI's projection: no read per connection.
    pub interests: HashMap<String, Interest>,
}

/// The connections table. Cheap to clone: the SDK client is shared.
#[derive(Clone, Debug)]
pub struct Registry {
    client: Client,
    config: RegistryConfig,
}

impl Registry {
    pub fn new(client: Client, config: RegistryConfig) -> Self {
        Self { client, config }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes the row of a new connection (replacing any row with that id).
    pub async fn register(&self, connection: &Connection) -> Result<(), RegistryError> {
        self.client
            .put_item()
            .table_name(&self.config.table_name)
            .set_item(Some(serde_dynamo::to_item(connection)?))
            .send()
            .await
            .map_err(|e| self.dynamo("PutItem", e))?;
        Ok(())
    }

    /// Removes a connection's row; removing an unknown id succeeds.
    pub async fn remove(&self, connection_id: &str) -> Result<(), RegistryError> {
        self.client
            .delete_item()
            .table_name(&self.config.table_name)
            .key("connectionId", AttributeValue::S(connection_id.to_owned()))
            .send()
            .await
            .map_err(|e| self.dynamo("DeleteItem", e))?;
        Ok(())
    }

    /// Writes many rows with BatchWriteItem (seeding a benchmark, restoring a backup).
    pub async fn register_many(&self, connections: &[Connection]) -> Result<(), RegistryError> {
        let requests = connections
            .iter()
            .map(|connection| {
                let put = PutRequest::builder()
                    .set_item(Some(serde_dynamo::to_item(connection)?))
                    .build()
                    .expect("item is set");
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, RegistryError>>()?;
        self.write_all(requests).await
    }

    /// Removes many rows with BatchWriteItem, 25 at a time, retrying unprocessed items with
    /// backoff. Duplicate ids are removed once (a batch may not name a key twice).
    pub async fn remove_many(&self, connection_ids: &[String]) -> Result<(), RegistryError> {
        let mut seen = HashSet::with_capacity(connection_ids.len());
        let requests = connection_ids
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .map(|id| {
                let delete = DeleteRequest::builder()
                    .key("connectionId", AttributeValue::S(id.clone()))
                    .build()
                    .expect("key is set");
                WriteRequest::builder().delete_request(delete).build()
            })
            .collect();
        self.write_all(requests).await
    }

    async fn write_all(&self, requests: Vec<WriteRequest>) -> Result<(), RegistryError> {
        // Owned chunks: a closure over borrowed slices makes this future's Send bound
        // higher-ranked, which callers spawning it cannot satisfy.
        let chunks: Vec<Vec<WriteRequest>> = requests
            .chunks(BATCH_WRITE_LIMIT)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        stream::iter(chunks)
            .map(|chunk| self.write_batch(chunk))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    /// The subjects of `connection_ids` (those with a row and a subject), read with
    /// BatchGetItem 100 keys at a time; for log lines about connections fan-out gives up on.
    pub async fn subjects(
        &self,
        connection_ids: &[String],
    ) -> Result<HashMap<String, String>, RegistryError> {
        let mut unique: Vec<&String> = connection_ids.iter().collect();
        unique.sort();
        unique.dedup();
        let mut subjects = HashMap::new();
        for chunk in unique.chunks(BATCH_GET_LIMIT) {
            for mut item in self.get_batch(chunk).await? {
                if let (Some(AttributeValue::S(id)), Some(AttributeValue::S(subject))) =
                    (item.remove("connectionId"), item.remove("subject"))
                {
                    subjects.insert(id, subject);
                }
            }
        }
        Ok(subjects)
    }

    async fn get_batch(
        &self,
        ids: &[&String],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, RegistryError> {
        let keys = ids
            .iter()
            .map(|id| {
                HashMap::from([("connectionId".to_owned(), AttributeValue::S((*id).clone()))])
            })
            .collect();
        let mut request = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .projection_expression("connectionId, subject")
                .build()
                .expect("keys are set"),
        );
        let mut items = Vec::new();
        for attempt in 0..BATCH_ATTEMPTS {
            let Some(pending) = request.take() else {
                return Ok(items);
            };
            if attempt > 0 {
                tokio::time::sleep(UNPROCESSED_BACKOFF.delay(attempt)).await;
            }
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.config.table_name, pending)
                .send()
                .await
                .map_err(|e| self.dynamo("BatchGetItem", e))?;
            let table = &self.config.table_name;
            items.extend(
                output
                    .responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default(),
            );
            request = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .filter(|k| !k.keys.is_empty());
        }
        match request {
            None => Ok(items),
            Some(left) => Err(RegistryError::Unprocessed {
                table: self.config.table_name.clone(),
                count: left.keys.len(),
            }),
        }
    }

    async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<(), RegistryError> {
        for attempt in 0..BATCH_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(UNPROCESSED_BACKOFF.delay(attempt)).await;
            }
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.config.table_name, requests)
                .send()
                .await
                .map_err(|e| self.dynamo("BatchWriteItem", e))?;
            requests = output
                .unprocessed_items
                .and_then(|mut items| items.remove(&self.config.table_name))
                .unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tracing::debug!(
                unprocessed = requests.len(),
                attempt,
                "BatchWriteItem left items unprocessed"
            );
        }
        Err(RegistryError::Unprocessed {
            table: self.config.table_name.clone(),
            count: requests.len(),
        })
    }

    /// Refreshes a connection's `ttl` and `lastSeenAt` when the last refresh is older than the
    /// touch interval, so that a client pinging every minute costs one write per interval.
    ///
    /// A failed conditional write still consumes write capacity, so an eventually consistent
    /// read of `lastSeenAt` (a tenth of a write's price) answers the common case first; the
    /// conditional write stays the authority (a stale read costs at most one write). A row the
    /// read does not find still goes to the write, which never creates one.
    pub async fn touch(&self, connection_id: &str, now_ms: i64) -> Result<Touch, RegistryError> {
        // Boxed: two SDK calls nested in the route handler's future overflow rustc's query
        // depth when the `message` bin's future is laid out.
        let interval = self.config.touch_interval_ms();
        if interval > 0 {
            let seen = match Box::pin(self.last_seen_at(connection_id)).await {
                Ok(seen) => seen,
                // The write alone decides then (correctly, at a write's price).
                Err(e) => {
                    if let Some(suppressed) = READ_FAILURES.admit(now_ms) {
                        tracing::warn!(error = %e, suppressed, "could not read lastSeenAt; writing instead");
                    }
                    None
                }
            };
            if seen.is_some_and(|seen| seen >= now_ms.saturating_sub(interval)) {
                return Ok(Touch::Recent);
            }
        }
        Box::pin(self.refresh(connection_id, now_ms)).await
    }

    /// The conditional write behind [`Registry::touch`], without its read: sets `ttl` and
    /// `lastSeenAt` only if the row exists and was not refreshed within the touch interval.
    pub async fn refresh(&self, connection_id: &str, now_ms: i64) -> Result<Touch, RegistryError> {
        let threshold = now_ms.saturating_sub(self.config.touch_interval_ms());
        let result = self
            .client
            .update_item()
            .table_name(&self.config.table_name)
            .key("connectionId", AttributeValue::S(connection_id.to_owned()))
            .update_expression("SET #ttl = :ttl, lastSeenAt = :now")
            .condition_expression(
                "attribute_exists(connectionId) AND \
                 (attribute_not_exists(lastSeenAt) OR lastSeenAt < :threshold)",
            )
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N(expiry(now_ms, self.config.ttl_seconds).to_string()),
            )
            .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(":threshold", AttributeValue::N(threshold.to_string()))
            // On a failed condition, the row (if any) tells "recent enough" from "removed".
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Touch::Refreshed),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(match failed.item() {
                        Some(item) if !item.is_empty() => Touch::Recent,
                        _ => Touch::Gone,
                    })
                }
                _ => Err(self.dynamo("UpdateItem", e)),
            },
        }
    }

    /// The row's `lastSeenAt` (eventually consistent); `None` without a row or a value.
    async fn last_seen_at(&self, connection_id: &str) -> Result<Option<i64>, RegistryError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.config.table_name)
            .key("connectionId", AttributeValue::S(connection_id.to_owned()))
            .projection_expression("lastSeenAt")
            .send()
            .await
            .map_err(|e| self.dynamo("GetItem", e))?;
        Ok(
            match output.item.as_ref().and_then(|i| i.get("lastSeenAt")) {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            },
        )
    }

    /// Replaces the connection's filter. Returns false when the connection has no row (a
    /// filter must not resurrect it).
    pub async fn set_filter(
        &self,
        connection_id: &str,
        filter: &Filter,
    ) -> Result<bool, RegistryError> {
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.config.table_name)
            .key("connectionId", AttributeValue::S(connection_id.to_owned()))
            .condition_expression("attribute_exists(connectionId)");
        for (name, list) in [
            ("entityTypes", &filter.entity_types),
            ("entityIds", &filter.entity_ids),
        ] {
            match list {
                Some(values) => {
                    sets.push(format!("{name} = :{name}"));
                    update = update.expression_attribute_values(
                        format!(":{name}"),
                        AttributeValue::L(values.iter().cloned().map(AttributeValue::S).collect()),
                    );
                }
                None => removes.push(name),
            }
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match update.update_expression(expression.trim()).send().await {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(self.dynamo("UpdateItem", e)),
            },
        }
    }

    /// Reads one row (tests and the local stack use it; fan-out never needs it).
    pub async fn get(&self, connection_id: &str) -> Result<Option<Connection>, RegistryError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.config.table_name)
            .key("connectionId", AttributeValue::S(connection_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.dynamo("GetItem", e))?;
        Ok(output.item.map(serde_dynamo::from_item).transpose()?)
    }

    /// Every live connection, page by page: one GSI Query stream per bucket, the buckets read
    /// concurrently, each page yielded as it arrives. At most one page per bucket is in flight
    /// and nothing is buffered beyond that, so memory does not grow with the registry.
    /// `page_size` caps the items per Query (DynamoDB caps a page at 1 MB anyway).
    pub fn live_connections(
        &self,
        page_size: Option<i32>,
    ) -> BoxStream<'static, Result<Page, RegistryError>> {
        let streams = self
            .config
            .partition_keys()
            .into_iter()
            .map(|partition| self.clone().bucket_pages(partition, page_size));
        stream::select_all(streams).boxed()
    }

    fn bucket_pages(
        self,
        partition: String,
        page_size: Option<i32>,
    ) -> BoxStream<'static, Result<Page, RegistryError>> {
        enum Cursor {
            Start,
            After(HashMap<String, AttributeValue>),
            Done,
        }
        stream::try_unfold(Cursor::Start, move |cursor| {
            let registry = self.clone();
            let partition = partition.clone();
            async move {
                let start_key = match cursor {
                    Cursor::Done => return Ok(None),
                    Cursor::Start => None,
                    Cursor::After(key) => Some(key),
                };
                let output = registry
                    .client
                    .query()
                    .table_name(&registry.config.table_name)
                    .index_name(&registry.config.index_name)
                    .key_condition_expression("connected = :partition")
                    .expression_attribute_values(":partition", AttributeValue::S(partition.clone()))
                    .projection_expression(
                        "connectionId, entityTypes, entityIds, allowedEntityTypes",
                    )
                    .set_limit(page_size)
                    .set_exclusive_start_key(start_key)
                    .send()
                    .await
                    .map_err(|e| registry.dynamo("Query", e))?;
                let mut connection_ids = Vec::new();
                let mut interests = HashMap::new();
                for mut item in output.items.unwrap_or_default() {
                    let Some(AttributeValue::S(id)) = item.remove("connectionId") else {
                        continue;
                    };
                    let interest = interest_of(&item);
                    if !interest.is_everything() {
                        interests.insert(id.clone(), interest);
                    }
                    connection_ids.push(id);
                }
                let next = match output.last_evaluated_key {
                    Some(key) if !key.is_empty() => Cursor::After(key),
                    _ => Cursor::Done,
                };
                Ok(Some((
                    Page {
                        partition,
                        connection_ids,
                        interests,
                    },
                    next,
                )))
            }
        })
        .boxed()
    }

    pub(crate) fn dynamo<E, R>(
        &self,
        operation: &'static str,
        error: SdkError<E, R>,
    ) -> RegistryError
    where
        E: StdError + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        RegistryError::Dynamo {
            operation,
            table: self.config.table_name.clone(),
            detail: DisplayErrorContext(&error).to_string(),
            source: Box::new(error),
        }
    }
}

/// A connection's interest from the GSI's projected attributes (absent lists: everything).
fn interest_of(item: &HashMap<String, AttributeValue>) -> Interest {
    let list = |name: &str| match item.get(name) {
        Some(AttributeValue::L(values)) => Some(
            values
                .iter()
                .filter_map(|v| v.as_s().ok().cloned())
                .collect::<Vec<_>>(),
        ),
        Some(AttributeValue::Ss(values)) => Some(values.clone()),
        _ => None,
    };
    Interest {
        filter: Filter {
            entity_types: list("entityTypes"),
            entity_ids: list("entityIds"),
        },
        allowed_types: list("allowedEntityTypes"),
    }
}
