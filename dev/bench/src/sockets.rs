//! Ours end to end with real sockets: S WebSocket clients connect through the gateway (each
//! `$connect` writes its row through moto, ~450/s: setup, not timed), then one metrics-table
//! write; the clock runs from the write to the last client's receipt of the update.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
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

/// What each client has received, written by its reader task: the arrival of each of its
/// METRICS_UPDATE messages. A broadcast is measured from a [`Mark`] taken before it.
pub(crate) struct Inbox {
    arrivals: Vec<Mutex<Vec<Instant>>>,
}

/// Every client's message count at one instant.
pub(crate) struct Mark(Vec<usize>);

impl Inbox {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            arrivals: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    fn record(&self, client: usize) {
        self.arrivals[client]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Instant::now());
    }

    fn counts(&self) -> Vec<usize> {
        self.arrivals
            .iter()
            .map(|a| a.lock().unwrap_or_else(PoisonError::into_inner).len())
            .collect()
    }

    /// The counts the next broadcast is measured from.
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.counts())
    }

    /// Clients that have received a message since `mark`.
    pub(crate) fn reached_since(&self, mark: &Mark) -> usize {
        self.counts()
            .iter()
            .zip(&mark.0)
            .filter(|(now, then)| now > then)
            .count()
    }

    /// Per client: its messages since `mark`, and the first one's arrival.
    pub(crate) fn received_since(&self, mark: &Mark) -> Vec<Received> {
        self.arrivals
            .iter()
            .zip(&mark.0)
            .map(|(arrivals, &then)| {
                let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
                Received {
                    messages: arrivals.len().saturating_sub(then) as u64,
                    first: arrivals.get(then).copied(),
                }
            })
            .collect()
    }
}

/// Waits until every client has received a message since `mark`, or `deadline`, with a
/// progress line. Returns whether all were reached.
pub(crate) async fn wait_for_broadcast(
    inbox: &Inbox,
    mark: &Mark,
    label: &str,
    deadline: Instant,
) -> bool {
    let n = inbox.arrivals.len();
    let mut progress = Progress::new(label, n as u64);
    loop {
        let reached = inbox.reached_since(mark);
        progress.update(reached as u64);
        if reached >= n || Instant::now() >= deadline {
            let all = reached >= n;
            progress.finish(reached as u64, if all { "done" } else { "TIMED OUT" });
            return all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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

        let mark = inbox.mark();
        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let start = Instant::now();
        put_metric(&stack).await?;
        let deadline = start + Duration::from_secs(self.settings.timeout_s);
        let all = wait_for_broadcast(&inbox, &mark, &title, deadline).await;
        let usage = meter.finish()?;
        // Late duplicates would show within the fan-out's settling time.
        tokio::time::sleep(Duration::from_secs(1)).await;

        let measured = Measured {
            outcome: Outcome::of(start, 1, inbox.received_since(&mark)),
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
pub(crate) async fn connect_all(
    url: &str,
    n: usize,
    inbox: &Arc<Inbox>,
) -> anyhow::Result<JoinSet<()>> {
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
