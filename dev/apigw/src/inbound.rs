//! A connection's client messages on their way to the route integration: one route call in
//! flight per connection, as API Gateway serializes a connection's messages, and a bounded
//! queue behind it. A message that finds the queue full is not routed; the client gets the
//! error frame API Gateway sends for a throttled message. A flooding client thus costs the
//! integration (and what it calls, e.g. DynamoDB) one call at a time, whatever its rate, and
//! cannot delay other connections' messages.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::encodings::Body;
use axum::extract::ws::Message;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, warn};

use super::Shared;
use super::handler::HandlerResult;
use super::ids;

/// The message part of API Gateway's error frames for a throttled message.
const THROTTLED: &str = "Too Many Requests";
/// The message part of API Gateway's error frames for a failed integration.
const INTERNAL_ERROR: &str = "Internal server error";

/// The sending side of one connection's queue. Dropping it (the socket ended) drops the
/// messages still waiting; a route call in flight completes.
pub(crate) struct Inbound {
    queue: mpsc::Sender<ApiGatewayWebsocketProxyRequest>,
    _ended: DropGuard,
}

impl Inbound {
    /// Starts the connection's router task; replies go to `reply_to` (the socket's writer).
    pub(crate) fn start(
        shared: &Arc<Shared>,
        connection_id: &str,
        reply_to: mpsc::Sender<Message>,
    ) -> Self {
        let (queue, waiting) = mpsc::channel(shared.config.message_queue);
        let ended = CancellationToken::new();
        let router = Router {
            shared: shared.clone(),
            connection_id: connection_id.to_owned(),
            reply_to,
        };
        shared.tasks.spawn(router.run(waiting, ended.clone()));
        Self {
            queue,
            _ended: ended.drop_guard(),
        }
    }

    /// Queues a message event; `Err` with the error frame to send when the queue is full.
    pub(crate) fn offer(
        &self,
        event: ApiGatewayWebsocketProxyRequest,
        connection_id: &str,
    ) -> Result<(), Message> {
        match self.queue.try_send(event) {
            Ok(()) => Ok(()),
            Err(refused) => {
                let event = refused.into_inner();
                let request_id = event.request_context.request_id.unwrap_or_default();
                Err(error_frame(THROTTLED, connection_id, &request_id))
            }
        }
    }
}

/// One connection's route calls, in arrival order, one at a time.
struct Router {
    shared: Arc<Shared>,
    connection_id: String,
    reply_to: mpsc::Sender<Message>,
}

impl Router {
    async fn run(
        self,
        mut waiting: mpsc::Receiver<ApiGatewayWebsocketProxyRequest>,
        ended: CancellationToken,
    ) {
        loop {
            let event = tokio::select! {
                biased;
                () = ended.cancelled() => return,
                event = waiting.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            self.route(event).await;
        }
    }

    /// Runs the integration and sends its response body, if any, back to the client.
    async fn route(&self, event: ApiGatewayWebsocketProxyRequest) {
        let request_id = event.request_context.request_id.clone().unwrap_or_default();
        let result = self.shared.handler.handle(event).await;
        let Some(reply) = reply(result, &self.connection_id, &request_id) else {
            return;
        };
        // Waits for room rather than dropping a reply; fails only once the socket is gone.
        if self.reply_to.send(reply).await.is_err() {
            debug!(connection_id = %self.connection_id, "reply dropped: socket closed");
        }
    }
}

/// What the client gets from a message route: the response body, if any; API Gateway's
/// error frame if the integration failed.
fn reply(result: HandlerResult, connection_id: &str, request_id: &str) -> Option<Message> {
    match result {
        Ok(response) => match response.body {
            Some(Body::Text(text)) if !text.is_empty() => Some(Message::Text(text.into())),
            Some(Body::Binary(bytes)) if !bytes.is_empty() => Some(Message::Binary(bytes.into())),
            _ => None,
        },
        Err(err) => {
            warn!(%connection_id, error = %err, "message handler failed");
            Some(error_frame(INTERNAL_ERROR, connection_id, request_id))
        }
    }
}

/// API Gateway's error frame: `{"message": ..., "connectionId": ..., "requestId": ...}`.
fn error_frame(message: &str, connection_id: &str, request_id: &str) -> Message {
    let request_id = if request_id.is_empty() {
        ids::random_id()
    } else {
        request_id.to_owned()
    };
    let body = serde_json::json!({
        "message": message,
        "connectionId": connection_id,
        "requestId": request_id,
    });
    Message::Text(body.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_have_api_gateway_shape() {
        let Message::Text(text) = error_frame(THROTTLED, "L0SM9cOFvHcCIhw=", "rid") else {
            panic!("not text");
        };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(
            frame,
            serde_json::json!({
                "message": "Too Many Requests",
                "connectionId": "L0SM9cOFvHcCIhw=",
                "requestId": "rid",
            })
        );
    }
}
