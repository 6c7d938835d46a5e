//! The scenarios on virtual connections: ours from the processor's start (plain, with injected
//! faults, without the throttle), ours end to end from the metrics-table write, and the seed's
//! design. Each runs on a stack (or, for the seed, a gateway) of its own.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apigw::{Faults, Gateway, handler_fn, proxy_response};
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream;
use jobs::{JobQueue, QueueSettings};
use platform::clock::now_ms;
use processor::broadcast::enqueue_pages;
use processor::editions::Editions;
use processor::message::{MAX_MESSAGE_BYTES, broadcast_id};
use processor::update::{EventType, Update};
use registry::Page;
use serde_json::value::{RawValue, to_raw_value};
use serde_json::{Value, json};
use stack::Stack;
use stack::bootstrap::METRICS_KEY;

use super::baseline::{SeedBroadcast, SeedSettings, SeedStats};
use super::fixture::Bench;
use super::measure::{Outcome, Received, UsageMeter};
use super::progress::Progress;
use super::report::{Design, Measured, Meta, ScenarioResult};

/// The scenarios' clocks.
pub const FROM_PROCESSOR: &str = "processor start";
pub const FROM_WRITE: &str = "metrics-table write";
pub const FROM_SEED: &str = "seed function start";

/// After the last delivery: how long nothing must happen before the counts are read, and the
/// longest wait for it.
const QUIET: Duration = Duration::from_millis(500);
const SETTLE_MAX: Duration = Duration::from_secs(10);

/// The metrics-table item every scenario broadcasts (the seed README's example).
fn metric_data() -> Value {
    json!({
        "entity_id": "stream-001",
        "entity_type": "stream",
        "metric_value": 1234,
        "timestamp": "2024-11-04T12:34:56Z",
    })
}

/// `value` as the JSON text the processor carries images in.
fn raw(value: &Value) -> Box<RawValue> {
    to_raw_value(value).expect("a JSON value serializes")
}

fn update() -> Update {
    Update {
        event_type: EventType::Modify,
        timestamp: now_ms(),
        sequence: Some("4921000000000000000000000001".to_owned()),
        data: raw(&metric_data()),
    }
}

/// The processor's pure part: one update becomes its METRICS_UPDATE parts.
fn editions() -> Editions {
    let update = update();
    let id = broadcast_id(None, update.sequence.as_deref());
    let keys = raw(&json!({ "entity_id": "stream-001" }));
    Editions::new(&id, None, vec![(update, keys)], MAX_MESSAGE_BYTES, false)
}

/// The virtual connections as registry pages of 1,000 ids (a GSI page of keys holds about
/// that many), for the processor's own paging pipeline.
fn pages(
    ids: &[String],
) -> impl futures::Stream<Item = Result<Page, registry::RegistryError>> + Unpin {
    let pages: Vec<_> = ids
        .chunks(1000)
        .map(|chunk| {
            Ok(Page {
                partition: "true".to_owned(),
                connection_ids: chunk.to_vec(),
                interests: Default::default(),
            })
        })
        .collect();
    stream::iter(pages)
}

/// Distinct filters of the subscriptions scenario.
pub const FILTERS: usize = 10;

fn filter_type(i: usize) -> String {
    format!("type-{i}")
}

/// [`pages`] with every connection subscribed to one of [`FILTERS`] entity types, round robin.
fn subscribed_pages(
    ids: &[String],
) -> impl futures::Stream<Item = Result<Page, registry::RegistryError>> + Unpin {
    let pages: Vec<_> = ids
        .chunks(1000)
        .enumerate()
        .map(|(page, chunk)| {
            let interests = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let filter = registry::Filter::new(
                        Some(vec![filter_type((page * 1000 + i) % FILTERS)]),
                        None,
                    )
                    .expect("a valid filter");
                    (
                        id.clone(),
                        registry::Interest {
                            filter,
                            allowed_types: None,
                        },
                    )
                })
                .collect();
            Ok(Page {
                partition: "true".to_owned(),
                connection_ids: chunk.to_vec(),
                interests,
            })
        })
        .collect();
    stream::iter(pages)
}

/// Waits until every virtual connection has `parts` deliveries, or `timeout`. Returns whether
/// all were reached.
async fn wait_virtual(gateway: &Gateway, parts: u64, timeout: Duration, label: &str) -> bool {
    let n = gateway.virtual_delivery_summary().connections as u64;
    let mut progress = Progress::new(label, n * parts);
    let deadline = Instant::now() + timeout;
    loop {
        let delivered = gateway.counters().posts_delivered_virtual;
        progress.update(delivered);
        if delivered >= n * parts && gateway.virtual_delivery_summary().reached as u64 >= n {
            progress.finish(delivered, "done");
            return true;
        }
        if Instant::now() >= deadline {
            progress.finish(delivered, "TIMED OUT");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the fanout queue's messages are all handled and the gateway has had no post
/// for [`QUIET`], so that late retries and duplicates are counted.
async fn settle(stack: &Stack) {
    let deadline = Instant::now() + SETTLE_MAX;
    let mut last = (stack.gateway.counters().posts_received, Instant::now());
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let posts = stack.gateway.counters().posts_received;
        if posts != last.0 {
            last = (posts, Instant::now());
        }
        let q = &stack.queue_stats;
        let handled = q.deleted.load(Ordering::Relaxed) + q.returned.load(Ordering::Relaxed);
        if q.messages.load(Ordering::Relaxed) <= handled && last.1.elapsed() >= QUIET {
            return;
        }
    }
}

fn virtual_outcome(gateway: &Gateway, start: Instant, parts: u64) -> Outcome {
    Outcome::of(
        start,
        parts,
        gateway
            .virtual_deliveries()
            .into_iter()
            .map(|(_, d)| Received {
                messages: d.deliveries,
                first: d.first,
            }),
    )
}

fn queue_details(stack: &Stack) -> Value {
    let q = &stack.queue_stats;
    let s = &stack.stream_stats;
    json!({
        "queue_poller": {
            "invocations": q.invocations.load(Ordering::Relaxed),
            "messages": q.messages.load(Ordering::Relaxed),
            "deleted": q.deleted.load(Ordering::Relaxed),
            "returned": q.returned.load(Ordering::Relaxed),
        },
        "stream_poller": {
            "invocations": s.invocations.load(Ordering::Relaxed),
            "records": s.records.load(Ordering::Relaxed),
            "failed_invocations": s.failed_invocations.load(Ordering::Relaxed),
        },
    })
}

fn requeued(stack: &Stack, jobs: u64) -> u64 {
    stack
        .queue_stats
        .messages
        .load(Ordering::Relaxed)
        .saturating_sub(jobs)
}

impl Bench {
    fn floor_s(&self, n: usize) -> f64 {
        n as f64 / self.settings.rate
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_s)
    }

    /// Ours, isolated from moto's Query speed: the clock starts where the processor starts
    /// (the update split into parts, the ids cut into shards and jobs, the jobs sent with
    /// `JobQueue::send_all`), the real queue poller and fanout deliver, and it stops at the
    /// last connection's first delivery.
    /// `unthrottled` removes the account throttle: the machine's own capacity.
    pub async fn fanout(
        &self,
        key: &str,
        title: &str,
        faults: Faults,
        unthrottled: bool,
    ) -> anyhow::Result<ScenarioResult> {
        self.fanout_to(&self.ids, key, title, faults, unthrottled)
            .await
    }

    /// `fanout` to `--million-connections` fresh virtual connections (1,000,000 by default):
    /// the registry's pages come from memory, through the processor's own pipeline
    /// (`enqueue_pages`), as in `fanout`; moto would page them at a few thousand rows/s.
    pub async fn million(&self) -> anyhow::Result<ScenarioResult> {
        let n = self.settings.million_connections;
        let ids: Vec<String> = (0..n).map(|_| apigw::ids::random_id()).collect();
        let title = format!("ours: fan-out, {} virtual", count(n));
        self.fanout_to(&ids, "million", &title, Faults::default(), false)
            .await
    }

    /// Selective subscriptions: the N virtual connections spread over [`FILTERS`] distinct
    /// filters (by entity type), their interests in the registry's pages as the GSI's
    /// projection gives them; one change of one filter's type. Only the matching connections
    /// may be posted to: the posts made are counted against them, and the time against the
    /// floor of the matching connections alone.
    pub async fn subscriptions(&self) -> anyhow::Result<ScenarioResult> {
        let key = "subscriptions";
        let title = format!("ours: subscriptions, 1 of {FILTERS} filters");
        let setup = Instant::now();
        let stack = self
            .virtual_stack(key, &self.ids, false, Faults::default(), false)
            .await?;
        let queue = JobQueue::new(
            stack.sqs.clone(),
            &QueueSettings::for_url(&stack.resources.fanout_queue_url),
        );
        let matching: HashSet<&String> = self.ids.iter().step_by(FILTERS).collect();
        let setup_s = setup.elapsed().as_secs_f64();

        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let start = Instant::now();
        let update = Update {
            data: raw(
                &json!({"entity_id": "typed-0", "entity_type": filter_type(0), "metric_value": 1}),
            ),
            ..update()
        };
        let keys = raw(&json!({ "entity_id": "typed-0" }));
        let id = broadcast_id(None, update.sequence.as_deref());
        let mut editions = Editions::new(&id, None, vec![(update, keys)], MAX_MESSAGE_BYTES, false);
        let parts = editions.everything.messages.len() as u64;
        let stats = enqueue_pages(
            subscribed_pages(&self.ids),
            &queue,
            &mut editions,
            now_ms(),
            self.broadcast_settings(),
        )
        .await
        .context("enqueueing the fanout jobs")?;
        let expected = matching.len() as u64 * parts;
        let deadline = Instant::now() + self.timeout();
        let mut progress = Progress::new(&title, expected);
        while stack.gateway.counters().posts_delivered_virtual < expected
            && Instant::now() < deadline
        {
            progress.update(stack.gateway.counters().posts_delivered_virtual);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all = stack.gateway.counters().posts_delivered_virtual >= expected;
        progress.finish(
            stack.gateway.counters().posts_delivered_virtual,
            if all { "done" } else { "TIMED OUT" },
        );
        let usage = meter.finish()?;
        settle(&stack).await;

        let gateway = stack.gateway.counters();
        let mut details = queue_details(&stack);
        details["jobs_enqueued"] = json!(stats.jobs_sent);
        details["filters"] = json!(FILTERS);
        details["matching_connections"] = json!(matching.len());
        details["not_matching_connections"] = json!(stats.not_matching);
        details["posts_received"] = json!(gateway.posts_received);
        details["posts_per_matching_connection"] =
            json!(gateway.posts_received as f64 / matching.len().max(1) as f64);
        details["editions_encoded"] = json!(stats.editions);
        let outcome = Outcome::of(
            start,
            parts,
            stack
                .gateway
                .virtual_deliveries()
                .into_iter()
                .filter(|(id, _)| matching.contains(id))
                .map(|(_, d)| Received {
                    messages: d.deliveries,
                    first: d.first,
                }),
        );
        let measured = Measured {
            outcome,
            parts,
            timed_out: !all,
            gateway,
            requeued_messages: Some(requeued(&stack, stats.jobs_sent)),
            usage,
            details,
        };
        stack.shutdown().await;
        Ok(ScenarioResult::new(
            Meta {
                key: key.to_owned(),
                title,
                design: Design::Ours,
                measured_from: FROM_PROCESSOR,
                setup_s,
            },
            self.floor_s(matching.len()),
            measured,
        ))
    }

    async fn fanout_to(
        &self,
        ids: &[String],
        key: &str,
        title: &str,
        faults: Faults,
        unthrottled: bool,
    ) -> anyhow::Result<ScenarioResult> {
        let setup = Instant::now();
        let stack = self
            .virtual_stack(key, ids, false, faults, unthrottled)
            .await?;
        let queue = JobQueue::new(
            stack.sqs.clone(),
            &QueueSettings::for_url(&stack.resources.fanout_queue_url),
        );
        let setup_s = setup.elapsed().as_secs_f64();

        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let start = Instant::now();
        let (n_parts, sent) = self.enqueue(&queue, ids).await?;
        let enqueue_s = start.elapsed().as_secs_f64();
        let all = wait_virtual(&stack.gateway, n_parts, self.timeout(), title).await;
        let usage = meter.finish()?;
        settle(&stack).await;

        let mut details = queue_details(&stack);
        details["jobs_enqueued"] = json!(sent);
        details["enqueue_s"] = json!(enqueue_s);
        details["faults"] = json!(faults);
        details["throttled"] = json!(!unthrottled);
        let measured = Measured {
            outcome: virtual_outcome(&stack.gateway, start, n_parts),
            parts: n_parts,
            timed_out: !all,
            gateway: stack.gateway.counters(),
            requeued_messages: Some(requeued(&stack, sent)),
            usage,
            details,
        };
        stack.shutdown().await;
        Ok(ScenarioResult::new(
            Meta {
                key: key.to_owned(),
                title: title.to_owned(),
                design: Design::Ours,
                measured_from: FROM_PROCESSOR,
                setup_s,
            },
            self.floor_s(ids.len()),
            measured,
        ))
    }

    /// The processor's work, on the clock: the update split into parts, every id cut into
    /// shards, one job per shard and part sent to `queue`. Returns (parts, jobs sent).
    async fn enqueue(&self, queue: &JobQueue, ids: &[String]) -> anyhow::Result<(u64, u64)> {
        let mut editions = editions();
        let parts = editions.everything.messages.len() as u64;
        let stats = enqueue_pages(
            pages(ids),
            queue,
            &mut editions,
            now_ms(),
            self.broadcast_settings(),
        )
        .await
        .context("enqueueing the fanout jobs")?;
        Ok((parts, stats.jobs_sent))
    }

    /// Ours end to end: one metrics-table write, the stream poller, the processor paging the
    /// registered rows through moto's GSI Query, SQS, fanout; the clock starts at the write.
    pub async fn end_to_end(&self) -> anyhow::Result<ScenarioResult> {
        let title = "ours: end to end, virtual";
        let setup = Instant::now();
        let stack = self
            .virtual_stack("e2e", &self.ids, true, Faults::default(), false)
            .await?;
        let setup_s = setup.elapsed().as_secs_f64();

        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let start = Instant::now();
        put_metric(&stack).await?;
        let write_s = start.elapsed().as_secs_f64();
        let all = wait_virtual(&stack.gateway, 1, self.timeout(), title).await;
        let usage = meter.finish()?;
        settle(&stack).await;

        let jobs = self.ids.len().div_ceil(self.settings.shard_size.max(1)) as u64;
        let mut details = queue_details(&stack);
        details["write_s"] = json!(write_s);
        details["jobs_expected"] = json!(jobs);
        let measured = Measured {
            outcome: virtual_outcome(&stack.gateway, start, 1),
            parts: 1,
            timed_out: !all,
            gateway: stack.gateway.counters(),
            requeued_messages: Some(requeued(&stack, jobs)),
            usage,
            details,
        };
        stack.shutdown().await;
        Ok(ScenarioResult::new(
            Meta {
                key: "e2e".to_owned(),
                title: title.to_owned(),
                design: Design::Ours,
                measured_from: FROM_WRITE,
                setup_s,
            },
            self.floor_s(self.ids.len()),
            measured,
        ))
    }

    /// The seed's design on the same gateway settings and the same registered rows.
    pub async fn seed(&self, settings: SeedSettings) -> anyhow::Result<ScenarioResult> {
        let sockets = settings
            .max_sockets
            .map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        let title = format!("seed: Scan + post all, {sockets} sockets");
        let setup = Instant::now();
        let gateway = self.seed_gateway().await?;
        let seed = SeedBroadcast::new(
            &self.sdk,
            &self.table,
            &gateway.management_endpoint(),
            settings,
        );
        let message = seed_message();
        let setup_s = setup.elapsed().as_secs_f64();

        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let start = Instant::now();
        let stats = self
            .run_seed(seed, message, &gateway, &title, start)
            .await?;
        let usage = meter.finish()?;

        let measured = Measured {
            outcome: virtual_outcome(&gateway, start, 1),
            parts: 1,
            timed_out: stats.is_none(),
            gateway: gateway.counters(),
            requeued_messages: None,
            usage,
            details: json!({ "seed": stats, "settings": settings }),
        };
        gateway.shutdown().await?;
        Ok(ScenarioResult::new(
            Meta {
                key: format!("seed-{sockets}"),
                title,
                design: Design::Seed,
                measured_from: FROM_SEED,
                setup_s,
            },
            self.floor_s(self.ids.len()),
            measured,
        ))
    }

    /// A bare gateway with every id connected: the seed has no queue, and idle pollers would
    /// only load moto.
    async fn seed_gateway(&self) -> anyhow::Result<Gateway> {
        let gateway = Gateway::bind(
            "127.0.0.1:0".parse().context("loopback address")?,
            self.gateway_config(Faults::default(), false),
            handler_fn(|_| async { Ok(proxy_response(200, None)) }),
        )
        .await?;
        for id in self.ids.iter() {
            gateway.add_virtual_connection(id.clone())?;
        }
        Ok(gateway)
    }

    /// Runs the seed's function, started at `start`, until it returns or the timeout passes,
    /// with a progress line. `None`: it timed out and was stopped.
    async fn run_seed(
        &self,
        seed: SeedBroadcast,
        message: String,
        gateway: &Gateway,
        title: &str,
        start: Instant,
    ) -> anyhow::Result<Option<SeedStats>> {
        let run = tokio::spawn(async move { seed.run(&message).await });
        let mut progress = Progress::new(title, self.ids.len() as u64);
        let deadline = start + self.timeout();
        while !run.is_finished() && Instant::now() < deadline {
            progress.update(gateway.counters().posts_delivered_virtual);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let timed_out = !run.is_finished();
        progress.finish(
            gateway.counters().posts_delivered_virtual,
            if timed_out { "TIMED OUT" } else { "done" },
        );
        if timed_out {
            run.abort();
            return Ok(None);
        }
        Ok(Some(run.await.context("the seed function panicked")??))
    }
}

/// `n` as a scenario title shows it: 1M, 250k, 1500.
fn count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The seed's wire format of the update: one METRICS_UPDATE holding the item.
fn seed_message() -> String {
    json!({
        "type": "METRICS_UPDATE",
        "updates": [{"eventType": "MODIFY", "timestamp": now_ms(), "data": metric_data()}],
    })
    .to_string()
}

/// Writes the metrics item (a new value each time), as the processing job does.
pub async fn put_metric(stack: &Stack) -> anyhow::Result<()> {
    let text = |s: &str| AttributeValue::S(s.to_owned());
    stack
        .dynamo
        .put_item()
        .table_name(&stack.resources.names.metrics_table)
        .item(METRICS_KEY, text("stream-001"))
        .item("entity_type", text("stream"))
        .item(
            "metric_value",
            AttributeValue::N(rand::random::<u16>().to_string()),
        )
        .item("timestamp", text("2024-11-04T12:34:56Z"))
        .send()
        .await
        .context("PutItem on the metrics table")?;
    Ok(())
}
