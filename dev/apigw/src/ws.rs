//! A socket's life after the handshake: one task that reads client messages into `$default`
//! (or a route key) and writes posted messages, the timeouts, the close handshake and
//! `$disconnect`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::encodings::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::SinkExt as _;
use platform::clock::now_ms;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, info, warn};

use super::Shared;
use super::counters::bump;
use super::events;
use super::handler::HandlerResult;
use super::table::{CloseReason, Conn, ConnKind, SocketLink};

/// How long the server waits for the client's answer to its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Queued messages written per flush: amortises the flush under fan-out bursts.
const WRITE_BATCH: usize = 64;

/// How a socket ended.
#[derive(Debug)]
enum End {
    /// The client sent a close frame.
    Client { code: u16, reason: String },
    /// The server closes: DELETE, a timeout, an oversize message, shutdown.
    Server(CloseReason),
    /// The TCP connection dropped or broke without a close handshake.
    Abnormal,
}

/// One socket's life: traffic until it ends, then the close handshake and `$disconnect`.
pub(crate) async fn run_socket(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut socket: WebSocket,
    mut outbound: mpsc::Receiver<Message>,
) {
    // Counted by the tracker so that shutdown waits for the close and `$disconnect`.
    let _task = shared.tasks.token();
    let ConnKind::Socket(link) = &conn.kind else {
        return;
    };
    let end = pump(&shared, &conn, link, &mut socket, &mut outbound).await;
    // Posts from now on get 410 (DELETE has already removed the entry).
    shared.connections.remove_exact(&conn);
    let (code, reason) = close(&mut socket, end).await;
    info!(connection_id = %conn.info.id, code, reason = %reason, "disconnected");
    drop(socket);
    shared.disconnect(&conn.info, code, &reason).await;
}

/// Client messages to their routes and posted messages to the client, until a close
/// request, a timeout, the client's close or a broken socket.
async fn pump(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    link: &SocketLink,
    socket: &mut WebSocket,
    outbound: &mut mpsc::Receiver<Message>,
) -> End {
    let connection_id = conn.info.id.as_str();
    let idle_timeout = shared.config.idle_timeout;
    let max_duration = sleep(shared.config.max_duration);
    let idle = sleep(idle_timeout);
    tokio::pin!(max_duration, idle);
    loop {
        tokio::select! {
            biased;
            () = link.close.cancelled() => return End::Server(link.close_reason()),
            () = &mut max_duration => return End::Server(CloseReason::MaxDuration),
            () = &mut idle => return End::Server(CloseReason::IdleTimeout),
            frame = socket.recv() => {
                let message = match frame {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => {
                        debug!(connection_id, error = %err, "socket read failed");
                        return End::Abnormal;
                    }
                    None => return End::Abnormal,
                };
                // Any client frame counts as activity; server posts do not.
                idle.as_mut().reset(Instant::now() + idle_timeout);
                conn.touch(now_ms());
                if let Some(end) = on_client_message(shared, conn, message) {
                    return end;
                }
            }
            queued = outbound.recv() => {
                // The link in `conn` holds a sender, so the queue cannot close while we run.
                let Some(first) = queued else { return End::Server(CloseReason::Shutdown) };
                if let Err(err) = write_batch(socket, first, outbound).await {
                    debug!(connection_id, error = %err, "socket write failed");
                    return End::Abnormal;
                }
            }
        }
    }
}

/// Routes a data message; a close frame or an oversize message ends the socket.
fn on_client_message(shared: &Arc<Shared>, conn: &Arc<Conn>, message: Message) -> Option<End> {
    let max_payload = shared.config.max_payload_bytes;
    match message {
        Message::Text(text) if text.len() > max_payload => {
            Some(End::Server(CloseReason::MessageTooBig))
        }
        Message::Binary(data) if data.len() > max_payload => {
            Some(End::Server(CloseReason::MessageTooBig))
        }
        Message::Text(text) => {
            dispatch(shared, conn, text.as_str().to_owned(), false);
            None
        }
        Message::Binary(data) => {
            dispatch(shared, conn, STANDARD.encode(&data), true);
            None
        }
        Message::Ping(_) | Message::Pong(_) => None,
        Message::Close(frame) => {
            let (code, reason) = frame.map_or_else(
                || (1005, "Client-side close frame status not set".to_owned()),
                |f| (f.code, f.reason.as_str().to_owned()),
            );
            Some(End::Client { code, reason })
        }
    }
}

/// Completes the close handshake; the status and reason that `$disconnect` reports.
async fn close(socket: &mut WebSocket, end: End) -> (u16, String) {
    match end {
        End::Client { code, reason } => {
            // Tungstenite queued the close reply; the next read flushes it.
            let _ = timeout(CLOSE_GRACE, socket.recv()).await;
            (code, reason)
        }
        End::Server(why) => {
            server_close(socket, why).await;
            (why.code(), why.text().to_owned())
        }
        End::Abnormal => (1006, "Connection was closed abnormally".to_owned()),
    }
}

/// Sends the server's close frame and waits (bounded) for the client's reply.
async fn server_close(socket: &mut WebSocket, why: CloseReason) {
    let frame = CloseFrame {
        code: why.code(),
        reason: why.text().into(),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    // Wait for the client's close reply (or the stream's end), ignoring data.
    let _ = timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Writes `first` and whatever else is queued, then flushes once.
async fn write_batch(
    socket: &mut WebSocket,
    first: Message,
    outbound: &mut mpsc::Receiver<Message>,
) -> Result<(), axum::Error> {
    socket.feed(first).await?;
    for _ in 1..WRITE_BATCH {
        match outbound.try_recv() {
            Ok(message) => socket.feed(message).await?,
            Err(_) => break,
        }
    }
    socket.flush().await
}

/// Runs the route integration for one client message in its own task (API Gateway invokes
/// them concurrently) and sends the response body, if any, back to the client.
fn dispatch(shared: &Arc<Shared>, conn: &Arc<Conn>, body: String, is_base64_encoded: bool) {
    bump(&shared.counters.messages_received);
    let route_key = if is_base64_encoded {
        events::DEFAULT_ROUTE
    } else {
        events::select_route(&body, &shared.config.route_keys)
    };
    let event = events::message_event(
        &shared.api,
        &conn.info,
        route_key,
        body,
        is_base64_encoded,
        now_ms(),
    );
    let ConnKind::Socket(link) = &conn.kind else {
        return;
    };
    let reply_to = link.outbound.clone();
    let shared = shared.clone();
    let connection_id = conn.info.id.clone();
    shared.tasks.clone().spawn(async move {
        let request_id = event.request_context.request_id.clone().unwrap_or_default();
        let result = shared.handler.handle(event).await;
        let Some(reply) = reply(result, &connection_id, &request_id) else {
            return;
        };
        // Waits for room rather than dropping a reply; fails only once the socket is gone.
        if reply_to.send(reply).await.is_err() {
            debug!(%connection_id, "reply dropped: socket closed");
        }
    });
}

/// What the client gets from a message route: the response body, if any; API Gateway's
/// error message if the integration failed.
fn reply(result: HandlerResult, connection_id: &str, request_id: &str) -> Option<Message> {
    match result {
        Ok(response) => match response.body {
            Some(Body::Text(text)) if !text.is_empty() => Some(Message::Text(text.into())),
            Some(Body::Binary(bytes)) if !bytes.is_empty() => Some(Message::Binary(bytes.into())),
            _ => None,
        },
        Err(err) => {
            warn!(%connection_id, error = %err, "message handler failed");
            let body = serde_json::json!({
                "message": "Internal server error",
                "connectionId": connection_id,
                "requestId": request_id,
            });
            Some(Message::Text(body.to_string().into()))
        }
    }
}
