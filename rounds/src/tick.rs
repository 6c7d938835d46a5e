//! Ticks: the SQS messages that wake the processor to start the next round.
//!
//! A round's end sends one at once; a round's start sends one delayed to its lease's end, so a
//! round whose completion is lost (a crashed fanout, a job in the DLQ) is replaced without
//! waiting for the scheduled tick. Every tick means the same thing, "see whether a round should
//! start", so duplicates and stale ticks are harmless.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use serde::{Deserialize, Serialize};

/// SQS's longest delivery delay.
const MAX_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tick {
    /// Why it was sent: `round-ended` or `lease`.
    pub reason: String,
    /// The round it is about.
    pub round_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("SQS SendMessage to {queue} failed: {detail}")]
pub struct TickError {
    queue: String,
    detail: String,
}

#[derive(Debug, Clone)]
pub struct Ticks {
    client: Client,
    url: String,
}

impl Ticks {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// Sends `tick`, visible after `delay` (capped at SQS's 15 minutes).
    pub async fn send(&self, tick: &Tick, delay: Duration) -> Result<(), TickError> {
        let seconds = i32::try_from(delay.min(MAX_DELAY).as_secs()).expect("<= 900");
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(serde_json::to_string(tick).expect("ticks serialize"))
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| TickError {
                queue: self.url.clone(),
                detail: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}
