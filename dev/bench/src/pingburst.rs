//! What one client's ping burst costs every other client: one broadcast to S real sockets
//! (the sockets scenario's clients), timed once quiet and once while 2 more sockets each send
//! 5,000 pings as fast as they can, in the same run on the same stack (after an untimed
//! warm-up broadcast, so that neither timed one pays for cold paths). The two bursting sockets
//! are connected throughout and receive the broadcasts too (one post each, which the table
//! counts under "retried"); they are not among the S timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apigw::Faults;
use futures::{SinkExt as _, StreamExt as _};
use serde::Serialize;
use serde_json::json;
use stack::Stack;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use super::fixture::Bench;
use super::measure::{Outcome, Usage, UsageMeter};
use super::report::{Design, Measured, Meta, ScenarioResult};
use super::scenarios::{FROM_WRITE, put_metric};
use super::sockets::{Inbox, connect_all, wait_for_broadcast};

/// Sockets that burst, and the pings each sends.
const BURSTERS: usize = 2;
const PINGS: usize = 5_000;
/// How long nothing must arrive after a broadcast before the next one is measured (a late
/// duplicate would otherwise count as the next one's delivery).
const QUIET: Duration = Duration::from_millis(500);
/// The longest wait for the burst's last answers once the broadcast has been measured.
const ANSWERS_WAIT: Duration = Duration::from_secs(30);
const PING: &str = r#"{"action":"ping"}"#;

/// What the bursting sockets sent and got back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct BurstAnswers {
    pub sent: u64,
    /// `{"type":"PONG"}`: pings that were routed.
    pub pongs: u64,
    /// `{"message":"Too Many Requests",...}`: pings the gateway refused (the connection's
    /// message queue was full).
    pub throttled: u64,
    /// `{"type":"ERROR",...}` or API Gateway's "Internal server error".
    pub errors: u64,
    pub unanswered: u64,
    /// How long the slower socket took to write its pings.
    pub send_s: f64,
}

impl BurstAnswers {
    fn add(&mut self, other: &Self) {
        self.sent += other.sent;
        self.pongs += other.pongs;
        self.throttled += other.throttled;
        self.errors += other.errors;
        self.unanswered += other.unanswered;
        self.send_s = self.send_s.max(other.send_s);
    }

    /// Counts one text message a bursting socket received; whether it answered a ping.
    fn count(&mut self, text: &str) -> bool {
        if text.contains(r#""PONG""#) {
            self.pongs += 1;
        } else if text.contains("Too Many Requests") {
            self.throttled += 1;
        } else if text.contains(r#""ERROR""#) || text.contains("Internal server error") {
            self.errors += 1;
        } else {
            return false;
        }
        true
    }
}

/// One timed broadcast: who got it when, whether every socket did, what it cost.
struct Timed {
    outcome: Outcome,
    all: bool,
    usage: Usage,
    gateway: apigw::CountersSnapshot,
}

impl Bench {
    /// The quiet broadcast's result and the one under the burst.
    pub async fn pingburst(&self) -> anyhow::Result<Vec<ScenarioResult>> {
        let n = self.settings.pingburst_sockets;
        let setup = Instant::now();
        let config = self.stack_config(self.names("pingburst", false), Faults::default(), false)?;
        let stack = Stack::start(&self.sdk, config)
            .await
            .context("starting the pingburst scenario's stack")?;
        let inbox = Arc::new(Inbox::new(n));
        let readers = connect_all(&stack.ws_url(), n, &inbox).await?;
        let bursters = connect_bursters(&stack.ws_url()).await?;
        let warm_up = self.broadcast(&stack, &inbox, "setup: warm-up broadcast");
        anyhow::ensure!(
            warm_up.await?.all,
            "the warm-up broadcast did not reach every socket"
        );
        let setup_s = setup.elapsed().as_secs_f64();

        let quiet_title = format!("ours: {n} sockets, quiet");
        stack.gateway.reset_counters();
        let quiet = self.broadcast(&stack, &inbox, &quiet_title).await?;
        stack.gateway.reset_counters();
        let burst = start_burst(bursters);
        wait_for_burst(&stack).await;
        let loud_title = format!("ours: {n} sockets, {BURSTERS} x {PINGS} pings");
        let loud = self.broadcast(&stack, &inbox, &loud_title).await?;
        let answers = finish_burst(burst).await;
        stack.shutdown().await;
        drop(readers);

        let row = |key: &str, title: String, timed: Timed| {
            let mut row = self.pingburst_row(key, title, timed);
            row.setup_s = setup_s;
            row
        };
        let quiet_row = row("pingburst-quiet", quiet_title, quiet);
        let mut loud_row = row("pingburst", loud_title, loud);
        loud_row.details = json!({
            "quiet_s": quiet_row.elapsed_s,
            "burst_s": loud_row.elapsed_s,
            "ratio": ratio(quiet_row.elapsed_s, loud_row.elapsed_s),
            "burst": answers,
        });
        Ok(vec![quiet_row, loud_row])
    }

    /// Writes the metric, waits for the broadcast to reach every socket, then for [`QUIET`]
    /// (a late duplicate counts in this broadcast, not the next).
    async fn broadcast(&self, stack: &Stack, inbox: &Inbox, label: &str) -> anyhow::Result<Timed> {
        let mark = inbox.mark();
        let meter = UsageMeter::start(self.settings.moto_pid)?;
        let start = Instant::now();
        put_metric(stack).await?;
        let deadline = start + Duration::from_secs(self.settings.timeout_s);
        let all = wait_for_broadcast(inbox, &mark, label, deadline).await;
        let usage = meter.finish()?;
        let gateway = stack.gateway.counters();
        tokio::time::sleep(QUIET).await;
        Ok(Timed {
            outcome: Outcome::of(start, 1, inbox.received_since(&mark)),
            all,
            usage,
            gateway,
        })
    }

    fn pingburst_row(&self, key: &str, title: String, timed: Timed) -> ScenarioResult {
        let measured = Measured {
            outcome: timed.outcome,
            parts: 1,
            timed_out: !timed.all,
            gateway: timed.gateway,
            requeued_messages: None,
            usage: timed.usage,
            details: json!({}),
        };
        let meta = Meta {
            key: key.to_owned(),
            title,
            design: Design::Ours,
            measured_from: FROM_WRITE,
            setup_s: 0.0,
        };
        let n = self.settings.pingburst_sockets;
        ScenarioResult::new(meta, n as f64 / self.settings.rate, measured)
    }
}

/// Time under the burst over the quiet time.
fn ratio(quiet_s: Option<f64>, burst_s: Option<f64>) -> Option<f64> {
    Some(burst_s? / quiet_s.filter(|q| *q > 0.0)?)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect_bursters(url: &str) -> anyhow::Result<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(BURSTERS);
    for _ in 0..BURSTERS {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("a bursting socket connecting to {url}"))?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Every bursting socket writes its pings as fast as it can while it reads the answers.
fn start_burst(sockets: Vec<Socket>) -> JoinSet<BurstAnswers> {
    let mut burst = JoinSet::new();
    for socket in sockets {
        burst.spawn(burst_one(socket));
    }
    burst
}

async fn burst_one(socket: Socket) -> BurstAnswers {
    let (mut sink, mut stream) = socket.split();
    let send = async {
        let started = Instant::now();
        let mut sent = 0;
        for _ in 0..PINGS {
            if sink.feed(Message::text(PING)).await.is_err() {
                break;
            }
            sent += 1;
        }
        let _ = sink.flush().await;
        (sent, started.elapsed().as_secs_f64())
    };
    let read = async {
        let mut answers = BurstAnswers::default();
        let mut answered = 0;
        while answered < PINGS {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => answered += usize::from(answers.count(&text)),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        answers
    };
    let ((sent, send_s), answers) = tokio::join!(send, read);
    BurstAnswers {
        sent,
        unanswered: sent.saturating_sub(answers.pongs + answers.throttled + answers.errors),
        send_s,
        ..answers
    }
}

/// Waits until the gateway has read a fifth of the burst (10 s at most), so that the
/// broadcast meets it in full swing.
async fn wait_for_burst(stack: &Stack) {
    let started = Instant::now();
    let underway = (BURSTERS * PINGS / 5) as u64;
    while stack.gateway.counters().messages_received < underway
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The burst's answers, waiting [`ANSWERS_WAIT`] at most for the last ones.
async fn finish_burst(mut burst: JoinSet<BurstAnswers>) -> BurstAnswers {
    let mut total = BurstAnswers::default();
    let collect = async {
        while let Some(Ok(answers)) = burst.join_next().await {
            total.add(&answers);
        }
    };
    if tokio::time::timeout(ANSWERS_WAIT, collect).await.is_err() {
        tracing::warn!("the burst's answers were still coming after {ANSWERS_WAIT:?}");
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_told_apart() {
        let mut answers = BurstAnswers::default();
        assert!(answers.count(r#"{"type":"PONG"}"#));
        let throttled = r#"{"message":"Too Many Requests","connectionId":"a","requestId":"b"}"#;
        assert!(answers.count(throttled));
        assert!(answers.count(r#"{"type":"ERROR","message":"x"}"#));
        assert!(!answers.count(r#"{"type":"METRICS_UPDATE","updates":[]}"#));
        assert_eq!(
            (answers.pongs, answers.throttled, answers.errors),
            (1, 1, 1)
        );
        assert_eq!(ratio(Some(2.0), Some(3.0)), Some(1.5));
        assert_eq!(ratio(None, Some(3.0)), None);
    }
}
