//! A socket's life after the handshake: one task that reads client frames, hands their
//! messages to the connection's router ([`Inbound`]) and writes posted messages and replies;
//! the timeouts, the close handshake (with API Gateway's codes for refused frames) and
//! `$disconnect`.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::SinkExt as _;
use platform::clock::now_ms;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tracing::{debug, info};

use super::Shared;
use super::counters::bump;
use super::events;
use super::inbound::Inbound;
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
    /// The server closes: DELETE, a timeout, a refused frame, shutdown.
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
    let inbound = Inbound::start(&shared, &conn.info.id, link.outbound.clone());
    let end = pump(&shared, &conn, link, &inbound, &mut socket, &mut outbound).await;
    // Messages still waiting are not routed: the connection is gone.
    drop(inbound);
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
    inbound: &Inbound,
    socket: &mut WebSocket,
    outbound: &mut mpsc::Receiver<Message>,
) -> End {
    let connection_id = conn.info.id.as_str();
    let idle_timeout = shared.config.idle_timeout;
    let max_duration = sleep(shared.config.max_duration);
    let idle = sleep(idle_timeout);
    tokio::pin!(max_duration, idle);
    loop {
        // Posts and replies go out before more client frames are read: a flooding client
        // cannot starve its own socket's writes.
        tokio::select! {
            biased;
            () = link.close.cancelled() => return End::Server(link.close_reason()),
            () = &mut max_duration => return End::Server(CloseReason::MaxDuration),
            () = &mut idle => return End::Server(CloseReason::IdleTimeout),
            queued = outbound.recv() => {
                // The link in `conn` holds a sender, so the queue cannot close while we run.
                let Some(first) = queued else { return End::Server(CloseReason::Shutdown) };
                if let Err(err) = write_batch(socket, first, outbound).await {
                    debug!(connection_id, error = %err, "socket write failed");
                    return End::Abnormal;
                }
            }
            frame = socket.recv() => {
                let message = match frame {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => return read_failure(connection_id, &err),
                    None => return End::Abnormal,
                };
                // Any client frame counts as activity; server posts do not.
                idle.as_mut().reset(Instant::now() + idle_timeout);
                conn.touch(now_ms());
                if let Some(end) = on_client_message(shared, conn, inbound, socket, message).await {
                    return end;
                }
            }
        }
    }
}

/// A read that failed: a frame API Gateway refuses closes the socket with the code it uses
/// (RFC 6455 section 7.4.1); anything else is a broken connection.
fn read_failure(connection_id: &str, err: &axum::Error) -> End {
    let reason = std::error::Error::source(err)
        .and_then(|inner| inner.downcast_ref::<WsError>())
        .and_then(refusal_reason);
    debug!(connection_id, error = %err, ?reason, "socket read failed");
    reason.map_or(End::Abnormal, End::Server)
}

/// The close that answers a frame tungstenite refused; `None` for a transport failure.
fn refusal_reason(err: &WsError) -> Option<CloseReason> {
    match err {
        // Over `max_frame_bytes` (read from the header, before the payload is buffered) or
        // over `max_payload_bytes` once reassembled.
        WsError::Capacity(_) => Some(CloseReason::MessageTooBig),
        WsError::Utf8(_) => Some(CloseReason::InvalidPayload),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(CloseReason::ProtocolError),
        _ => None,
    }
}

/// Queues a data message for its route, or answers it at once when the connection's queue
/// is full; a close frame ends the socket (`Some`), as does a failed answer.
async fn on_client_message(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    inbound: &Inbound,
    socket: &mut WebSocket,
    message: Message,
) -> Option<End> {
    let (body, is_base64_encoded) = match message {
        Message::Text(text) => (text.as_str().to_owned(), false),
        Message::Binary(data) => (STANDARD.encode(&data), true),
        Message::Ping(_) | Message::Pong(_) => return None,
        Message::Close(frame) => {
            let (code, reason) = frame.map_or_else(
                || (1005, "Client-side close frame status not set".to_owned()),
                |f| (f.code, f.reason.as_str().to_owned()),
            );
            return Some(End::Client { code, reason });
        }
    };
    bump(&shared.counters.messages_received);
    let event = message_event(shared, conn, body, is_base64_encoded);
    let Err(throttled) = inbound.offer(event, &conn.info.id) else {
        return None;
    };
    bump(&shared.counters.messages_throttled);
    // Written here, not queued: a client that floods without reading its answers stops
    // being read (TCP back-pressure).
    if let Err(err) = socket.send(throttled).await {
        debug!(connection_id = %conn.info.id, error = %err, "socket write failed");
        return Some(End::Abnormal);
    }
    None
}

/// The `MESSAGE` event of a client message, stamped when it arrives.
fn message_event(
    shared: &Shared,
    conn: &Conn,
    body: String,
    is_base64_encoded: bool,
) -> ApiGatewayWebsocketProxyRequest {
    let route_key = if is_base64_encoded {
        events::DEFAULT_ROUTE
    } else {
        events::select_route(&body, &shared.config.route_keys)
    };
    events::message_event(
        &shared.api,
        &conn.info,
        route_key,
        body,
        is_base64_encoded,
        now_ms(),
    )
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
