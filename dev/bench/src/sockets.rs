//! Ours end to end with real sockets: S WebSocket clients connect through the gateway (each
//! `$connect` writes its row through moto, ~450/s: setup, not timed), then one metrics-table
//! write; the clock runs from the write to the last client's receipt of the update.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apigw::Faults;
use futures::StreamExt as _;
use serde_json::json;
use stack::Stack;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::fixture::Bench;
use super::measure::{Outcome, Received, UsageMeter};
use super::progress::Progress;
use super::report::{Design, Measured, Meta, ScenarioResult};
use super::scenarios::{FROM_WRITE, put_metric};

/// Handshakes in flight while connecting (API Gateway limits new connections too).
const CONNECT_CONCURRENCY: usize = 32;

/// What each client has received, written by its reader task.
struct Inbox {
    messages: Vec<AtomicU64>,
    first: Vec<OnceLock<Instant>>,
    reached: AtomicUsize,
}

impl Inbox {
    fn new(n: usize) -> Self {
        Self {
            messages: (0..n).map(|_| AtomicU64::new(0)).collect(),
            first: (0..n).map(|_| OnceLock::new()).collect(),
            reached: AtomicUsize::new(0),
        }
    }

    fn record(&self, client: usize) {
        let now = Instant::now();
        self.messages[client].fetch_add(1, Ordering::Relaxed);
        if self.first[client].set(now).is_ok() {
            self.reached.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn received(&self) -> impl Iterator<Item = Received> + '_ {
        self.messages
            .iter()
            .zip(&self.first)
            .map(|(messages, first)| Received {
                messages: messages.load(Ordering::Relaxed),
                first: first.get().copied(),
            })
    }
}

/// Connects one client and spawns its reader, which counts METRICS_UPDATE messages.
async fn connect(
    url: String,
    client: usize,
    inbox: Arc<Inbox>,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("client {client} connecting to {url} (raise `ulimit -n`?)"))?;
    Ok(async move {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Text(text) = message
                && text.contains("METRICS_UPDATE")
            {
                inbox.record(client);
            }
        }
    })
}

impl Bench {
    pub async fn sockets(&self) -> anyhow::Result<ScenarioResult> {
        let n = self.settings.sockets;
        let title = format!("ours: end to end, {n} real sockets");
        let setup = Instant::now();
        let config = self.stack_config(self.names("sockets", false), Faults::default(), false)?;
        let stack = Stack::start(&self.sdk, config)
            .await
            .context("starting the sockets scenario's stack")?;
        let inbox = Arc::new(Inbox::new(n));
        let readers = connect_all(&stack.ws_url(), n, &inbox).await?;
        let setup_s = setup.elapsed().as_secs_f64();

        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let start = Instant::now();
        put_metric(&stack).await?;
        let mut progress = Progress::new(&title, n as u64);
        let deadline = start + Duration::from_secs(self.settings.timeout_s);
        let all = loop {
            let reached = inbox.reached.load(Ordering::Relaxed);
            progress.update(reached as u64);
            if reached >= n || Instant::now() >= deadline {
                progress.finish(
                    reached as u64,
                    if reached >= n { "done" } else { "TIMED OUT" },
                );
                break reached >= n;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let usage = meter.finish()?;
        // Late duplicates would show within the fan-out's settling time.
        tokio::time::sleep(Duration::from_secs(1)).await;

        let measured = Measured {
            outcome: Outcome::of(start, 1, inbox.received()),
            parts: 1,
            timed_out: !all,
            gateway: stack.gateway.counters(),
            requeued_messages: None,
            usage,
            details: json!({
                "connect_s": setup_s,
                "connects_per_s": n as f64 / setup_s.max(1e-9),
                "queue_poller_messages": stack.queue_stats.messages.load(Ordering::Relaxed),
            }),
        };
        stack.shutdown().await;
        drop(readers);
        Ok(ScenarioResult::new(
            Meta {
                key: "sockets".to_owned(),
                title,
                design: Design::Ours,
                measured_from: FROM_WRITE,
                setup_s,
            },
            n as f64 / self.settings.rate,
            measured,
        ))
    }
}

/// Connects `n` clients; their readers run in the returned set (dropping it closes them).
async fn connect_all(url: &str, n: usize, inbox: &Arc<Inbox>) -> anyhow::Result<JoinSet<()>> {
    let mut progress = Progress::new("setup: connecting sockets", n as u64);
    let mut readers = JoinSet::new();
    let mut handshakes = futures::stream::iter(0..n)
        .map(|client| connect(url.to_owned(), client, inbox.clone()))
        .buffer_unordered(CONNECT_CONCURRENCY);
    while let Some(reader) = handshakes.next().await {
        readers.spawn(reader?);
        progress.update(readers.len() as u64);
    }
    progress.finish(readers.len() as u64, "done");
    Ok(readers)
}
