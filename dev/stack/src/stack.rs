//! The whole pipeline on one machine: bootstrap, the gateway with the registry handlers, the
//! stream poller driving the processor, the queue poller driving fanout, the dashboard page
//! and (optionally) the metrics simulator. The `local` binary and the end-to-end tests both
//! start it through [`Stack::start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apigw::{
    Authorizer, AuthorizerFailure, ConnectAuthorizer, Gateway, GatewayConfig, Throttle,
    authorizer_fn, handler_fn,
};
use authorizer::{AuthConfig, ConnectAuthEvent, Verifier};
use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use event_sources::queue::{QueuePoller, QueueSourceConfig, QueueStats};
use event_sources::streams::{OnFailure, StreamPoller, StreamSourceConfig, StreamStats};
use event_sources::{InvokeError, function};
use fanout::Fanout;
use fanout::budget::dynamo::DynamoLanes;
use fanout::budget::{Lanes, PostBudget};
use fanout::management::ManagementApi;
use fanout::policy::RetryPolicy;
use jobs::{JobQueue, QueueSettings};
use processor::broadcast::BroadcastSettings;
use processor::{Processor, ProcessorConfig};
use registry::{Buckets, Registry, RegistryConfig};
use rounds::{BroadcastMode, Coordinator, RoundSettings, RoundStore, Ticks};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bootstrap::{Names, Resources, bootstrap};
use crate::canary::{self, CanaryRuns, LocalCanary};
use crate::page;
use crate::simulator::{self, SimulatorConfig};

#[derive(Debug, Clone)]
pub struct StackConfig {
    pub names: Names,
    pub buckets: Buckets,
    pub listen: SocketAddr,
    pub gateway: GatewayConfig,
    pub stream: StreamSourceConfig,
    pub queue: QueueSourceConfig,
    /// The fanout "function timeout"; the queue's visibility timeout is set above it.
    pub function_timeout: Duration,
    pub fanout_concurrency: usize,
    pub policy: RetryPolicy,
    pub broadcast: BroadcastSettings,
    pub max_message_bytes: usize,
    pub simulator: Option<SimulatorConfig>,
    /// `AUTH_MODE=jwt`: the authorizer runs on `$connect`, as API Gateway runs it.
    pub auth: Option<AuthConfig>,
    /// `BROADCAST_MODE`: conflated rounds (the default) or a broadcast per stream batch.
    pub mode: BroadcastMode,
    /// `POST_BUDGET_PER_SECOND` (0: fanout posts unpaced).
    pub post_budget: u32,
    /// `ROUND_LEASE_SECONDS`.
    pub round_lease: Duration,
    /// The processor's schedule (EventBridge's rate in AWS).
    pub schedule: Duration,
    /// The end-to-end canary against the gateway (`None`: off).
    pub canary: Option<LocalCanary>,
    /// `SNAPSHOT_CACHE_MS`: how old a read of the entities a snapshot may come from.
    pub snapshot_cache: Duration,
}

impl StackConfig {
    /// `make dev`: production's names, snappier batching than production's 5 s window, and
    /// the gateway throttled as an AWS account is by default (10,000 posts/s, burst 5,000).
    pub fn dev(port: u16) -> Self {
        Self {
            names: Names::production_defaults(),
            buckets: Buckets::SEED,
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            gateway: GatewayConfig {
                throttle: Some(Throttle::new(10_000.0, 5_000)),
                ..GatewayConfig::default()
            },
            stream: StreamSourceConfig {
                window: Duration::from_millis(500),
                ..StreamSourceConfig::default()
            },
            queue: QueueSourceConfig::default(),
            function_timeout: Duration::from_secs(30),
            fanout_concurrency: fanout::config::DEFAULT_CONCURRENCY,
            policy: RetryPolicy::default(),
            broadcast: BroadcastSettings {
                shard_size: 1000,
                page_size: None,
                send_concurrency: 4,
            },
            max_message_bytes: processor::message::MAX_MESSAGE_BYTES,
            simulator: Some(SimulatorConfig::default()),
            auth: None,
            mode: BroadcastMode::Rounds,
            post_budget: rounds::settings::DEFAULT_POST_BUDGET,
            round_lease: Duration::from_secs(60),
            schedule: Duration::from_secs(60),
            canary: Some(LocalCanary::default()),
            snapshot_cache: Duration::from_millis(snapshot::config::DEFAULT_CACHE_MS),
        }
    }

    /// A private stack for one test: unique names, any free port, short windows and timeouts.
    pub fn for_tests() -> Self {
        let suffix = format!("-{:012x}", rand::random::<u64>() >> 16);
        Self {
            names: Names::with_suffix(&suffix),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            stream: StreamSourceConfig {
                window: Duration::from_millis(200),
                poll_interval: Duration::from_millis(100),
                ..StreamSourceConfig::default()
            },
            function_timeout: Duration::from_secs(3),
            simulator: None,
            canary: None,
            ..Self::dev(0)
        }
    }
}

pub struct Stack {
    pub gateway: Gateway,
    pub resources: Resources,
    pub registry: Registry,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub stream_stats: Arc<StreamStats>,
    pub queue_stats: Arc<QueueStats>,
    stop: CancellationToken,
    /// The queue poller's own stop, a child of `stop` ([`Stack::stop_fanout`]).
    fanout_stop: CancellationToken,
    /// The canary's runs so far (none when it is off).
    pub canary_runs: Arc<CanaryRuns>,
    tasks: Vec<JoinHandle<()>>,
}

impl Stack {
    pub async fn start(sdk: &SdkConfig, config: StackConfig) -> anyhow::Result<Self> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut registry_config = RegistryConfig::for_table(&config.names.connections_table);
        registry_config.buckets = config.buckets;
        let visibility = u32::try_from(config.function_timeout.as_secs()).unwrap_or(900) + 2;
        let resources =
            bootstrap(&dynamo, &sqs, &registry_config, &config.names, visibility).await?;
        let registry = Registry::new(dynamo.clone(), registry_config);
        let gateway = start_gateway(sdk, &registry, &resources, &config).await?;
        let queue = JobQueue::new(
            sqs.clone(),
            &QueueSettings::for_url(&resources.fanout_queue_url),
        );

        let stop = CancellationToken::new();
        let fanout_stop = stop.child_token();
        let stream_stats = Arc::new(StreamStats::default());
        let queue_stats = Arc::new(QueueStats::default());
        let coordinator = Coordinator {
            store: RoundStore::new(dynamo.clone(), &resources.names.state_table),
            ticks: Ticks::new(sqs.clone(), &resources.tick_queue_url),
        };
        let processor = processor_function(&registry, &queue, &coordinator, &resources, &config);
        let fanout = fanout_function(sdk, &registry, queue, &gateway, &coordinator, &config);
        let mut tasks = vec![
            tokio::spawn(
                stream_poller(
                    sdk,
                    &sqs,
                    &resources,
                    &config,
                    processor.clone(),
                    &stream_stats,
                )
                .run(stop.clone()),
            ),
            tokio::spawn(
                tick_poller(&sqs, &resources, &config, processor.clone()).run(stop.clone()),
            ),
            tokio::spawn(schedule(processor, config.schedule, stop.clone())),
            tokio::spawn(
                queue_poller(&sqs, &resources, &config, fanout, &queue_stats)
                    .run(fanout_stop.clone()),
            ),
        ];
        if let Some(simulation) = config.simulator {
            tasks.push(tokio::spawn(simulator::run(
                dynamo.clone(),
                resources.names.metrics_table.clone(),
                simulation,
                stop.clone(),
            )));
        }
        let canary_runs = Arc::new(CanaryRuns::default());
        if let Some(local) = config.canary {
            tasks.extend(canary::spawn(
                sdk,
                gateway.ws_url(),
                resources.names.metrics_table.clone(),
                config.auth.as_ref(),
                local,
                &canary_runs,
                stop.clone(),
            ));
        }
        Ok(Self {
            gateway,
            resources,
            registry,
            dynamo,
            sqs,
            stream_stats,
            queue_stats,
            stop,
            fanout_stop,
            canary_runs,
            tasks,
        })
    }

    pub fn ws_url(&self) -> String {
        self.gateway.ws_url()
    }

    pub fn page_url(&self) -> String {
        let addr = self.gateway.local_addr();
        format!("http://{}:{}/", addr.ip(), addr.port())
    }

    /// Stops the fanout queue's poller alone, as a disabled event source mapping or a dead
    /// fanout would: invocations in progress finish, no message is received after. Jobs then
    /// wait in the queue and nothing reaches a dashboard (tests of what the canary sees).
    pub fn stop_fanout(&self) {
        self.fanout_stop.cancel();
    }

    /// Stops the pollers and the simulator, then the gateway (running `$disconnect`s).
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(e) = self.gateway.shutdown().await {
            tracing::warn!(error = %e, "gateway shutdown");
        }
    }
}

/// The gateway on `config.listen`, its routes running the registry's handlers (snapshots from
/// the stack's state table, posted through the gateway's own management API, as the `message`
/// function builds them), the page, and with `auth` the authorizer on `$connect`.
async fn start_gateway(
    sdk: &SdkConfig,
    registry: &Registry,
    resources: &Resources,
    config: &StackConfig,
) -> anyhow::Result<Gateway> {
    let mut gateway_config = config.gateway.clone();
    if let Some(auth) = &config.auth {
        gateway_config.authorizer = Some(ConnectAuthorizer::new(connect_authorizer(auth)?));
    }
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    // The management endpoint the gateway will have (`Gateway::management_endpoint`), known
    // once the listener is bound.
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let snapshots = Arc::new(snapshot::state_snapshots(
        sdk,
        registry.client(),
        &snapshot::SnapshotConfig {
            state_table: resources.names.state_table.clone(),
            endpoint: format!("http://{addr}/{}", config.gateway.stage),
            cache: config.snapshot_cache,
        },
    ));
    let routes = {
        let registry = registry.clone();
        handler_fn(move |event| {
            let (registry, snapshots) = (registry.clone(), snapshots.clone());
            async move { Ok(registry::handlers::route(&registry, &*snapshots, &event).await) }
        })
    };
    Ok(Gateway::start_with_routes(
        listener,
        gateway_config,
        routes,
        page::routes(&config.gateway.stage),
    )?)
}

/// The authorizer "function": the event as API Gateway sends it in, its answer or its error
/// (`Unauthorized` becomes 401) out.
fn connect_authorizer(auth: &AuthConfig) -> anyhow::Result<Arc<dyn Authorizer>> {
    let verifier = Arc::new(Verifier::from_config(auth)?);
    Ok(authorizer_fn(move |event| {
        let verifier = verifier.clone();
        async move {
            let event: ConnectAuthEvent =
                serde_json::from_value(event).map_err(AuthorizerFailure::from_error)?;
            let answer = authorizer::authorize(&verifier, &event)
                .await
                .map_err(AuthorizerFailure::from_error)?;
            serde_json::to_value(answer).map_err(AuthorizerFailure::from_error)
        }
    }))
}

/// The processor "function", as its Lambda bin builds it.
fn processor_function(
    registry: &Registry,
    queue: &JobQueue,
    coordinator: &Coordinator,
    resources: &Resources,
    config: &StackConfig,
) -> Arc<Processor> {
    let rounds = (config.mode == BroadcastMode::Rounds).then(|| RoundSettings {
        table_name: resources.names.state_table.clone(),
        tick_queue_url: resources.tick_queue_url.clone(),
        lease: config.round_lease,
        budget_per_second: config.post_budget,
    });
    Arc::new(Processor {
        registry: registry.clone(),
        queue: queue.clone(),
        rounds: rounds.is_some().then(|| coordinator.clone()),
        config: ProcessorConfig {
            registry: registry.config().clone(),
            queue: QueueSettings::for_url(queue.url()),
            max_message_bytes: config.max_message_bytes,
            broadcast: config.broadcast,
            rounds,
            // Batch mode keeps the entities too: snapshots read them in either mode.
            batch_state_table: (config.mode == BroadcastMode::Batch)
                .then(|| resources.names.state_table.clone()),
        },
    })
}

/// The tick queue's event source mapping: each batch of ticks is one `tick()`.
fn tick_poller(
    sqs: &aws_sdk_sqs::Client,
    resources: &Resources,
    config: &StackConfig,
    processor: Arc<Processor>,
) -> Arc<QueuePoller> {
    Arc::new(QueuePoller {
        sqs: sqs.clone(),
        queue_url: resources.tick_queue_url.clone(),
        queue_arn: resources.tick_queue_arn.clone(),
        config: config.queue,
        function: Arc::new(function(move |_: SqsEvent| {
            let processor = processor.clone();
            async move {
                let report = processor.tick().await?;
                report.log();
                Ok::<SqsBatchResponse, InvokeError>(SqsBatchResponse::default())
            }
        })),
        stats: Arc::new(QueueStats::default()),
    })
}

/// The processor's schedule, as EventBridge runs it: a tick every `every`.
async fn schedule(processor: Arc<Processor>, every: Duration, stop: CancellationToken) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = interval.tick() => {}
        }
        match processor.tick().await {
            Ok(report) => report.log(),
            Err(error) => tracing::error!(%error, "scheduled tick failed"),
        }
        if let Ok(Some(status)) = processor.round_status().await {
            tracing::info!(
                round_age_ms = status.round_age_ms,
                pending_entities = status.pending_entities,
                "rounds status"
            );
        }
    }
}

/// The fanout "function", posting through the gateway's management API.
fn fanout_function(
    sdk: &SdkConfig,
    registry: &Registry,
    queue: JobQueue,
    gateway: &Gateway,
    coordinator: &Coordinator,
    config: &StackConfig,
) -> Arc<Fanout<ManagementApi>> {
    let budget = (config.post_budget > 0).then(|| PostBudget {
        lanes: Lanes::Dynamo(DynamoLanes::new(
            registry.client().clone(),
            coordinator.store.table(),
        )),
        per_second: config.post_budget,
    });
    Arc::new(Fanout {
        poster: ManagementApi::new(sdk, &gateway.management_endpoint()),
        registry: registry.clone(),
        queue,
        policy: config.policy,
        concurrency: config.fanout_concurrency,
        budget,
        rounds: Some(coordinator.clone()),
    })
}

/// The metrics stream's event source mapping: batches to the processor, failures to the DLQ.
fn stream_poller(
    sdk: &SdkConfig,
    sqs: &aws_sdk_sqs::Client,
    resources: &Resources,
    config: &StackConfig,
    processor: Arc<Processor>,
    stats: &Arc<StreamStats>,
) -> Arc<StreamPoller> {
    Arc::new(StreamPoller {
        client: aws_sdk_dynamodbstreams::Client::new(sdk),
        stream_arn: resources.metrics_stream_arn.clone(),
        config: config.stream,
        function: Arc::new(function(move |event: Event| {
            let processor = processor.clone();
            async move {
                let report = processor.handle(&event).await?;
                report.log();
                Ok::<_, InvokeError>(())
            }
        })),
        on_failure: OnFailure {
            sqs: sqs.clone(),
            queue_url: resources.stream_dlq_url.clone(),
        },
        stats: stats.clone(),
    })
}

/// The fanout queue's event source mapping, each invocation with the function's time budget.
fn queue_poller(
    sqs: &aws_sdk_sqs::Client,
    resources: &Resources,
    config: &StackConfig,
    fanout: Arc<Fanout<ManagementApi>>,
    stats: &Arc<QueueStats>,
) -> Arc<QueuePoller> {
    let function_timeout = config.function_timeout;
    Arc::new(QueuePoller {
        sqs: sqs.clone(),
        queue_url: resources.fanout_queue_url.clone(),
        queue_arn: resources.fanout_queue_arn.clone(),
        config: config.queue,
        function: Arc::new(function(move |event: SqsEvent| {
            let fanout = fanout.clone();
            async move {
                let deadline = fanout::handler::budget(function_timeout);
                let (response, report) = fanout.handle(event, deadline).await;
                report.log();
                Ok::<SqsBatchResponse, InvokeError>(response)
            }
        })),
        stats: stats.clone(),
    })
}
