//! The whole pipeline on one machine: bootstrap, the gateway with the registry handlers, the
//! stream poller driving the processor, the queue poller driving fanout, the dashboard page
//! and (optionally) the metrics simulator. The `local` binary and the end-to-end tests both
//! start it through [`Stack::start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apigw::{
    Authorizer, AuthorizerFailure, ConnectAuthorizer, Gateway, GatewayConfig, authorizer_fn,
    handler_fn,
};
use authorizer::{AuthConfig, ConnectAuthEvent, Verifier};
use aws_config::SdkConfig;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use event_sources::queue::{QueuePoller, QueueSourceConfig, QueueStats};
use event_sources::streams::{OnFailure, StreamPoller, StreamSourceConfig, StreamStats};
use event_sources::{InvokeError, function};
use fanout::Fanout;
use fanout::management::ManagementApi;
use fanout::policy::RetryPolicy;
use jobs::{JobQueue, QueueSettings};
use processor::broadcast::BroadcastSettings;
use processor::{Processor, ProcessorConfig};
use registry::{Buckets, Registry, RegistryConfig};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bootstrap::{Names, Resources, bootstrap};
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
}

impl StackConfig {
    /// `make dev`: production's names, snappier batching than production's 5 s window.
    pub fn dev(port: u16) -> Self {
        Self {
            names: Names::production_defaults(),
            buckets: Buckets::SEED,
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            gateway: GatewayConfig::default(),
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
        let gateway = start_gateway(&registry, &config).await?;
        let queue = JobQueue::new(
            sqs.clone(),
            &QueueSettings::for_url(&resources.fanout_queue_url),
        );

        let stop = CancellationToken::new();
        let stream_stats = Arc::new(StreamStats::default());
        let queue_stats = Arc::new(QueueStats::default());
        let processor = processor_function(&registry, &queue, &config);
        let fanout = fanout_function(sdk, &registry, queue, &gateway, &config);
        let mut tasks = vec![
            tokio::spawn(
                stream_poller(sdk, &sqs, &resources, &config, processor, &stream_stats)
                    .run(stop.clone()),
            ),
            tokio::spawn(
                queue_poller(&sqs, &resources, &config, fanout, &queue_stats).run(stop.clone()),
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
        Ok(Self {
            gateway,
            resources,
            registry,
            dynamo,
            sqs,
            stream_stats,
            queue_stats,
            stop,
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

/// The gateway on `config.listen`, its routes running the registry's handlers, the page, and
/// with `auth` the authorizer on `$connect`.
async fn start_gateway(registry: &Registry, config: &StackConfig) -> anyhow::Result<Gateway> {
    let mut gateway_config = config.gateway.clone();
    if let Some(auth) = &config.auth {
        gateway_config.authorizer = Some(ConnectAuthorizer::new(connect_authorizer(auth)?));
    }
    let routes = {
        let registry = registry.clone();
        handler_fn(move |event| {
            let registry = registry.clone();
            async move { Ok(registry::handlers::route(&registry, &event).await) }
        })
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
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
    config: &StackConfig,
) -> Arc<Processor> {
    Arc::new(Processor {
        registry: registry.clone(),
        queue: queue.clone(),
        config: ProcessorConfig {
            registry: registry.config().clone(),
            queue: QueueSettings::for_url(queue.url()),
            max_message_bytes: config.max_message_bytes,
            broadcast: config.broadcast,
        },
    })
}

/// The fanout "function", posting through the gateway's management API.
fn fanout_function(
    sdk: &SdkConfig,
    registry: &Registry,
    queue: JobQueue,
    gateway: &Gateway,
    config: &StackConfig,
) -> Arc<Fanout<ManagementApi>> {
    Arc::new(Fanout {
        poster: ManagementApi::new(sdk, &gateway.management_endpoint()),
        registry: registry.clone(),
        queue,
        policy: config.policy,
        concurrency: config.fanout_concurrency,
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
