//! Helpers for the tests in `tests/`: fresh resources and private local stacks on the moto
//! server that `make test` starts, real WebSocket clients, and metrics-table writes.

pub mod auth;
pub mod fixtures;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use stack::{Stack, StackConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Sink = futures::stream::SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A stack of its own for one test (unique table and queue names, a free port).
pub async fn start_stack(config: StackConfig) -> Stack {
    Stack::start(&fixtures::sdk_config().await, config)
        .await
        .expect("local stack starts against moto")
}

/// A real WebSocket client that records every text message it receives.
pub struct Client {
    sink: Sink,
    received: Arc<Mutex<Vec<Value>>>,
    closed: Arc<Mutex<bool>>,
}

impl Client {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self::from_socket(socket))
    }

    /// A client over a socket opened by the test (e.g. with handshake headers of its own).
    pub fn from_socket(socket: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        let (sink, mut stream) = socket.split();
        let received = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(false));
        let (r, c) = (received.clone(), closed.clone());
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    let value =
                        serde_json::from_str(&text).unwrap_or(Value::String(text.to_string()));
                    r.lock().expect("not poisoned").push(value);
                }
            }
            *c.lock().expect("not poisoned") = true;
        });
        Self {
            sink,
            received,
            closed,
        }
    }

    pub async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.sink.send(Message::text(text)).await?;
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = self.sink.send(Message::Close(None)).await;
    }

    pub fn received(&self) -> Vec<Value> {
        self.received.lock().expect("not poisoned").clone()
    }

    /// The METRICS_UPDATE messages received so far.
    pub fn updates(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|m| m["type"] == "METRICS_UPDATE")
            .collect()
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.lock().expect("not poisoned")
    }
}

/// `n` clients, connected a few at a time (API Gateway's new-connection rate is limited too).
pub async fn connect_many(url: &str, n: usize) -> Vec<Client> {
    futures::stream::iter(0..n)
        .map(|_| Client::connect(url))
        .buffered(16)
        .map(|c| c.expect("client connects"))
        .collect()
        .await
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes one entity of the metrics table, as the processing job does.
pub async fn put_metric(stack: &Stack, entity_id: &str, value: f64) {
    stack
        .dynamo
        .put_item()
        .table_name(&stack.resources.names.metrics_table)
        .item("entity_id", AttributeValue::S(entity_id.to_owned()))
        .item("entity_type", AttributeValue::S("stream".to_owned()))
        .item("metric_value", AttributeValue::N(value.to_string()))
        .item(
            "timestamp",
            AttributeValue::S("2024-11-04T12:34:56Z".to_owned()),
        )
        .send()
        .await
        .expect("PutItem on the metrics table");
}

/// Writes one entity with its type (a PutItem: INSERT or MODIFY), for tests of filters.
pub async fn put_typed(stack: &Stack, entity_id: &str, entity_type: &str, value: f64) {
    stack
        .dynamo
        .put_item()
        .table_name(&stack.resources.names.metrics_table)
        .item("entity_id", AttributeValue::S(entity_id.to_owned()))
        .item("entity_type", AttributeValue::S(entity_type.to_owned()))
        .item("metric_value", AttributeValue::N(value.to_string()))
        .send()
        .await
        .expect("PutItem on the metrics table");
}

/// Changes an existing entity's value in place (a MODIFY record).
pub async fn update_metric(stack: &Stack, entity_id: &str, value: f64) {
    stack
        .dynamo
        .update_item()
        .table_name(&stack.resources.names.metrics_table)
        .key("entity_id", AttributeValue::S(entity_id.to_owned()))
        .update_expression("SET metric_value = :v")
        .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
        .send()
        .await
        .expect("UpdateItem on the metrics table");
}

pub async fn delete_metric(stack: &Stack, entity_id: &str) {
    stack
        .dynamo
        .delete_item()
        .table_name(&stack.resources.names.metrics_table)
        .key("entity_id", AttributeValue::S(entity_id.to_owned()))
        .send()
        .await
        .expect("DeleteItem on the metrics table");
}

/// Every update (across parts) a client received for `entity_id`, in arrival order.
pub fn updates_for(client: &Client, entity_id: &str) -> Vec<Value> {
    client
        .updates()
        .iter()
        .flat_map(|m| m["updates"].as_array().cloned().unwrap_or_default())
        .filter(|u| u["data"]["entity_id"] == entity_id)
        .collect()
}

/// Waits until nothing written before this call can still reach a client: a barrier entity is
/// written and awaited by every client (the stream is read in order, so every earlier record's
/// jobs were enqueued before the barrier's), then the fanout queue must be empty with every
/// message the poller took handled. Tests call it before counting duplicates, instead of
/// sleeping and hoping.
pub async fn settled(stack: &Stack, clients: &[Client]) {
    let barrier = format!("barrier-{:08x}", rand::random::<u32>());
    put_metric(stack, &barrier, 0.0).await;
    let reached = eventually(Duration::from_secs(10), || {
        clients.iter().all(|c| !updates_for(c, &barrier).is_empty())
    })
    .await;
    assert!(reached, "the barrier write did not reach every client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !queue_drained(stack).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fanout queue did not drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No message visible, in flight or delayed, and every message received was deleted or
/// returned.
async fn queue_drained(stack: &Stack) -> bool {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &stack.queue_stats;
    let handled = stats.deleted.load(Relaxed) + stats.returned.load(Relaxed);
    if stats.messages.load(Relaxed) != handled {
        return false;
    }
    let attributes = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.resources.fanout_queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("GetQueueAttributes on moto")
        .attributes
        .unwrap_or_default();
    attributes.values().all(|count| count == "0")
}
