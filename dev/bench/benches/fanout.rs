//! Posts per second of one fanout invocation: one 1,000-connection job (a processor shard) to
//! virtual connections of an in-process gateway that answers every post after 20 ms, as
//! PostToConnection does from a Lambda in the API's region, for several concurrencies. The
//! ceiling is `concurrency / 20 ms`; the gap to it is the client's and gateway's CPU on two
//! cores (SDK signing and orchestration, HTTP).
//!
//! The happy path never touches the registry (no 410) or the queue (no requeue): both point at
//! an unreachable loopback port, so no moto is needed.
//!
//! `cargo bench -p bench --bench fanout`

use std::time::{Duration, Instant};

use apigw::{Gateway, GatewayConfig, Latency, handler_fn, proxy_response};
use aws_lambda_events::sqs::SqsEvent;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use fanout::Fanout;
use fanout::management::ManagementApi;
use fanout::policy::RetryPolicy;
use jobs::settings::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;
use jobs::{FanoutJob, JobQueue, QueueSettings};
use registry::{Registry, RegistryConfig};
use serde_json::json;
use serde_json::value::RawValue;
use tokio::runtime::Runtime;

/// Connections in the job: a processor shard.
const SHARD: usize = 1_000;
const LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCIES: [usize; 5] = [16, 32, 64, 128, 256];
/// Nothing listens here: any registry or queue call would fail fast and show in the report.
const UNREACHABLE: &str = "http://127.0.0.1:9";

/// A METRICS_UPDATE of a typical size.
const PAYLOAD: &str = r#"{"type":"METRICS_UPDATE","id":"b-000001","part":1,"parts":1,"updates":[{"eventType":"MODIFY","timestamp":1699123456789,"sequence":"4921000000000000000000000001","data":{"entity_id":"stream-001","metric_value":1234,"status":"ok","region":"eu-west-1"}}]}"#;

/// The invocation's SQS event: one record carrying the job.
fn event(job: &FanoutJob) -> SqsEvent {
    let body = job
        .encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES)
        .expect("job fits");
    serde_json::from_value(json!({"Records": [{
        "messageId": "bench-1", "receiptHandle": "rh", "body": body, "eventSource": "aws:sqs",
        "attributes": {}, "messageAttributes": {}
    }]}))
    .expect("an SQS event")
}

fn fanout(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let (sdk, gateway, ids) = runtime.block_on(async {
        let handler = handler_fn(|_event| async { Ok(proxy_response(200, None)) });
        let config = GatewayConfig {
            latency: Latency::new(LATENCY, Duration::ZERO),
            ..GatewayConfig::default()
        };
        let gateway = Gateway::bind("127.0.0.1:0".parse().expect("address"), config, handler)
            .await
            .expect("gateway starts");
        let ids = gateway.add_virtual_connections(SHARD);
        (platform::aws::loopback(UNREACHABLE).await, gateway, ids)
    });
    let part = RawValue::from_string(PAYLOAD.to_owned()).expect("JSON");
    let event = event(&FanoutJob::new("b-000001", 0, vec![part], ids));
    let poster = ManagementApi::new(&sdk, &gateway.management_endpoint());
    let registry = Registry::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        RegistryConfig::for_table("unused"),
    );
    let queue = JobQueue::new(
        aws_sdk_sqs::Client::new(&sdk),
        &QueueSettings::for_url(format!("{UNREACHABLE}/000000000000/unused")),
    );

    let mut group = c.benchmark_group("fanout_invocation_1000_connections_20ms");
    group.throughput(Throughput::Elements(SHARD as u64));
    // An iteration takes 0.1 to 1.3 s: flat sampling runs each sample once, not 1..=10 times.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for concurrency in CONCURRENCIES {
        let fanout = Fanout {
            poster: poster.clone(),
            registry: registry.clone(),
            queue: queue.clone(),
            policy: RetryPolicy::default(),
            concurrency,
            budget: None,
            rounds: None,
        };
        group.bench_function(BenchmarkId::new("concurrency", concurrency), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                        let (response, report) = fanout.handle(event.clone(), deadline).await;
                        // A failed post must not pass for throughput.
                        assert!(response.batch_item_failures.is_empty(), "{report:?}");
                        assert_eq!(report.delivered, SHARD as u64, "{report:?}");
                    }
                    started.elapsed()
                })
            });
        });
    }
    group.finish();
    let counters = gateway.counters();
    assert_eq!(counters.rejected_total(), 0, "{counters:?}");
    runtime.block_on(gateway.shutdown()).expect("shutdown");
}

criterion_group!(benches, fanout);
criterion_main!(benches);
