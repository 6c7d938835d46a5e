//! The fanout function against the local API Gateway (real sockets and virtual connections),
//! with the registry and the job queue on moto: what DESIGN.md's "Errors -> behaviour" table
//! promises for PostToConnection answers and for bad jobs.

use std::collections::HashMap;
use std::time::Duration;

use apigw::{Faults, Gateway, GatewayConfig, handler_fn, ids, proxy_response};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{Message, QueueAttributeName};
use e2e::fixtures::{fresh_queue, fresh_registry, sdk_config, unique_name};
use e2e::{Client, connect_many, eventually};
use fanout::Fanout;
use fanout::management::ManagementApi;
use fanout::policy::RetryPolicy;
use jobs::settings::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;
use jobs::{FanoutJob, JobQueue, QueueSettings};
use platform::Backoff;
use platform::clock::now_ms;
use registry::{Connection, Registry};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

/// A gateway, a fresh registry and a fresh job queue of the test's own.
struct Setup {
    gateway: Gateway,
    registry: Registry,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    sdk: aws_config::SdkConfig,
}

impl Setup {
    async fn start() -> Self {
        // $connect accepted, everything else ignored: the registry rows are the test's to write.
        let handler = handler_fn(|_event| async { Ok(proxy_response(200, None)) });
        let gateway = Gateway::bind(
            "127.0.0.1:0".parse().unwrap(),
            GatewayConfig::default(),
            handler,
        )
        .await
        .unwrap();
        let sdk = sdk_config().await;
        let (sqs, queue_url) = fresh_queue().await;
        Self {
            gateway,
            registry: fresh_registry(1).await,
            sqs,
            queue_url,
            sdk,
        }
    }

    fn fanout(&self, policy: RetryPolicy) -> Fanout<ManagementApi> {
        self.fanout_to(&self.gateway.management_endpoint(), policy)
    }

    fn fanout_to(&self, endpoint: &str, policy: RetryPolicy) -> Fanout<ManagementApi> {
        Fanout {
            poster: ManagementApi::new(&self.sdk, endpoint),
            registry: self.registry.clone(),
            queue: JobQueue::new(self.sqs.clone(), &QueueSettings::for_url(&self.queue_url)),
            policy,
            concurrency: 32,
            budget: None,
            rounds: None,
        }
    }

    /// Sends jobs as the processor does.
    async fn enqueue(&self, jobs: &[FanoutJob]) {
        let queue = JobQueue::new(self.sqs.clone(), &QueueSettings::for_url(&self.queue_url));
        assert_eq!(queue.send_all(jobs, 1).await.unwrap(), jobs.len());
    }

    /// One ReceiveMessage of up to 10 messages, long-polling up to `wait`.
    async fn receive(&self, wait: Duration) -> Vec<Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap())
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    }

    /// Receives until `n` messages are in hand (fails after [`WAIT`]).
    async fn receive_exactly(&self, n: usize) -> Vec<Message> {
        let deadline = Instant::now() + WAIT;
        let mut messages = Vec::new();
        while messages.len() < n {
            assert!(Instant::now() < deadline, "{n} messages never arrived");
            messages.extend(self.receive(Duration::from_secs(1)).await);
        }
        assert_eq!(messages.len(), n);
        messages
    }

    /// What Lambda does after an invocation: deletes the messages not reported as failures.
    async fn delete_settled(&self, messages: &[Message], response: &SqsBatchResponse) {
        for message in messages {
            let id = message.message_id.as_deref().unwrap();
            if response
                .batch_item_failures
                .iter()
                .all(|f| f.item_identifier != id)
            {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle.as_deref().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Messages in the queue, visible, in flight or delayed.
    async fn queued(&self) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            QueueAttributeName::ApproximateNumberOfMessagesDelayed,
        ]
        .iter()
        .map(|name| attributes[name].parse::<u64>().unwrap())
        .sum()
    }

    /// Connects `n` real clients and returns them with their connection ids.
    async fn sockets(&self, n: usize) -> (Vec<Client>, Vec<String>) {
        let clients = connect_many(&self.gateway.ws_url(), n).await;
        assert!(eventually(WAIT, || self.gateway.socket_count() == n).await);
        (clients, self.gateway.socket_ids())
    }

    fn virtual_deliveries(&self, id: &str) -> u64 {
        self.gateway.virtual_delivery(id).unwrap().deliveries
    }

    /// Posts accepted for real sockets (not virtual connections).
    fn socket_posts(&self) -> u64 {
        let counters = self.gateway.counters();
        counters.posts_delivered - counters.posts_delivered_virtual
    }
}

/// Part `n` (1-based) of `parts` of a broadcast, as the processor builds it.
fn part(broadcast_id: &str, n: u64, parts: u64) -> Value {
    json!({
        "type": "METRICS_UPDATE", "id": broadcast_id, "part": n, "parts": parts,
        "updates": [{"eventType": "MODIFY", "timestamp": 1_764_104_603_000_i64,
                     "sequence": format!("{n:021}"),
                     "data": {"entity_id": format!("stream-{n:03}"), "metric_value": n}}]
    })
}

/// A fresh job of `parts` parts for `ids`.
fn job(parts: u64, ids: &[String]) -> (FanoutJob, Vec<Value>) {
    let broadcast_id = unique_name("b");
    let values: Vec<Value> = (1..=parts).map(|n| part(&broadcast_id, n, parts)).collect();
    let raw = values
        .iter()
        .map(|v| RawValue::from_string(v.to_string()).unwrap())
        .collect();
    let job = FanoutJob::new(broadcast_id, now_ms(), raw, ids.to_vec());
    (job, values)
}

/// The SQS event Lambda would build from `(messageId, body)` pairs.
fn event(records: &[(&str, &str)]) -> SqsEvent {
    let records: Vec<Value> = records
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
                   "eventSource": "aws:sqs", "awsRegion": "us-east-1",
                   "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fanout",
                   "attributes": {}, "messageAttributes": {}})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn event_of(messages: &[Message]) -> SqsEvent {
    let records: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m.message_id.as_deref().unwrap(), m.body.as_deref().unwrap()))
        .collect();
    event(&records)
}

fn failed_ids(response: &SqsBatchResponse) -> Vec<&str> {
    response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect()
}

/// Retries fast, so that a test spends its time delivering, not sleeping.
fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        post_backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(20)),
        tries: 6,
        requeue_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(900)),
        max_attempts: 5,
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// Waits until every client has received `expected`, then checks it got exactly that: the
/// gateway accepted exactly `expected.len()` posts per socket, so none can have more.
async fn assert_each_client_received(setup: &Setup, clients: &[Client], expected: &[Value]) {
    let arrived = eventually(WAIT, || {
        clients.iter().all(|c| c.updates().len() >= expected.len())
    })
    .await;
    assert!(arrived, "not every client received every part");
    assert_eq!(
        setup.socket_posts(),
        (clients.len() * expected.len()) as u64
    );
    for client in clients {
        assert_eq!(client.updates(), expected, "each part once, in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_connection_receives_each_part_exactly_once() {
    let setup = Setup::start().await;
    let (clients, mut ids) = setup.sockets(20).await;
    let virtual_ids = setup.gateway.add_virtual_connections(500);
    ids.extend(virtual_ids.iter().cloned());
    let (job, parts) = job(2, &ids);
    setup.enqueue(std::slice::from_ref(&job)).await;
    let messages = setup.receive_exactly(1).await;

    let (response, report) = setup
        .fanout(quick_policy())
        .handle(event_of(&messages), soon())
        .await;
    setup.delete_settled(&messages, &response).await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.jobs, 1);
    assert_eq!(report.delivered, 2 * 520);
    assert_eq!((report.gone, report.requeued, report.failed), (0, 0, 0));
    assert_eq!(report.latencies_ms.len(), 1);
    assert_eq!(
        setup.gateway.counters().posts_received,
        2 * 520,
        "no post was made twice"
    );
    for id in &virtual_ids {
        assert_eq!(setup.virtual_deliveries(id), 2, "{id}");
    }
    assert_each_client_received(&setup, &clients, &parts).await;
    assert_eq!(
        setup.queued().await,
        0,
        "the job was consumed, nothing requeued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_connections_are_deleted_from_the_registry_and_counted() {
    let setup = Setup::start().await;
    let live = setup.gateway.add_virtual_connections(10);
    // Rows whose $disconnect was missed: one connection that vanished from the gateway, and
    // ids it never had. 30 of them: more than one BatchWriteItem (25).
    let vanished = setup.gateway.add_virtual_connections(1).remove(0);
    assert!(setup.gateway.remove_virtual_connection(&vanished));
    let mut gone: Vec<String> = (0..29).map(|_| ids::random_id()).collect();
    gone.push(vanished);
    let ids: Vec<String> = live.iter().chain(&gone).cloned().collect();
    let buckets = setup.registry.config().buckets;
    let now = now_ms();
    let rows: Vec<Connection> = ids
        .iter()
        .map(|id| Connection::new(id.clone(), now, None, None, buckets, 3600))
        .collect();
    setup.registry.register_many(&rows).await.unwrap();

    let (job, _) = job(1, &ids);
    let body = job.encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES).unwrap();
    let (response, report) = setup
        .fanout(quick_policy())
        .handle(event(&[("m-1", &body)]), soon())
        .await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.gone, 30);
    assert_eq!(report.delivered, 10);
    assert_eq!((report.requeued, report.failed), (0, 0));
    assert_eq!(setup.gateway.counters().rejected_gone, 30);
    for id in &gone {
        assert!(
            setup.registry.get(id).await.unwrap().is_none(),
            "gone row {id} was deleted"
        );
    }
    for id in &live {
        assert!(
            setup.registry.get(id).await.unwrap().is_some(),
            "live row {id} was kept"
        );
        assert_eq!(setup.virtual_deliveries(id), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_throttling_and_errors_every_connection_gets_each_part_once_via_requeues() {
    let setup = Setup::start().await;
    let (clients, mut ids) = setup.sockets(10).await;
    let virtual_ids = setup.gateway.add_virtual_connections(400);
    ids.extend(virtual_ids.iter().cloned());
    setup
        .gateway
        .set_faults(Faults {
            throttle_rate: 0.10,
            error_rate: 0.05,
            ..Faults::default()
        })
        .unwrap();
    let fanout = setup.fanout(quick_policy());
    let (job, parts) = job(2, &ids);
    let parts_raw: Vec<String> = parts.iter().map(Value::to_string).collect();
    let body = job.encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES).unwrap();

    // The first invocation may not retry at all: every post that fails (about one in seven)
    // is requeued, so the requeue path is certain to run.
    let no_retries = RetryPolicy {
        tries: 1,
        ..quick_policy()
    };
    let (response, report) = setup
        .fanout(no_retries)
        .handle(event(&[("m-0", &body)]), soon())
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(report.requeued > 0, "{report:?}");
    assert!(report.throttled > 0);
    assert_eq!(report.retried, 0, "no retries allowed");
    let mut requeued = report.requeued;
    let mut redelivered = 0;
    let mut requeued_jobs = 0;

    // Each id's attempt so far; a requeued job must carry the next one.
    let mut attempts: HashMap<String, u32> = ids.iter().map(|id| (id.clone(), 0)).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "requeues never drained");
        let messages = setup.receive(Duration::from_secs(1)).await;
        if messages.is_empty() {
            if setup.queued().await == 0 {
                break;
            }
            continue;
        }
        for message in &messages {
            let retry = FanoutJob::decode(message.body.as_deref().unwrap()).unwrap();
            requeued_jobs += 1;
            redelivered += retry.connections.len() as u64;
            assert_eq!(retry.broadcast_id, job.broadcast_id);
            assert_eq!(retry.enqueued_at, job.enqueued_at);
            // The parts still owed: a tail of the broadcast's parts.
            let remaining: Vec<&str> = retry.parts.iter().map(|p| p.get()).collect();
            assert!(!remaining.is_empty() && remaining.len() <= parts.len());
            assert_eq!(remaining, parts_raw[parts.len() - remaining.len()..]);
            for id in &retry.connections {
                let attempt = attempts.get_mut(id).expect("a connection of the job");
                assert_eq!(retry.attempt, *attempt + 1, "{id}: attempt incremented");
                *attempt = retry.attempt;
                if virtual_ids.contains(id) {
                    // Only the parts before the failed one were delivered: nothing twice.
                    assert_eq!(
                        setup.virtual_deliveries(id),
                        (parts.len() - remaining.len()) as u64,
                        "{id} requeued though delivered"
                    );
                }
            }
        }
        let (response, report) = fanout.handle(event_of(&messages), soon()).await;
        assert!(response.batch_item_failures.is_empty(), "{report:?}");
        assert_eq!(report.failed, 0);
        requeued += report.requeued;
        setup.delete_settled(&messages, &response).await;
    }

    assert!(requeued_jobs > 0);
    assert_eq!(redelivered, requeued, "every requeued id came back once");
    for id in &virtual_ids {
        assert_eq!(setup.virtual_deliveries(id), 2, "{id}");
    }
    assert_each_client_received(&setup, &clients, &parts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_batch_item_failures_while_the_rest_is_delivered() {
    let setup = Setup::start().await;
    let (clients, ids) = setup.sockets(2).await;
    let virtual_ids = setup.gateway.add_virtual_connections(10);
    let (first, first_parts) = job(1, &ids);
    let (second, _) = job(1, &virtual_ids);
    let first = first.encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES).unwrap();
    let second = second.encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES).unwrap();

    let (response, report) = setup
        .fanout(quick_policy())
        .handle(
            event(&[
                ("ok-1", &first),
                ("unparsable", "{\"v\":1,\"broadcastId\":"),
                ("ok-2", &second),
                ("unknown-version", r#"{"v":99}"#),
            ]),
            soon(),
        )
        .await;

    assert_eq!(failed_ids(&response), ["unparsable", "unknown-version"]);
    assert_eq!(report.malformed, 2);
    assert_eq!(report.jobs, 2);
    assert_eq!(report.delivered, 12);
    assert_eq!(report.failed_messages, ["unparsable", "unknown-version"]);
    for id in &virtual_ids {
        assert_eq!(setup.virtual_deliveries(id), 1);
    }
    assert_each_client_received(&setup, &clients, &first_parts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_fails_the_job_without_requeueing() {
    let setup = Setup::start().await;
    let virtual_ids = setup.gateway.add_virtual_connections(5);
    // A management endpoint of another stage: API Gateway answers 403 ForbiddenException.
    let wrong = format!("http://{}/otherstage", setup.gateway.local_addr());
    let (job, _) = job(1, &virtual_ids);
    let body = job.encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES).unwrap();

    let (response, report) = setup
        .fanout_to(&wrong, quick_policy())
        .handle(event(&[("m-403", &body)]), soon())
        .await;

    assert_eq!(failed_ids(&response), ["m-403"]);
    assert!(report.forbidden > 0, "{report:?}");
    assert_eq!((report.delivered, report.requeued), (0, 0));
    assert_eq!(report.retried, 0, "403 is not retried");
    assert_eq!(setup.queued().await, 0, "nothing was requeued");
    for id in &virtual_ids {
        assert_eq!(setup.virtual_deliveries(id), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_attempt_failures_are_counted_and_not_requeued() {
    let setup = Setup::start().await;
    let virtual_ids = setup.gateway.add_virtual_connections(8);
    setup
        .gateway
        .set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let policy = RetryPolicy {
        tries: 2,
        max_attempts: 3,
        ..quick_policy()
    };
    let fanout = setup.fanout(policy);
    let (mut job, _) = job(1, &virtual_ids);

    // The attempt before the last one still requeues, as the next (and last) attempt.
    job.attempt = policy.max_attempts - 2;
    let body = job.encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES).unwrap();
    let (response, report) = fanout.handle(event(&[("m-1", &body)]), soon()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.requeued, report.failed), (8, 0));
    let messages = setup.receive_exactly(1).await;
    let last = FanoutJob::decode(messages[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(last.attempt, policy.max_attempts - 1);
    let mut requeued_ids = last.connections.clone();
    requeued_ids.sort();
    let mut expected = virtual_ids.clone();
    expected.sort();
    assert_eq!(requeued_ids, expected);

    // The last attempt: counted as failed, logged, and the message is consumed.
    let (response, report) = fanout.handle(event_of(&messages), soon()).await;
    setup.delete_settled(&messages, &response).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.failed, report.requeued), (8, 0));
    assert_eq!(
        report.retried, 8,
        "one retry per connection inside the invocation"
    );
    assert_eq!(
        setup.queued().await,
        0,
        "nothing requeued after the last attempt"
    );
    for id in &virtual_ids {
        assert_eq!(setup.virtual_deliveries(id), 0);
    }
}
