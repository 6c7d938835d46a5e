//! Posts per second through the emulator's management API, to real sockets (counted once
//! every message is read by its client) and to virtual connections, called two ways with 64
//! calls in flight: `sdk/*` with the real aws-sdk-apigatewaymanagement client as the fan-out
//! calls it (retries off), `raw_http/*` with a bare keep-alive HTTP/1.1 client, which shows the
//! gateway's own capacity when the client shares the machine's two cores.
//!
//! `cargo bench -p local --bench gateway`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apigw::{Gateway, GatewayConfig, handler_fn, proxy_response};
use aws_sdk_apigatewaymanagement::Client;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

/// Posts per measured iteration.
const BATCH: usize = 2_000;
/// Calls in flight, as a fan-out worker keeps them.
const CONCURRENCY: usize = 64;
const SOCKETS: usize = 100;
const VIRTUAL_CONNECTIONS: usize = 100_000;

/// A METRICS_UPDATE of a typical size.
const PAYLOAD: &str = r#"{"type":"METRICS_UPDATE","id":"b-000001","part":1,"parts":1,"updates":[{"eventType":"MODIFY","timestamp":1699123456789,"sequence":"4921000000000000000000000001","data":{"entity_id":"stream-001","metric_value":1234,"status":"ok","region":"eu-west-1"}}]}"#;

async fn sdk(endpoint: String) -> Client {
    let sdk = platform::aws::loopback(&endpoint).await;
    let config = aws_sdk_apigatewaymanagement::config::Builder::from(&sdk)
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn start_gateway() -> Gateway {
    let handler = handler_fn(|_event| async { Ok(proxy_response(200, None)) });
    Gateway::bind(
        "127.0.0.1:0".parse().expect("address"),
        GatewayConfig::default(),
        handler,
    )
    .await
    .expect("gateway starts")
}

/// Posts `BATCH` messages round-robin over `ids`, starting at `*cursor`; panics on any error
/// so that a rejected post cannot pass for throughput.
async fn post_batch(client: &Client, ids: &[String], cursor: &mut usize) {
    let start = *cursor;
    *cursor += BATCH;
    let payload = Blob::new(PAYLOAD);
    futures::stream::iter(start..start + BATCH)
        .map(|i| {
            client
                .post_to_connection()
                .connection_id(&ids[i % ids.len()])
                .data(payload.clone())
                .send()
        })
        .buffer_unordered(CONCURRENCY)
        .for_each(|result| async move {
            result.expect("post accepted");
        })
        .await;
}

/// A minimal HTTP/1.1 keep-alive client: isolates the gateway's own cost from the SDK's
/// (signing, orchestration), which dominates the `sdk` runs on two cores.
struct RawConnection {
    stream: BufReader<TcpStream>,
    host: String,
    stage: String,
}

impl RawConnection {
    async fn open(gateway: &Gateway) -> Self {
        let addr = gateway.local_addr();
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream: BufReader::new(stream),
            host: addr.to_string(),
            stage: gateway.config().stage.clone(),
        }
    }

    /// One POST; returns the status code.
    async fn post(&mut self, id: &str, body: &str) -> u16 {
        let encoded = utf8_percent_encode(id, NON_ALPHANUMERIC);
        let request = format!(
            "POST /{}/@connections/{encoded} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.stage,
            self.host,
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("write");
        let mut status = 0;
        let mut content_length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("read");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some(rest) = header.strip_prefix("HTTP/1.1 ") {
                status = rest[..3].parse().expect("status");
            } else if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; content_length];
        self.stream.read_exact(&mut body).await.expect("body");
        status
    }
}

/// Posts `BATCH` messages over `connections` (one request in flight on each).
async fn raw_batch(connections: &mut [RawConnection], ids: &[String], cursor: &mut usize) {
    let start = *cursor;
    *cursor += BATCH;
    let lanes = connections.len();
    futures::future::join_all(
        connections
            .iter_mut()
            .enumerate()
            .map(|(lane, conn)| async move {
                let mut i = start + lane;
                while i < start + BATCH {
                    assert_eq!(conn.post(&ids[i % ids.len()], PAYLOAD).await, 200);
                    i += lanes;
                }
            }),
    )
    .await;
}

async fn raw_connections(gateway: &Gateway) -> Vec<RawConnection> {
    futures::future::join_all((0..CONCURRENCY).map(|_| RawConnection::open(gateway))).await
}

fn posts(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("post_to_connection");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));

    // Real sockets: a post counts once its client has read it.
    let (gateway, client, ids, received) = runtime.block_on(async {
        let gateway = start_gateway().await;
        let received = Arc::new(AtomicU64::new(0));
        for _ in 0..SOCKETS {
            let (ws, _) = tokio_tungstenite::connect_async(gateway.ws_url())
                .await
                .expect("client connects");
            let received = received.clone();
            tokio::spawn(async move {
                let (_sink, mut stream) = ws.split();
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Text(_) = message {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let ids = gateway.socket_ids();
        let client = sdk(gateway.management_endpoint()).await;
        (gateway, client, ids, received)
    });
    let wait_for = |target: u64| {
        let received = received.clone();
        async move {
            while received.load(Ordering::Relaxed) < target {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    };
    let mut cursor = 0;
    group.bench_function(format!("sdk/real_sockets_{SOCKETS}"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let target = received.load(Ordering::Relaxed) + BATCH as u64;
                    post_batch(&client, &ids, &mut cursor).await;
                    wait_for(target).await;
                }
                started.elapsed()
            })
        });
    });
    let mut raw = runtime.block_on(raw_connections(&gateway));
    group.bench_function(format!("raw_http/real_sockets_{SOCKETS}"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let target = received.load(Ordering::Relaxed) + BATCH as u64;
                    raw_batch(&mut raw, &ids, &mut cursor).await;
                    wait_for(target).await;
                }
                started.elapsed()
            })
        });
    });
    drop(raw);
    let counters = gateway.counters();
    assert_eq!(counters.rejected_total(), 0, "{counters:?}");
    runtime.block_on(gateway.shutdown()).expect("shutdown");

    // Virtual connections: accepted, counted and time-stamped without a socket.
    let (gateway, client, ids) = runtime.block_on(async {
        let gateway = start_gateway().await;
        let ids = gateway.add_virtual_connections(VIRTUAL_CONNECTIONS);
        let client = sdk(gateway.management_endpoint()).await;
        (gateway, client, ids)
    });
    let mut cursor = 0;
    group.bench_function(format!("sdk/virtual_{VIRTUAL_CONNECTIONS}"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    post_batch(&client, &ids, &mut cursor).await;
                }
                started.elapsed()
            })
        });
    });
    let mut raw = runtime.block_on(raw_connections(&gateway));
    group.bench_function(format!("raw_http/virtual_{VIRTUAL_CONNECTIONS}"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    raw_batch(&mut raw, &ids, &mut cursor).await;
                }
                started.elapsed()
            })
        });
    });
    drop(raw);
    let summary = gateway.virtual_delivery_summary();
    assert_eq!(summary.deliveries, gateway.counters().posts_delivered);
    runtime.block_on(gateway.shutdown()).expect("shutdown");
    group.finish();
}

criterion_group!(benches, posts);
criterion_main!(benches);
