//! What the scenarios share: the SDK on moto, the N virtual connection ids and their rows in
//! one connections table (written once, when a scenario reads them from moto: this is setup,
//! not timed), and a private stack per scenario (its own queues, metrics table and stream, so
//! every scenario starts from empty queues) on the benchmark's gateway settings.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apigw::{Faults, GatewayConfig, Latency, Throttle, ids};
use aws_config::SdkConfig;
use event_sources::queue::QueueSourceConfig;
use event_sources::streams::StreamSourceConfig;
use fanout::policy::RetryPolicy;
use processor::broadcast::BroadcastSettings;
use registry::{Buckets, Connection, Registry, RegistryConfig};
use rounds::BroadcastMode;
use stack::bootstrap::{CONNECTIONS_TABLE, Names, ensure_connections_table};
use stack::{Stack, StackConfig};

use super::Settings;
use super::progress::Progress;

/// Rows per `register_many` call: small enough for a lively progress line.
const REGISTER_CHUNK: usize = 2_000;
/// The fanout "function timeout" (production's 60 s): the queue's visibility timeout is set
/// above it, so a long invocation is never delivered twice.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(60);

/// The shared context of one benchmark run.
pub struct Bench {
    pub sdk: SdkConfig,
    pub settings: Settings,
    /// Makes every name of this run unique on a moto that outlives it.
    pub run_id: String,
    /// The virtual connections' ids, the same in every scenario.
    pub ids: Arc<[String]>,
    /// The connections table holding a row per id (once [`Bench::register`] ran).
    pub table: String,
    /// The first and last `connectedAt` (epoch ms) of the registered rows: their span of the
    /// GSI order.
    pub registered_at: OnceLock<(i64, i64)>,
}

/// How the registry was filled.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Registration {
    pub rows: usize,
    pub seconds: f64,
    pub rows_per_s: f64,
}

impl Bench {
    pub fn new(sdk: SdkConfig, settings: Settings) -> Self {
        let run_id = format!("{:08x}", rand::random::<u32>());
        let ids: Arc<[String]> = (0..settings.connections)
            .map(|_| ids::random_id())
            .collect();
        Self {
            table: format!("{CONNECTIONS_TABLE}-bench-{run_id}"),
            sdk,
            settings,
            run_id,
            ids,
            registered_at: OnceLock::new(),
        }
    }

    fn registry_config(&self, table: &str) -> anyhow::Result<RegistryConfig> {
        let mut config = RegistryConfig::for_table(table);
        config.buckets = self.buckets()?;
        Ok(config)
    }

    pub fn buckets(&self) -> anyhow::Result<Buckets> {
        Buckets::new(self.settings.buckets).context("--buckets must be 1..=1000")
    }

    /// Writes one row per id into the shared table with BatchWriteItem.
    pub async fn register(&self) -> anyhow::Result<Registration> {
        let dynamo = aws_sdk_dynamodb::Client::new(&self.sdk);
        let config = self.registry_config(&self.table)?;
        ensure_connections_table(&dynamo, &config).await?;
        let registry = Registry::new(dynamo, config);
        let buckets = self.buckets()?;
        let started = Instant::now();
        let mut progress = Progress::new("setup: registering rows in moto", self.ids.len() as u64);
        let mut done = 0;
        let first = platform::clock::now_ms();
        let mut last = first;
        for chunk in self.ids.chunks(REGISTER_CHUNK) {
            let now = platform::clock::now_ms();
            last = now;
            let rows: Vec<Connection> = chunk
                .iter()
                .map(|id| {
                    Connection::new(
                        id.clone(),
                        now,
                        Some("127.0.0.1".to_owned()),
                        Some("bench-virtual-connection".to_owned()),
                        buckets,
                        registry::config::DEFAULT_TTL_SECONDS,
                    )
                })
                .collect();
            registry.register_many(&rows).await?;
            done += rows.len() as u64;
            progress.update(done);
        }
        progress.finish(done, "done");
        let _ = self.registered_at.set((first, last));
        let seconds = started.elapsed().as_secs_f64();
        Ok(Registration {
            rows: self.ids.len(),
            seconds,
            rows_per_s: self.ids.len() as f64 / seconds.max(1e-9),
        })
    }

    /// A private set of names for `scenario`; with `shared_table`, the connections table is
    /// the one holding the registered rows.
    pub fn names(&self, scenario: &str, shared_table: bool) -> Names {
        let names = Names::with_suffix(&format!("-bench-{}-{scenario}", self.run_id));
        if shared_table {
            Names {
                connections_table: self.table.clone(),
                ..names
            }
        } else {
            names
        }
    }

    /// The emulated API Gateway: the account throttle (unless `unthrottled`) and per-call
    /// latency of the settings.
    pub fn gateway_config(&self, faults: Faults, unthrottled: bool) -> GatewayConfig {
        let s = &self.settings;
        GatewayConfig {
            throttle: (!unthrottled).then(|| Throttle::new(s.rate, s.burst)),
            latency: Latency::new(
                Duration::from_millis(s.latency_ms),
                Duration::from_millis(s.jitter_ms),
            ),
            faults,
            ..GatewayConfig::default()
        }
    }

    /// The processor's paging and sending, as the settings ask.
    pub fn broadcast_settings(&self) -> BroadcastSettings {
        BroadcastSettings {
            shard_size: self.settings.shard_size,
            page_size: None,
            send_concurrency: self.settings.send_concurrency,
        }
    }

    pub fn stack_config(
        &self,
        names: Names,
        faults: Faults,
        unthrottled: bool,
    ) -> anyhow::Result<StackConfig> {
        let s = &self.settings;
        Ok(StackConfig {
            names,
            buckets: self.buckets()?,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            gateway: self.gateway_config(faults, unthrottled),
            stream: StreamSourceConfig {
                // A short window: the figure is the fan-out's, not production's 5 s batching.
                window: Duration::from_millis(100),
                poll_interval: Duration::from_millis(100),
                ..StreamSourceConfig::default()
            },
            queue: QueueSourceConfig {
                batch_size: s.batch_size,
                concurrency: s.lambda_concurrency,
                ..QueueSourceConfig::default()
            },
            function_timeout: FUNCTION_TIMEOUT,
            fanout_concurrency: s.fanout_concurrency,
            policy: RetryPolicy::default(),
            broadcast: self.broadcast_settings(),
            max_message_bytes: processor::message::MAX_MESSAGE_BYTES,
            simulator: None,
            auth: None,
            // The single-broadcast scenarios measure the fan-out against the throttle itself:
            // a broadcast per batch, posted unpaced.
            mode: BroadcastMode::Batch,
            post_budget: 0,
            round_lease: Duration::from_secs(60),
            schedule: Duration::from_secs(60),
            canary: None,
            ..StackConfig::dev(0)
        })
    }

    /// A private stack whose gateway knows every id of `ids` as a virtual connection.
    pub async fn virtual_stack(
        &self,
        scenario: &str,
        ids: &[String],
        shared_table: bool,
        faults: Faults,
        unthrottled: bool,
    ) -> anyhow::Result<Stack> {
        let config = self.stack_config(self.names(scenario, shared_table), faults, unthrottled)?;
        let stack = Stack::start(&self.sdk, config)
            .await
            .with_context(|| format!("starting the stack of scenario {scenario}"))?;
        for id in ids {
            stack.gateway.add_virtual_connection(id.clone())?;
        }
        Ok(stack)
    }
}
