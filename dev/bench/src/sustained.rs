//! The sustained scenario (issue 12): a writer updating E entities every second for T s while
//! N virtual connections and a sample of real WebSocket clients are connected, once with
//! conflated rounds and once with a broadcast per stream batch, each on a stack of its own with
//! the account throttle and the posting budget.
//!
//! Writes go to the metrics table through moto and take the real path (stream poller,
//! processor, rounds, SQS, fanout, the emulated gateway). The processor pages the registry
//! from memory by default ([`RegistryProxy`] answers its GSI Query in front of moto, which
//! pages 100k rows in over a minute), or through moto's GSI (`--sustained-registry moto`).
//! Virtual connections cannot tell which value they hold, so staleness is measured at the real
//! clients: for each write, from its PutItem's return to the moment a client holds that value
//! or a newer one (values grow per entity). The clients' rows sit at random places of the
//! registry's order, among the virtual rows, as a dashboard among the others (a `$connect`
//! writes `connectedAt` = now, which would put them last in every broadcast). After the
//! writer, the run waits until every client holds every latest value, at most the drain
//! period: batch mode falls behind without bound and is cut there, with what was still
//! queued. Over time the report follows the staleness clients see (how long a newer value than
//! the one held has waited), the fanout queue, the stream backlog and posts per second.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apigw::Faults;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use event_sources::streams::StreamSourceConfig;
use futures::StreamExt as _;
use platform::clock::now_ms;
use rounds::{BroadcastMode, RoundState, RoundStore};
use serde::Serialize;
use serde_json::Value;
use stack::Stack;
use stack::bootstrap::METRICS_KEY;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::fixture::Bench;
use super::measure::{Percentiles, Usage, UsageMeter, percentiles};
use super::progress::Progress;
use super::proxy::{ProxyCounts, RegistryProxy};
use super::timeline::{
    Age, Arrivals, Order, RoundSeen, RoundTimes, Staleness, Write, age_thirds, ages,
    busiest_second, increases, order, per_second, rounds_seen, samples,
};

/// Handshakes in flight while the clients connect.
const CONNECT_CONCURRENCY: usize = 16;
/// PutItem calls in flight within one second's writes.
const WRITE_CONCURRENCY: usize = 10;
/// How often the gateway's post counter is read (the busiest second is measured on it).
const POSTS_EVERY: Duration = Duration::from_millis(50);
/// How often the queue, the stream backlog and the round item are read.
const STATE_EVERY: Duration = Duration::from_millis(500);
/// The entities written: `sustained-00`, `sustained-01`, ...
const ENTITY_PREFIX: &str = "sustained-";

/// Where the sustained scenario's processor pages the registry from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RegistrySource {
    /// moto's table, through its GSI: a minute and more per broadcast at 100k rows.
    Moto,
    /// The same Query answered from memory by [`RegistryProxy`]; everything else still goes
    /// to moto.
    Memory,
}

/// The sustained scenario's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SustainedSettings {
    /// Real WebSocket clients, among the virtual connections, on which staleness is measured.
    pub clients: usize,
    pub entities: usize,
    /// How long the writer writes (one write of every entity per second).
    pub writer_s: u64,
    /// The longest wait after the writer for every client to hold every latest value.
    pub drain_s: u64,
    /// `POST_BUDGET_PER_SECOND` of both modes' fanout.
    pub budget: u32,
    /// The stream mapping's batching window (`StreamSourceConfig.window`), ms.
    pub window_ms: u64,
    /// The stream mapping's batch size.
    pub stream_batch: usize,
    pub registry: RegistrySource,
    /// The SQS -> fanout mapping's maximum concurrency in this scenario.
    pub lambda_concurrency: usize,
    /// The most latency added to each claim of the posting budget, uniform from 0 (registry
    /// in memory only).
    pub claim_delay_ms: u64,
}

/// A broadcast mode of the sustained scenario (`--sustained-modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Rounds,
    Batch,
}

impl Mode {
    pub fn broadcast(self) -> BroadcastMode {
        match self {
            Self::Rounds => BroadcastMode::Rounds,
            Self::Batch => BroadcastMode::Batch,
        }
    }
}

impl SustainedSettings {
    /// The design's staleness bound for `connections`: a change that arrives just after a round
    /// started waits for that round and its own, each N / budget, after the batching window.
    pub fn target_s(&self, connections: usize) -> f64 {
        2.0 * connections as f64 / f64::from(self.budget.max(1)) + self.window_ms as f64 / 1000.0
    }
}

/// How long moto took to page the whole registry, alone, before the runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Paging {
    pub rows: u64,
    pub pages: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
}

/// One sample of the fanout queue, the stream and the round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StateSample {
    /// s from the writer's start.
    pub at_s: f64,
    /// Fanout queue messages: visible + in flight + delayed.
    pub queue: u64,
    /// Records written but not yet handled by the processor.
    pub stream_backlog: u64,
}

/// What one mode's run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SustainedResult {
    pub key: String,
    pub title: String,
    pub mode: &'static str,
    /// Virtual connections plus the real clients.
    pub connections: usize,
    pub clients: usize,
    pub setup_s: f64,
    /// Writes done (and failed), seconds of the writer skipped because the writes of the
    /// second before were still going, and how long the writer ran.
    pub writes: u64,
    pub failed_writes: u64,
    pub skipped_seconds: u64,
    pub writer_s: f64,
    /// From the writer's start to the run's stop (the writer's end plus the drain).
    pub run_s: f64,
    /// Every client held every latest value before the drain period ran out.
    pub drained: bool,
    /// Processor invocations on stream batches during the run.
    pub stream_batches: u64,
    pub staleness: Staleness,
    /// The staleness the clients see, every second of the run: how long a value newer than
    /// the one a client holds has been waiting, over every (client, entity) pair.
    pub ages: Vec<Age>,
    /// The highest p99 of [`Self::ages`] in each third of the writer's run.
    pub age_thirds_p99_ms: [f64; 3],
    pub order: Order,
    /// 2 x N / budget + the batching window.
    pub target_staleness_s: f64,
    pub max_queue: u64,
    pub end_queue: u64,
    pub max_stream_backlog: u64,
    pub end_stream_backlog: u64,
    /// Posts received by the gateway in the busiest second, per second.
    pub busiest_second: f64,
    /// The posts of that second every 50 ms: (s from the writer's start, posts), from 0.5 s
    /// before it to 0.5 s after.
    pub busiest_detail: Vec<(f64, u64)>,
    pub budget: u32,
    pub posts: u64,
    pub throttled_429: u64,
    /// Rounds mode: the rounds seen in the state table.
    pub round_times: Option<RoundTimes>,
    pub rounds: Vec<RoundSeen>,
    /// Where the processor paged the registry from.
    pub registry: RegistrySource,
    /// With the registry in memory: the pages answered and the requests forwarded to moto.
    pub proxy: Option<ProxyCounts>,
    /// moto paging the registry alone, before the runs (registry in moto only).
    pub paging: Option<Paging>,
    /// moto's round trips during the run: a consistent GetItem of the state table (the table
    /// the posting budget's claims and the rounds' writes go to) every 0.5 s, in ms.
    pub moto_round_trip: Option<Percentiles>,
    pub usage: Usage,
    /// How long stopping the stack took (it waits for invocations in progress).
    pub shutdown_s: f64,
    /// Over time, from the writer's start: posts per second (1 s buckets) and the state
    /// samples.
    pub posts_per_s: Vec<(f64, f64)>,
    pub state: Vec<StateSample>,
}

impl SustainedResult {
    /// p99 staleness within the target.
    pub fn staleness_met(&self) -> bool {
        self.staleness.p99_ms / 1000.0 <= self.target_staleness_s
    }

    /// Flat: the staleness the clients see (p99 of [`Self::ages`]) in the writer's last third
    /// at most 1.25 x the first third's plus one round's posting time (N / budget), the rounds'
    /// own granularity.
    pub fn flat_limit_ms(&self) -> f64 {
        let [first, _, _] = self.age_thirds_p99_ms;
        1.25 * first + 1000.0 * self.connections as f64 / f64::from(self.budget.max(1))
    }

    pub fn flat(&self) -> bool {
        self.age_thirds_p99_ms[2] <= self.flat_limit_ms()
    }

    /// The last third's p99 age over the first's.
    pub fn growth(&self) -> Option<f64> {
        let [first, _, last] = self.age_thirds_p99_ms;
        (first > 0.0).then(|| last / first)
    }

    /// Posts per second a broadcast per stream batch asks for: N x batches per second of the
    /// writer. Above the budget, batch mode falls behind without bound.
    pub fn batch_demand(&self) -> f64 {
        self.connections as f64 * self.stream_batches as f64 / self.writer_s.max(1e-9)
    }

    pub fn posts_met(&self) -> bool {
        self.busiest_second <= f64::from(self.budget) * 1.05
    }
}

/// One client's arrivals: per entity, (arrival, value).
type ClientArrivals = Vec<Vec<(Instant, u64)>>;

/// What every real client has received.
struct Received {
    clients: Vec<Mutex<ClientArrivals>>,
}

impl Received {
    fn new(clients: usize, entities: usize) -> Self {
        Self {
            clients: (0..clients)
                .map(|_| Mutex::new(vec![Vec::new(); entities]))
                .collect(),
        }
    }

    fn record(&self, client: usize, at: Instant, values: &[(usize, u64)]) {
        let mut entities = self.clients[client]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for &(entity, value) in values {
            if let Some(arrivals) = entities.get_mut(entity) {
                arrivals.push((at, value));
            }
        }
    }

    /// (client, entity) pairs whose client has received `latest[entity]` (or newer).
    fn at_latest(&self, latest: &[u64]) -> usize {
        self.clients
            .iter()
            .map(|client| {
                let entities = client.lock().unwrap_or_else(PoisonError::into_inner);
                latest
                    .iter()
                    .zip(entities.iter())
                    .filter(|(latest, arrivals)| arrivals.iter().any(|(_, v)| v >= latest))
                    .count()
            })
            .sum()
    }

    /// Every client's arrivals, as offsets from `origin`.
    fn arrivals(&self, origin: Instant) -> Vec<Vec<Arrivals>> {
        self.clients
            .iter()
            .map(|client| {
                let entities = client.lock().unwrap_or_else(PoisonError::into_inner);
                entities
                    .iter()
                    .map(|a| {
                        a.iter()
                            .map(|(at, v)| (at.saturating_duration_since(origin), *v))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }
}

/// The (entity, value) pairs of a METRICS_UPDATE message of the scenario's entities.
fn values(text: &str) -> Vec<(usize, u64)> {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let Some(updates) = message["updates"].as_array() else {
        return Vec::new();
    };
    updates
        .iter()
        .filter_map(|u| {
            let entity = u["data"]["entity_id"]
                .as_str()?
                .strip_prefix(ENTITY_PREFIX)?
                .parse()
                .ok()?;
            let value = u["data"]["metric_value"].as_u64()?;
            Some((entity, value))
        })
        .collect()
}

fn entity_id(entity: usize) -> String {
    format!("{ENTITY_PREFIX}{entity:02}")
}

/// Connects one client and returns its reader, which records the values it receives.
async fn connect(
    url: String,
    client: usize,
    received: Arc<Received>,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("client {client} connecting to {url}"))?;
    Ok(async move {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message
                && text.contains("METRICS_UPDATE")
            {
                let at = Instant::now();
                received.record(client, at, &values(&text));
            }
        }
    })
}

async fn connect_clients(
    url: &str,
    n: usize,
    received: &Arc<Received>,
) -> anyhow::Result<JoinSet<()>> {
    let mut readers = JoinSet::new();
    let mut handshakes = futures::stream::iter(0..n)
        .map(|client| connect(url.to_owned(), client, received.clone()))
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(reader) = handshakes.next().await {
        readers.spawn(reader?);
    }
    Ok(readers)
}

/// What the writer and the drain did.
struct Driven {
    writes: Vec<Write>,
    failed: u64,
    /// Seconds of the writer's run without writes (the writes before took too long).
    skipped: u64,
    writer: Duration,
    end: Duration,
    latest: Vec<u64>,
    drained: bool,
}

/// Sets the flag when dropped, so that the samplers stop however the driver ends.
struct Done<'a>(&'a AtomicBool);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Bench {
    /// moto paging the whole registry through the GSI, alone: what every broadcast costs
    /// before its first post can go out, measured before the runs.
    pub async fn paging_probe(&self) -> anyhow::Result<Paging> {
        let dynamo = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut config = registry::RegistryConfig::for_table(&self.table);
        config.buckets = registry::Buckets::new(self.settings.buckets).context("buckets")?;
        let registry = registry::Registry::new(dynamo, config);
        let mut pages = registry.live_connections(None);
        let mut progress = Progress::new("setup: moto paging the registry", self.ids.len() as u64);
        let started = Instant::now();
        let (mut rows, mut count) = (0u64, 0u64);
        while let Some(page) = pages.next().await {
            rows += page?.connection_ids.len() as u64;
            count += 1;
            progress.update(rows);
        }
        progress.finish(rows, "done");
        let seconds = started.elapsed().as_secs_f64();
        Ok(Paging {
            rows,
            pages: count,
            seconds,
            rows_per_s: rows as f64 / seconds.max(1e-9),
        })
    }

    /// One mode's run, on a stack of its own.
    pub async fn sustained(
        &self,
        mode: BroadcastMode,
        paging: Option<Paging>,
    ) -> anyhow::Result<SustainedResult> {
        let s = self.settings.sustained;
        let (key, name) = match mode {
            BroadcastMode::Rounds => ("sustained-rounds", "rounds"),
            BroadcastMode::Batch => ("sustained-batch", "batch"),
        };
        let setup = Instant::now();
        let in_memory = s.registry == RegistrySource::Memory;
        let names = self.names(key, !in_memory);
        let proxy = if in_memory {
            Some(self.registry_proxy(&names.connections_table).await?)
        } else {
            None
        };
        let sdk = match &proxy {
            Some(proxy) => stack::moto::sdk_config(&proxy.endpoint()).await,
            None => self.sdk.clone(),
        };
        let mut config = self.stack_config(names, Faults::default(), false)?;
        config.queue.concurrency = s.lambda_concurrency.max(1);
        config.mode = mode;
        config.post_budget = s.budget;
        // Production's mapping: batches of up to 100 records, the batching window, 250 ms polls.
        config.stream = StreamSourceConfig {
            batch_size: s.stream_batch,
            window: Duration::from_millis(s.window_ms),
            ..StreamSourceConfig::default()
        };
        let stack = Stack::start(&sdk, config)
            .await
            .with_context(|| format!("starting the stack of scenario {key}"))?;
        for id in self.ids.iter() {
            stack.gateway.add_virtual_connection(id.clone())?;
        }
        let received = Arc::new(Received::new(s.clients, s.entities));
        let readers = connect_clients(&stack.ws_url(), s.clients, &received).await?;
        match &proxy {
            Some(proxy) => {
                let buckets = self.buckets()?;
                proxy.insert_at_random(
                    stack
                        .gateway
                        .socket_ids()
                        .into_iter()
                        .map(|id| (buckets.partition_key(&id), id)),
                );
            }
            None => self.place_clients(&stack).await?,
        }
        let setup_s = setup.elapsed().as_secs_f64();

        let title = format!("sustained, {name}");
        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let origin = Instant::now();
        let origin_ms = now_ms();
        let done = AtomicBool::new(false);
        let written = AtomicU64::new(0);
        let store = RoundStore::new(stack.dynamo.clone(), &stack.resources.names.state_table);
        let (driven, posts, state) = tokio::join!(
            self.drive(&stack, &received, origin, &done, &written, &title),
            sample_posts(&stack, origin, &done),
            sample_state(&stack, &store, origin, &done, &written),
        );
        let driven = match driven {
            Ok(driven) => driven,
            Err(e) => {
                stack.shutdown().await;
                return Err(e);
            }
        };
        let usage = meter.finish()?;
        let counters = stack.gateway.counters();
        let stream_batches = stack.stream_stats.invocations.load(Ordering::Relaxed);
        let arrivals = received.arrivals(origin);
        let stopping = Instant::now();
        stack.shutdown().await;
        let shutdown_s = stopping.elapsed().as_secs_f64();
        drop(readers);

        let Sampled {
            state,
            rounds,
            mut trips,
        } = state;
        trips.sort_unstable();
        let busiest = busiest_second(&posts);
        let half = Duration::from_millis(500);
        let staleness = Staleness::of(
            &samples(&driven.writes, &arrivals, driven.end),
            driven.writer,
        );
        let rounds = rounds_seen(&rounds, origin_ms);
        let ages = ages(
            &driven.writes,
            &arrivals,
            driven.end,
            Duration::from_secs(1),
        );
        let last = state.last().copied().unwrap_or_default();
        let posts_total = counters.posts_received;
        Ok(SustainedResult {
            key: key.to_owned(),
            title,
            mode: name,
            connections: self.ids.len() + s.clients,
            clients: s.clients,
            setup_s,
            writes: driven.writes.len() as u64,
            failed_writes: driven.failed,
            skipped_seconds: driven.skipped,
            writer_s: driven.writer.as_secs_f64(),
            run_s: driven.end.as_secs_f64(),
            drained: driven.drained,
            stream_batches,
            order: order(&arrivals, &driven.latest),
            target_staleness_s: s.target_s(self.ids.len() + s.clients),
            staleness,
            age_thirds_p99_ms: age_thirds(&ages, driven.writer),
            ages,
            max_queue: state.iter().map(|x| x.queue).max().unwrap_or(0),
            end_queue: last.queue,
            max_stream_backlog: state.iter().map(|x| x.stream_backlog).max().unwrap_or(0),
            end_stream_backlog: last.stream_backlog,
            busiest_second: busiest.per_second,
            busiest_detail: increases(&posts, busiest.from.saturating_sub(half), busiest.to + half),
            budget: s.budget,
            posts: posts_total,
            throttled_429: counters.rejected_throttled
                + counters.injected_throttle
                + counters.rejected_buffer_full,
            round_times: RoundTimes::of(&rounds),
            rounds,
            registry: s.registry,
            proxy: proxy.as_ref().map(RegistryProxy::counts),
            paging,
            moto_round_trip: percentiles(&trips),
            usage,
            shutdown_s,
            posts_per_s: per_second(&posts),
            state,
        })
    }

    /// The registry proxy in front of moto, holding the virtual connections as rows of
    /// `table`, in the order they were made.
    async fn registry_proxy(&self, table: &str) -> anyhow::Result<RegistryProxy> {
        let endpoint = self.sdk.endpoint_url().context("the SDK has no endpoint")?;
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint, |(_, rest)| rest)
            .trim_end_matches('/');
        let moto = tokio::net::lookup_host(authority)
            .await
            .with_context(|| format!("resolving moto's address {authority}"))?
            .next()
            .with_context(|| format!("no address for {authority}"))?;
        let buckets = self.buckets()?;
        let rows = self
            .ids
            .iter()
            .map(|id| (buckets.partition_key(id), id.clone()));
        let delay = Duration::from_millis(self.settings.sustained.claim_delay_ms);
        RegistryProxy::start(moto, table, rows, delay)
            .await
            .context("starting the registry proxy")
    }

    /// Moves the real clients' rows to random places among the registered rows of the GSI
    /// (`connectedAt` within the registration's span), so that each is reached at a random
    /// point of every broadcast, as a dashboard among the others is.
    async fn place_clients(&self, stack: &Stack) -> anyhow::Result<()> {
        let Some(&(first, last)) = self.registered_at.get() else {
            return Ok(());
        };
        for id in stack.gateway.socket_ids() {
            let at = first + rand::random_range(0..=(last - first).max(0));
            stack
                .dynamo
                .update_item()
                .table_name(&stack.resources.names.connections_table)
                .key("connectionId", AttributeValue::S(id))
                .update_expression("SET connectedAt = :at")
                .condition_expression("attribute_exists(connectionId)")
                .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
                .send()
                .await
                .context("moving a client's row in the GSI order")?;
        }
        Ok(())
    }

    /// The writer (every entity once a second, the values counting up), then the drain.
    async fn drive(
        &self,
        stack: &Stack,
        received: &Received,
        origin: Instant,
        done: &AtomicBool,
        written: &AtomicU64,
        title: &str,
    ) -> anyhow::Result<Driven> {
        let _done = Done(done);
        let s = self.settings.sustained;
        let mut writes = Vec::new();
        let mut failed = 0;
        let mut progress =
            Progress::new(format!("{title}: writer"), s.writer_s * s.entities as u64);
        // A write of every entity at each second of the writer's run; a second whose turn
        // comes while the writes before are still going (moto too slow) is skipped, not
        // written late: the run stays T s long.
        let mut every_second = tokio::time::interval(Duration::from_secs(1));
        every_second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let first = every_second.tick().await;
        let mut tick = first;
        let mut skipped = 0;
        let mut last_second = None;
        loop {
            let second = (tick - first).as_secs_f64().round() as u64;
            if second >= s.writer_s {
                break;
            }
            skipped += second - last_second.map_or(0, |l: u64| l + 1);
            last_second = Some(second);
            let value = second + 1;
            for (entity, result) in write_all(stack, s.entities, value).await {
                match result {
                    Ok(at) => writes.push(Write {
                        entity,
                        value,
                        at: at.saturating_duration_since(origin),
                    }),
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(error = format!("{e:#}"), "sustained write failed");
                    }
                }
            }
            written.store(writes.len() as u64, Ordering::Relaxed);
            progress.update(writes.len() as u64);
            tick = every_second.tick().await;
        }
        let writer = origin.elapsed();
        progress.finish(writes.len() as u64, "written");

        let mut latest = vec![0; s.entities];
        for w in &writes {
            latest[w.entity] = latest[w.entity].max(w.value);
        }
        let pairs = (s.clients * s.entities) as u64;
        let mut progress = Progress::new(format!("{title}: clients at the latest"), pairs);
        let deadline = Instant::now() + Duration::from_secs(s.drain_s);
        let drained = loop {
            let at_latest = received.at_latest(&latest) as u64;
            progress.update(at_latest);
            if at_latest >= pairs || Instant::now() >= deadline {
                let drained = at_latest >= pairs;
                progress.finish(at_latest, if drained { "drained" } else { "CUT" });
                break drained;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(Driven {
            writes,
            failed,
            skipped,
            writer,
            end: origin.elapsed(),
            latest,
            drained,
        })
    }
}

/// One second's writes: every entity set to `value`, a few PutItems at a time; each
/// entity's result is the moment its PutItem returned.
async fn write_all(
    stack: &Stack,
    entities: usize,
    value: u64,
) -> Vec<(usize, anyhow::Result<Instant>)> {
    futures::stream::iter(0..entities)
        .map(|entity| async move { (entity, put(stack, entity, value).await) })
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await
}

async fn put(stack: &Stack, entity: usize, value: u64) -> anyhow::Result<Instant> {
    let text = |s: &str| AttributeValue::S(s.to_owned());
    stack
        .dynamo
        .put_item()
        .table_name(&stack.resources.names.metrics_table)
        .item(METRICS_KEY, text(&entity_id(entity)))
        .item("entity_type", text("stream"))
        .item("metric_value", AttributeValue::N(value.to_string()))
        .item("timestamp", text("2024-11-04T12:34:56Z"))
        .send()
        .await
        .context("PutItem on the metrics table")?;
    Ok(Instant::now())
}

/// The gateway's post counter every [`POSTS_EVERY`] until `done`.
async fn sample_posts(stack: &Stack, origin: Instant, done: &AtomicBool) -> Vec<(Duration, u64)> {
    let mut samples = Vec::new();
    while !done.load(Ordering::Relaxed) {
        samples.push((origin.elapsed(), stack.gateway.counters().posts_received));
        tokio::time::sleep(POSTS_EVERY).await;
    }
    samples.push((origin.elapsed(), stack.gateway.counters().posts_received));
    samples
}

/// What the state sampler saw.
struct Sampled {
    state: Vec<StateSample>,
    rounds: Vec<(Duration, Option<RoundState>)>,
    /// How long each read of the round item took.
    trips: Vec<Duration>,
}

/// The fanout queue's depth, the stream backlog and the round item (none in batch mode),
/// every [`STATE_EVERY`] until `done`, and once more at the end.
async fn sample_state(
    stack: &Stack,
    store: &RoundStore,
    origin: Instant,
    done: &AtomicBool,
    written: &AtomicU64,
) -> Sampled {
    let mut sampled = Sampled {
        state: Vec::new(),
        rounds: Vec::new(),
        trips: Vec::new(),
    };
    loop {
        let finished = done.load(Ordering::Relaxed);
        let at = origin.elapsed();
        let handled = stack.stream_stats.records.load(Ordering::Relaxed);
        sampled.state.push(StateSample {
            at_s: at.as_secs_f64(),
            queue: queue_depth(stack).await.unwrap_or(0),
            stream_backlog: written.load(Ordering::Relaxed).saturating_sub(handled),
        });
        let asked = Instant::now();
        match store.round().await {
            Ok(round) => {
                sampled.trips.push(asked.elapsed());
                sampled.rounds.push((at, round));
            }
            Err(e) => tracing::warn!(error = %e, "reading the round item"),
        }
        if finished {
            return sampled;
        }
        let next = Instant::now() + STATE_EVERY;
        while Instant::now() < next && !done.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Messages in the fanout queue: visible, in flight and delayed.
async fn queue_depth(stack: &Stack) -> anyhow::Result<u64> {
    let attributes = stack
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.resources.fanout_queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok(attributes
        .values()
        .filter_map(|v| v.parse::<u64>().ok())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_gives_the_values_of_the_scenarios_entities() {
        let text = r#"{"type":"METRICS_UPDATE","id":"r-1","part":1,"parts":1,"updates":[
            {"eventType":"MODIFY","data":{"entity_id":"sustained-07","metric_value":12}},
            {"eventType":"MODIFY","data":{"entity_id":"canary-heartbeat","metric_value":1}},
            {"eventType":"INSERT","data":{"entity_id":"sustained-49","metric_value":3}}]}"#;
        assert_eq!(values(text), [(7, 12), (49, 3)]);
        assert!(values("not json").is_empty());
        assert_eq!(entity_id(7), "sustained-07");
    }

    #[test]
    fn the_target_is_two_rounds_at_the_budget_plus_the_window() {
        let s = SustainedSettings {
            clients: 50,
            entities: 50,
            writer_s: 120,
            drain_s: 60,
            budget: 9_000,
            window_ms: 5_000,
            stream_batch: 100,
            registry: RegistrySource::Memory,
            lambda_concurrency: 50,
            claim_delay_ms: 0,
        };
        assert!((s.target_s(100_000) - 27.222).abs() < 0.001);
    }
}
