//! A crash in the middle of a broadcast: the whole local stack (gateway, pollers, functions)
//! dies at once while fanout jobs are queued, in flight and delayed for retry; a new stack
//! starts on the same moto with the same names; the dashboards reconnect. What survives, what
//! is lost, and whether the pipeline recovers on its own.
//!
//! The crash is abrupt, not `Stack::shutdown`: the first stack runs on a runtime of its own,
//! which is shut down without waiting (`shutdown_background`). Every task stops at its next
//! await, as in a killed process: invocations never delete their messages, sockets close
//! without a close handshake and no `$disconnect` runs. (A graceful shutdown would run the
//! `$disconnect`s, and dropping a `Stack` would leave its pollers running: neither is a crash.)

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use apigw::{Latency, Throttle};
use aws_sdk_dynamodb::types::Select;
use aws_sdk_sqs::types::QueueAttributeName as A;
use e2e::fixtures::sdk_config;
use e2e::{Client, connect_many, eventually, put_metric, settled, start_stack, updates_for};
use fanout::policy::RetryPolicy;
use platform::Backoff;
use platform::clock::now_ms;
use registry::{Connection, Registry};
use stack::{Stack, StackConfig};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(20);
const SOCKETS: usize = 10;
const VIRTUAL: usize = 1_500;

/// Messages of a queue by state (moto's counts are exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct QueueCounts {
    visible: u64,
    in_flight: u64,
    delayed: u64,
}

impl QueueCounts {
    fn total(self) -> u64 {
        self.visible + self.in_flight + self.delayed
    }
}

async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> QueueCounts {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("GetQueueAttributes on moto")
        .attributes
        .unwrap_or_default();
    let count = |name: A| attributes.get(&name).map_or(0, |v| v.parse().unwrap_or(0));
    QueueCounts {
        visible: count(A::ApproximateNumberOfMessages),
        in_flight: count(A::ApproximateNumberOfMessagesNotVisible),
        delayed: count(A::ApproximateNumberOfMessagesDelayed),
    }
}

/// Rows in the connections table (a test may Scan; the functions never do).
async fn rows(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> i32 {
    dynamo
        .scan()
        .table_name(table)
        .select(Select::Count)
        .send()
        .await
        .expect("Scan on moto")
        .count
}

/// How often each (broadcast id, part) reached a client.
fn parts_seen(client: &Client) -> HashMap<(String, u64), usize> {
    let mut seen = HashMap::new();
    for m in client.updates() {
        let key = (
            m["id"].as_str().unwrap_or_default().to_owned(),
            m["part"].as_u64().unwrap_or(0),
        );
        *seen.entry(key).or_default() += 1;
    }
    seen
}

/// The first stack: a throttled, slow management API, small shards, small batches and
/// retries that requeue with a delay at once, so that a broadcast is spread over the queue's
/// three states for seconds.
fn crashing_config() -> StackConfig {
    let mut config = StackConfig::for_tests();
    config.gateway.throttle = Some(Throttle::new(150.0, 30));
    config.gateway.latency = Latency::new(Duration::from_millis(20), Duration::from_millis(20));
    config.broadcast.shard_size = 50;
    config.queue.batch_size = 2;
    config.fanout_concurrency = 8;
    // The round the crash interrupts holds later rounds until it completes (its retries run on
    // the next stack) or its lease runs out: a short lease, and a schedule that notices it.
    config.round_lease = Duration::from_secs(3);
    config.schedule = Duration::from_secs(1);
    config.policy = RetryPolicy {
        post_backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(20)),
        tries: 2,
        requeue_backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(900)),
        max_attempts: 5,
    };
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_broadcast_loses_only_the_dead_gateways_connections() {
    // The test's own clients, on the test's runtime: they outlive the crashed stack.
    let sdk = sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    // ---- the first stack, on a runtime that will be killed ----
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = crashing_config();
    let names = config.names.clone();
    let first: Stack = doomed.spawn(start_stack(config)).await.unwrap();
    let resources = first.resources.clone();
    let registry = Registry::new(dynamo.clone(), first.registry.config().clone());

    let old_clients = connect_many(&first.ws_url(), SOCKETS).await;
    assert!(eventually(WAIT, || first.gateway.socket_count() == SOCKETS).await);
    // Virtual connections with rows, as $connect would have written them.
    let virtual_ids = first.gateway.add_virtual_connections(VIRTUAL);
    let buckets = registry.config().buckets;
    let now = now_ms();
    let virtual_rows: Vec<Connection> = virtual_ids
        .iter()
        .map(|id| Connection::new(id.clone(), now, None, None, buckets, 3600))
        .collect();
    registry.register_many(&virtual_rows).await.unwrap();
    let old_rows = SOCKETS + VIRTUAL;
    assert_eq!(
        rows(&dynamo, &names.connections_table).await,
        old_rows as i32
    );

    // ---- a broadcast to all of them, killed half way ----
    let started = Instant::now();
    put_metric(&first, "chaos-before", 1.0).await;
    let mid_broadcast = async {
        while started.elapsed() < WAIT {
            let counts = queue_counts(&sqs, &resources.fanout_queue_url).await;
            let delivered = first.gateway.counters().posts_delivered;
            // Posts have gone out, retries wait in the queue, and work is still in it.
            if delivered > 0 && counts.delayed > 0 && counts.visible + counts.in_flight > 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(
        mid_broadcast.await,
        "the broadcast never reached the middle"
    );
    doomed.shutdown_background(); // the crash
    let before = first.gateway.counters();
    // Read at once: no task of the first stack runs any more.
    let at_kill = queue_counts(&sqs, &resources.fanout_queue_url).await;
    let delivered_before: Vec<(String, u64)> = first
        .gateway
        .virtual_deliveries()
        .into_iter()
        .map(|(id, d)| (id, d.deliveries))
        .collect();
    let stream_records_before = first.stream_stats.records.load(Relaxed);
    drop(first);

    let reached_before = delivered_before.iter().filter(|(_, n)| *n > 0).count();
    eprintln!(
        "at the kill: {at_kill:?} fanout messages; posts delivered {} ({reached_before} of {VIRTUAL} virtual connections reached), 429s {}",
        before.posts_delivered, before.rejected_throttled
    );
    assert!(at_kill.delayed > 0, "retries were waiting: {at_kill:?}");
    assert!(at_kill.visible + at_kill.in_flight > 0, "{at_kill:?}");
    assert!(reached_before < VIRTUAL, "the broadcast was not over");
    assert!(
        delivered_before.iter().all(|(_, n)| *n <= 1),
        "no connection got the broadcast twice before the crash"
    );
    // The dashboards see their sockets drop; no $disconnect ran, so every row is still there.
    assert!(eventually(WAIT, || old_clients.iter().all(Client::is_closed)).await);
    for client in &old_clients {
        assert!(updates_for(client, "chaos-before").len() <= 1);
    }
    assert_eq!(
        rows(&dynamo, &names.connections_table).await,
        old_rows as i32
    );

    // ---- a new stack on the same moto, same table, stream and queue names ----
    let second = start_stack(StackConfig {
        names: names.clone(),
        ..StackConfig::for_tests()
    })
    .await;
    assert_eq!(
        second.resources.fanout_queue_url,
        resources.fanout_queue_url
    );
    assert_eq!(
        second.resources.metrics_stream_arn,
        resources.metrics_stream_arn
    );
    let clients = connect_many(&second.ws_url(), SOCKETS).await;
    assert!(eventually(WAIT, || second.gateway.socket_count() == SOCKETS).await);

    // Every job the crash left behind is handled: the in-flight ones once their visibility
    // timeout ends, the delayed ones once their delay does. They name connections of the dead
    // gateway: 410, rows deleted. Nothing stays in the queue, nothing goes to the DLQ.
    let drained = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let left = rows(&dynamo, &names.connections_table).await;
            let queued = queue_counts(&sqs, &resources.fanout_queue_url).await;
            if left == SOCKETS as i32 && queued.total() == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    assert!(drained.await, "old jobs or stale rows remain");
    let after = second.gateway.counters();
    let handled = second.queue_stats.messages.load(Relaxed);
    eprintln!(
        "after the restart: {handled} fanout messages handled, {} posts answered 410, {} delivered",
        after.rejected_gone, after.posts_delivered
    );
    // Only a 410 deletes a row here ($disconnect never ran, moto's TTL never expires): each
    // old connection got at least one, from a job the crash left or from the replay below.
    assert!(after.rejected_gone >= old_rows as u64, "{after:?}");
    assert!(
        handled >= at_kill.total(),
        "every message left at the crash was received"
    );
    // The old jobs name only dead connections: what the new gateway delivered so far is the
    // replay below, at most once per reconnected dashboard.
    assert_eq!(after.posts_delivered_virtual, 0);
    assert!(after.posts_delivered <= SOCKETS as u64, "{after:?}");
    assert_eq!(
        queue_counts(&sqs, &resources.fanout_dlq_url).await.total(),
        0,
        "no job went to the DLQ"
    );
    for id in &virtual_ids {
        assert!(registry.get(id).await.unwrap().is_none(), "stale row {id}");
    }
    // The new poller keeps no checkpoint: it reads the stream from its oldest record again
    // (Lambda's event source mapping would resume after the last finished batch).
    let replayed = eventually(WAIT, || {
        second.stream_stats.records.load(Relaxed) >= stream_records_before.max(1)
    });
    assert!(replayed.await, "the stream was read again from the start");

    // ---- new writes reach every reconnected dashboard, once ----
    put_metric(&second, "chaos-after", 2.0).await;
    let everyone_has = |entity: &str| clients.iter().all(|c| !updates_for(c, entity).is_empty());
    assert!(
        eventually(WAIT, || everyone_has("chaos-after")).await,
        "a write after the restart did not reach every reconnected client"
    );
    settled(&second, &clients).await;
    for client in &clients {
        assert_eq!(updates_for(client, "chaos-after").len(), 1);
        // The replayed write, if it came after the client connected, came once.
        assert!(updates_for(client, "chaos-before").len() <= 1);
        assert!(
            parts_seen(client).values().all(|n| *n == 1),
            "a part arrived twice"
        );
    }
    eprintln!(
        "chaos: the broadcast reached {reached_before} of {VIRTUAL} virtual connections before the crash; {} + {} + {} messages (visible + in flight + delayed) were in the queue; all were handled after the restart",
        at_kill.visible, at_kill.in_flight, at_kill.delayed
    );
    second.shutdown().await;
}
