//! One canary run against a stage: the WebSocket, the write, the wait. Whatever fails becomes
//! the report's outcome; a run never returns an error, because the missing latency is the
//! signal.

use std::time::Duration;

use authorizer::mint::{MintRequest, mint_hs256, now_epoch_secs};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use futures::StreamExt;
use platform::clock::now_ms;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use crate::config::{CanaryConfig, SecretSource, TokenSettings};
use crate::heartbeat::{ENTITY_TYPE, Heartbeat};
use crate::report::{CanaryReport, Outcome};

/// The subject of the canary's token: its connection's row and the authorizer's log name it.
pub const SUBJECT: &str = "canary";
/// Long enough for one run; a leaked token is useless a few minutes later.
const TOKEN_TTL: Duration = Duration::from_secs(300);
/// Kept back from the invocation's deadline for closing the socket and writing the metrics.
const RESERVE: Duration = Duration::from_secs(2);
/// A close handshake that does not complete in this time is abandoned.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The clients a run needs and what it runs against.
pub struct Canary {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub config: CanaryConfig,
}

impl Canary {
    pub fn new(sdk: &aws_config::SdkConfig, config: CanaryConfig) -> Self {
        Self {
            dynamo: aws_sdk_dynamodb::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            config,
        }
    }

    /// Connects, writes a heartbeat, and waits up to `wait` for its update; the handshake may
    /// take up to `wait` as well. `previous_latency_ms` goes into the item for dashboards.
    pub async fn run(&self, wait: Duration, previous_latency_ms: Option<u64>) -> CanaryReport {
        let mut report = CanaryReport {
            outcome: Outcome::TimedOut,
            entity_id: self.config.entity_id.clone(),
            nonce: String::new(),
            other_messages: 0,
            timeout_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let url = match self.url().await {
            Ok(url) => url,
            Err(detail) => {
                report.outcome = Outcome::TokenFailed { detail };
                return report;
            }
        };
        let mut socket = match timeout(wait, tokio_tungstenite::connect_async(url.as_str())).await {
            Ok(Ok((socket, _response))) => socket,
            // The error never shows the URL, which may carry the token.
            Ok(Err(e)) => {
                report.outcome = Outcome::ConnectFailed {
                    detail: e.to_string(),
                };
                return report;
            }
            Err(_) => {
                report.outcome = Outcome::ConnectFailed {
                    detail: format!("no handshake within {} ms", report.timeout_ms),
                };
                return report;
            }
        };

        let heartbeat = Heartbeat::new(&self.config.entity_id, now_ms(), previous_latency_ms);
        report.nonce = heartbeat.nonce.clone();
        // Latency is what a writer sees: from sending the write to the dashboard's message.
        let sent = Instant::now();
        let deadline = sent + wait;
        let write = self
            .dynamo
            .put_item()
            .table_name(&self.config.metrics_table)
            .set_item(Some(heartbeat.item()))
            .send();
        report.outcome = match timeout_at(deadline, write).await {
            Ok(Ok(_)) => {
                wait_for(
                    &mut socket,
                    &heartbeat,
                    sent,
                    deadline,
                    &mut report.other_messages,
                )
                .await
            }
            Ok(Err(e)) => Outcome::WriteFailed {
                detail: DisplayErrorContext(&e).to_string(),
            },
            Err(_) => Outcome::WriteFailed {
                detail: format!("PutItem took over {} ms", report.timeout_ms),
            },
        };
        // $disconnect removes the row; a close that hangs is left to the idle timeout.
        let _ = timeout(CLOSE_WAIT, socket.close(None)).await;
        report
    }

    /// The stage's URL, with a token of the canary's own when the stage authenticates.
    async fn url(&self) -> Result<String, String> {
        let Some(settings) = &self.config.token else {
            return Ok(self.config.ws_url.clone());
        };
        let token = self.token(settings).await?;
        let separator = if self.config.ws_url.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{separator}token={token}", self.config.ws_url))
    }

    /// Signed with the authorizer's current secret, read every run: one GetSecretValue a
    /// minute, and a rotation never leaves the canary with a key the authorizer dropped.
    async fn token(&self, settings: &TokenSettings) -> Result<String, String> {
        let secret = match &settings.secret {
            SecretSource::Value(secret) => secret.expose().to_vec(),
            SecretSource::Arn(arn) => authorizer::secret::fetch(&self.secrets, arn, None)
                .await
                .map_err(|e| e.to_string())?
                .into_bytes(),
        };
        let request = MintRequest {
            subject: SUBJECT.to_owned(),
            entity_types: vec![ENTITY_TYPE.to_owned()],
            ttl: TOKEN_TTL,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        };
        mint_hs256(&secret, &request, now_epoch_secs()).map_err(|e| e.to_string())
    }
}

/// Reads the socket until the heartbeat's update arrives, the socket ends, or `deadline`;
/// every other text message is counted in `others`.
async fn wait_for<S>(
    socket: &mut S,
    heartbeat: &Heartbeat,
    sent: Instant,
    deadline: Instant,
    others: &mut u64,
) -> Outcome
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = match timeout_at(deadline, socket.next()).await {
            Err(_) => return Outcome::TimedOut,
            Ok(None) => {
                return Outcome::Closed {
                    detail: "the connection ended".into(),
                };
            }
            Ok(Some(Err(e))) => {
                return Outcome::Closed {
                    detail: e.to_string(),
                };
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) if heartbeat.arrived_in(&text) => {
                let latency_ms = u64::try_from(sent.elapsed().as_millis()).unwrap_or(u64::MAX);
                return Outcome::Arrived { latency_ms };
            }
            Message::Text(_) => *others += 1,
            Message::Close(frame) => {
                return Outcome::Closed {
                    detail: frame.map_or_else(
                        || "closed without a close frame".into(),
                        |f| format!("closed with {}: {}", f.code, f.reason),
                    ),
                };
            }
            // Pings are answered by the library; nothing else is sent to dashboards.
            _ => {}
        }
    }
}

/// How long one invocation may wait, given the time `left` before its deadline: the configured
/// timeout, unless the handshake plus the wait (each up to it) would not fit.
pub fn wait_within(configured: Duration, left: Duration) -> Duration {
    configured.min(left.saturating_sub(RESERVE) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            entity_id: "canary-heartbeat".into(),
            nonce: "n-7".into(),
            sent_at_ms: 0,
            previous_latency_ms: None,
        }
    }

    fn update(entity_id: &str, nonce: &str, part: u64) -> Message {
        Message::text(
            json!({"type": "METRICS_UPDATE", "id": "b-1", "part": part, "parts": 2,
                   "updates": [{"eventType": "MODIFY", "data": {"entity_id": entity_id, "nonce": nonce}}]})
            .to_string(),
        )
    }

    async fn wait(messages: Vec<Message>, then_end: bool) -> (Outcome, u64) {
        let items = futures::stream::iter(messages.into_iter().map(Ok));
        let mut others = 0;
        let deadline = Instant::now() + Duration::from_millis(50);
        let outcome = if then_end {
            wait_for(
                &mut items.boxed(),
                &heartbeat(),
                Instant::now(),
                deadline,
                &mut others,
            )
            .await
        } else {
            let mut socket = items.chain(futures::stream::pending()).boxed();
            wait_for(
                &mut socket,
                &heartbeat(),
                Instant::now(),
                deadline,
                &mut others,
            )
            .await
        };
        (outcome, others)
    }

    #[tokio::test]
    async fn its_update_ends_the_wait_whatever_came_before() {
        let (outcome, others) = wait(
            vec![
                Message::text(r#"{"type":"PONG"}"#),
                Message::Ping(Vec::new().into()),
                update("stream-001", "", 1),
                update("canary-heartbeat", "n-6", 1),
                update("canary-heartbeat", "n-7", 2),
                update("stream-002", "", 1),
            ],
            false,
        )
        .await;
        assert!(matches!(outcome, Outcome::Arrived { .. }), "{outcome:?}");
        assert_eq!(
            others, 3,
            "PONG, another entity, an earlier run's heartbeat"
        );
    }

    #[tokio::test]
    async fn without_it_the_run_times_out_or_sees_the_socket_end() {
        let (outcome, others) = wait(vec![update("canary-heartbeat", "n-6", 1)], false).await;
        assert_eq!((outcome, others), (Outcome::TimedOut, 1));
        let (outcome, _) = wait(vec![], true).await;
        assert!(matches!(outcome, Outcome::Closed { .. }), "{outcome:?}");
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "Going away".into(),
        }));
        let (outcome, _) = wait(vec![close], false).await;
        assert_eq!(
            outcome,
            Outcome::Closed {
                detail: "closed with 1001: Going away".into()
            }
        );
    }

    #[test]
    fn the_wait_fits_the_invocation() {
        let configured = Duration::from_secs(20);
        assert_eq!(wait_within(configured, Duration::from_secs(60)), configured);
        assert_eq!(
            wait_within(configured, Duration::from_secs(30)),
            Duration::from_secs(14)
        );
        assert_eq!(
            wait_within(configured, Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
