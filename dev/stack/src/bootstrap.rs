//! Creates what the functions expect to find, as production's defaults name it: the
//! connections table (GSI, TTL), the metrics table with its NEW_AND_OLD_IMAGES stream, the
//! fanout queue with its DLQ and redrive policy, the stream's on-failure destination, and the
//! rounds' state table and tick queue.
//! Idempotent: running it against existing resources changes nothing.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_sqs::types::QueueAttributeName;
use jobs::settings::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;
use registry::RegistryConfig;

/// The seed's connections table.
pub const CONNECTIONS_TABLE: &str = "iops-dashboard-websocket-connections";
pub const METRICS_TABLE: &str = "iops-dashboard-metrics";
pub const FANOUT_QUEUE: &str = "iops-dashboard-fanout";
pub const FANOUT_DLQ: &str = "iops-dashboard-fanout-dlq";
pub const STREAM_DLQ: &str = "iops-dashboard-stream-dlq";
pub const STATE_TABLE: &str = "iops-dashboard-broadcast-state";
pub const TICK_QUEUE: &str = "iops-dashboard-ticks";
/// The metrics table's key (the seed's entity id).
pub const METRICS_KEY: &str = "entity_id";
/// Receives before a fanout message moves to its DLQ.
pub const MAX_RECEIVE_COUNT: u32 = 3;

/// Names of the local resources; `suffix` makes a private set for a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub connections_table: String,
    pub metrics_table: String,
    pub fanout_queue: String,
    pub fanout_dlq: String,
    pub stream_dlq: String,
    pub state_table: String,
    pub tick_queue: String,
}

impl Names {
    pub fn production_defaults() -> Self {
        Self::with_suffix("")
    }

    pub fn with_suffix(suffix: &str) -> Self {
        Self {
            connections_table: format!("{CONNECTIONS_TABLE}{suffix}"),
            metrics_table: format!("{METRICS_TABLE}{suffix}"),
            fanout_queue: format!("{FANOUT_QUEUE}{suffix}"),
            fanout_dlq: format!("{FANOUT_DLQ}{suffix}"),
            stream_dlq: format!("{STREAM_DLQ}{suffix}"),
            state_table: format!("{STATE_TABLE}{suffix}"),
            tick_queue: format!("{TICK_QUEUE}{suffix}"),
        }
    }
}

/// What bootstrap made (or found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub names: Names,
    pub metrics_stream_arn: String,
    pub fanout_queue_url: String,
    pub fanout_queue_arn: String,
    pub fanout_dlq_url: String,
    pub stream_dlq_url: String,
    pub tick_queue_url: String,
    pub tick_queue_arn: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("{operation} failed: {detail}")]
    Aws {
        operation: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Missing(String),
}

fn aws<E: std::error::Error + 'static>(
    operation: &'static str,
) -> impl FnOnce(E) -> BootstrapError {
    move |e| BootstrapError::Aws {
        operation,
        detail: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
    }
}

pub async fn bootstrap(
    dynamo: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
    registry_config: &RegistryConfig,
    names: &Names,
    visibility_timeout_seconds: u32,
) -> Result<Resources, BootstrapError> {
    ensure_connections_table(dynamo, registry_config).await?;
    let metrics_stream_arn = ensure_metrics_table(dynamo, &names.metrics_table).await?;
    let fanout_dlq_url = ensure_queue(sqs, &names.fanout_dlq, HashMap::new()).await?;
    let fanout_dlq_arn = queue_arn(sqs, &fanout_dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": fanout_dlq_arn,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    });
    let fanout_queue_url = ensure_queue(
        sqs,
        &names.fanout_queue,
        HashMap::from([
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            (
                QueueAttributeName::VisibilityTimeout,
                visibility_timeout_seconds.to_string(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                DEFAULT_QUEUE_MAX_MESSAGE_BYTES.to_string(),
            ),
        ]),
    )
    .await?;
    let fanout_queue_arn = queue_arn(sqs, &fanout_queue_url).await?;
    let stream_dlq_url = ensure_queue(sqs, &names.stream_dlq, HashMap::new()).await?;
    ensure_state_table(dynamo, &names.state_table).await?;
    let tick_queue_url = ensure_queue(
        sqs,
        &names.tick_queue,
        HashMap::from([(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_seconds.to_string(),
        )]),
    )
    .await?;
    let tick_queue_arn = queue_arn(sqs, &tick_queue_url).await?;
    Ok(Resources {
        names: names.clone(),
        metrics_stream_arn,
        fanout_queue_url,
        fanout_queue_arn,
        fanout_dlq_url,
        stream_dlq_url,
        tick_queue_url,
        tick_queue_arn,
    })
}

fn key(name: &str, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .expect("name and type are set")
}

fn attribute(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(kind)
        .build()
        .expect("name and type are set")
}

/// Whether a create failed only because the resource is already there.
fn exists<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("ResourceInUseException")
}

/// What the GSI carries besides keys: what a connection receives (its filter and its token's
/// entity types), so that the processor pages it without a read per connection.
pub const PROJECTED: [&str; 3] = ["entityTypes", "entityIds", "allowedEntityTypes"];

/// The connections table as `infra/tables.ts` declares it: key `connectionId`, the
/// `connected` / `connectedAt` GSI (keys and [`PROJECTED`]), TTL on `ttl`.
/// Idempotent. Tests create their private tables with it too.
pub async fn ensure_connections_table(
    dynamo: &aws_sdk_dynamodb::Client,
    config: &RegistryConfig,
) -> Result<(), BootstrapError> {
    let index = GlobalSecondaryIndex::builder()
        .index_name(&config.index_name)
        .key_schema(key("connected", KeyType::Hash))
        .key_schema(key("connectedAt", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(PROJECTED.iter().map(|a| (*a).to_owned()).collect()))
                .build(),
        )
        .build()
        .expect("index fields are set");
    let created = dynamo
        .create_table()
        .table_name(&config.table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("connectionId", KeyType::Hash))
        .attribute_definitions(attribute("connectionId", ScalarAttributeType::S))
        .attribute_definitions(attribute("connected", ScalarAttributeType::S))
        .attribute_definitions(attribute("connectedAt", ScalarAttributeType::N))
        .global_secondary_indexes(index)
        .send()
        .await;
    if let Err(e) = created
        && !e.as_service_error().is_some_and(exists)
    {
        return Err(aws("CreateTable")(e));
    }
    ensure_ttl(dynamo, &config.table_name, "ttl").await
}

/// The rounds' state table as `infra/tables.ts` declares it: key `pk` / `sk`, TTL on
/// `expiresAt` (the done markers). Idempotent.
pub async fn ensure_state_table(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), BootstrapError> {
    let created = dynamo
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("sk", ScalarAttributeType::S))
        .send()
        .await;
    if let Err(e) = created
        && !e.as_service_error().is_some_and(exists)
    {
        return Err(aws("CreateTable")(e));
    }
    ensure_ttl(dynamo, table, "expiresAt").await
}

async fn ensure_ttl(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    attribute: &str,
) -> Result<(), BootstrapError> {
    let current = dynamo
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(aws("DescribeTimeToLive"))?;
    let status = current
        .time_to_live_description
        .and_then(|d| d.time_to_live_status);
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name(attribute)
        .enabled(true)
        .build()
        .expect("fields are set");
    dynamo
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(aws("UpdateTimeToLive"))?;
    Ok(())
}

/// The metrics table (key `entity_id`) with a NEW_AND_OLD_IMAGES stream; returns the stream ARN.
async fn ensure_metrics_table(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, BootstrapError> {
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::NewAndOldImages)
        .build()
        .expect("enabled is set");
    let created = dynamo
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(METRICS_KEY, KeyType::Hash))
        .attribute_definitions(attribute(METRICS_KEY, ScalarAttributeType::S))
        .stream_specification(stream.clone())
        .send()
        .await;
    if let Err(e) = created
        && !e.as_service_error().is_some_and(exists)
    {
        return Err(aws("CreateTable")(e));
    }
    let described = dynamo
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(aws("DescribeTable"))?;
    let table_description = described.table.ok_or_else(|| {
        BootstrapError::Missing(format!("DescribeTable {table} returned no table"))
    })?;
    if let Some(arn) = table_description.latest_stream_arn {
        let view = table_description
            .stream_specification
            .and_then(|s| s.stream_view_type);
        if view == Some(StreamViewType::NewAndOldImages) {
            return Ok(arn);
        }
    }
    // An existing table without the right stream: turn it on.
    let updated = dynamo
        .update_table()
        .table_name(table)
        .stream_specification(stream)
        .send()
        .await
        .map_err(aws("UpdateTable"))?;
    updated
        .table_description
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| {
            BootstrapError::Missing(format!("table {table} has no stream after UpdateTable"))
        })
}

async fn ensure_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> Result<String, BootstrapError> {
    // CreateQueue returns the existing queue when the attributes match; when they do not
    // (an older local run), the attributes are brought up to date.
    let created = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.clone()))
        .send()
        .await;
    match created {
        Ok(out) => out
            .queue_url
            .ok_or_else(|| BootstrapError::Missing(format!("CreateQueue {name} returned no URL"))),
        Err(_) => {
            let url = sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(aws("GetQueueUrl"))?
                .queue_url
                .ok_or_else(|| BootstrapError::Missing(format!("queue {name} has no URL")))?;
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(aws("SetQueueAttributes"))?;
            Ok(url)
        }
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, BootstrapError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws("GetQueueAttributes"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| BootstrapError::Missing(format!("queue {url} has no ARN")))
}
