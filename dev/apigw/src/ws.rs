//! The WebSocket side: the handshake with `$connect`, one task per socket that reads client
//! messages into `$default` (or a route key) and writes posted messages, the timeouts, and
//! `$disconnect`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::encodings::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::SinkExt as _;
use platform::clock::now_ms;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tracing::{debug, info, warn};

use super::Shared;
use super::conn_info::ConnInfo;
use super::counters::bump;
use super::events;
use super::ids;
use super::table::{CloseReason, Conn, ConnKind, SocketLink};

/// How long the server waits for the client's answer to its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Queued messages written per flush: amortises the flush under fan-out bursts.
const WRITE_BATCH: usize = 64;

/// Tungstenite's own limit sits above API Gateway's so that an oversize message is read and
/// answered with 1009 as API Gateway does; beyond this the read fails and the socket drops.
const READ_LIMIT_FACTOR: usize = 4;

/// `GET /{stage}` with an upgrade: runs `$connect`, then accepts or refuses the handshake.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let now = now_ms();
    let domain_name = shared.config.domain_name.clone().unwrap_or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map_or_else(|| shared.local_addr.to_string(), str::to_owned)
    });
    let info = ConnInfo {
        id: ids::random_id(),
        connected_at_ms: now,
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned),
        domain_name,
    };
    let event = events::connect_event(&shared.api, &info, &headers, query.as_deref(), now);
    let connection_id = info.id.clone();

    let accepted = match shared.handler.handle(event).await {
        Ok(response) => match u16::try_from(response.status_code)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
        {
            Some(status) if status.is_success() => Ok(response),
            Some(status) => Err((status, response.body)),
            None => {
                warn!(%connection_id, status = response.status_code, "$connect returned an invalid status");
                Err((StatusCode::INTERNAL_SERVER_ERROR, None))
            }
        },
        Err(err) => {
            warn!(%connection_id, error = %err, "$connect handler failed");
            Err((StatusCode::INTERNAL_SERVER_ERROR, None))
        }
    };
    let response = match accepted {
        Ok(response) => response,
        Err((status, body)) => {
            bump(&shared.counters.connects_rejected);
            info!(%connection_id, %status, "$connect refused the connection");
            return refusal(status, body);
        }
    };

    let (outbound, outbound_rx) = mpsc::channel(shared.config.client_buffer_messages);
    let link = SocketLink::new(outbound, shared.shutdown.child_token());
    let conn = Arc::new(Conn::new(info, ConnKind::Socket(link)));
    // Registered before the 101 goes out: once the client sees the handshake succeed, posts
    // to its id are accepted (queued until the socket task starts).
    if shared.connections.insert(conn.clone()).is_err() {
        warn!(%connection_id, "connection id collision");
        bump(&shared.counters.connects_rejected);
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, None);
    }
    bump(&shared.counters.connects);
    info!(%connection_id, source_ip = %conn.info.source_ip, "connected");

    let read_limit = shared.config.max_payload_bytes * READ_LIMIT_FACTOR;
    let mut ws = ws.max_message_size(read_limit).max_frame_size(read_limit);
    // A subprotocol is only agreed when `$connect` returns it, as on AWS.
    if let Some(protocol) = response.headers.get(header::SEC_WEBSOCKET_PROTOCOL) {
        ws.set_selected_protocol(protocol.clone());
    }
    let failed = (shared.clone(), conn.clone());
    ws.on_failed_upgrade(move |err| {
        let (shared, conn) = failed;
        debug!(connection_id = %conn.info.id, error = %err, "upgrade failed after $connect");
        if shared.connections.remove_exact(&conn) {
            shared.spawn_disconnect(conn.info.clone(), 1006, "Connection upgrade failed");
        }
    })
    .on_upgrade(move |socket| run_socket(shared, conn, socket, outbound_rx))
}

fn refusal(status: StatusCode, body: Option<Body>) -> Response {
    let body = match body {
        Some(Body::Text(text)) => text.into_bytes(),
        Some(Body::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    (status, body).into_response()
}

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

/// One socket's life: reads, writes, timers; then `$disconnect`.
async fn run_socket(
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
    let connection_id = conn.info.id.as_str();
    let idle_timeout = shared.config.idle_timeout;
    let max_payload = shared.config.max_payload_bytes;
    let closing = link.close.clone();
    let max_duration = sleep(shared.config.max_duration);
    let idle = sleep(idle_timeout);
    tokio::pin!(max_duration, idle);

    let end = loop {
        tokio::select! {
            biased;
            () = closing.cancelled() => break End::Server(link.close_reason()),
            () = &mut max_duration => break End::Server(CloseReason::MaxDuration),
            () = &mut idle => break End::Server(CloseReason::IdleTimeout),
            frame = socket.recv() => {
                let message = match frame {
                    Some(Ok(message)) => message,
                    Some(Err(err)) => {
                        debug!(connection_id, error = %err, "socket read failed");
                        break End::Abnormal;
                    }
                    None => break End::Abnormal,
                };
                // Any client frame counts as activity; server posts do not.
                idle.as_mut().reset(Instant::now() + idle_timeout);
                conn.touch(now_ms());
                match message {
                    Message::Text(text) if text.len() > max_payload => {
                        break End::Server(CloseReason::MessageTooBig);
                    }
                    Message::Binary(data) if data.len() > max_payload => {
                        break End::Server(CloseReason::MessageTooBig);
                    }
                    Message::Text(text) => dispatch(&shared, &conn, text.as_str().to_owned(), false),
                    Message::Binary(data) => dispatch(&shared, &conn, STANDARD.encode(&data), true),
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Close(frame) => {
                        let (code, reason) = frame.map_or_else(
                            || (1005, "Client-side close frame status not set".to_owned()),
                            |f| (f.code, f.reason.as_str().to_owned()),
                        );
                        break End::Client { code, reason };
                    }
                }
            }
            queued = outbound.recv() => {
                // The link in `conn` holds a sender, so the queue cannot close while we run.
                let Some(first) = queued else { break End::Server(CloseReason::Shutdown) };
                if let Err(err) = write_batch(&mut socket, first, &mut outbound).await {
                    debug!(connection_id, error = %err, "socket write failed");
                    break End::Abnormal;
                }
            }
        }
    };

    // Posts from now on get 410 (DELETE has already removed the entry).
    shared.connections.remove_exact(&conn);
    let (code, reason) = match end {
        End::Client { code, reason } => {
            // Tungstenite queued the close reply; the next read flushes it.
            let _ = timeout(CLOSE_GRACE, socket.recv()).await;
            (code, reason)
        }
        End::Server(why) => {
            let frame = CloseFrame {
                code: why.code(),
                reason: why.text().into(),
            };
            if socket.send(Message::Close(Some(frame))).await.is_ok() {
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
            (why.code(), why.text().to_owned())
        }
        End::Abnormal => (1006, "Connection was closed abnormally".to_owned()),
    };
    info!(connection_id, code, reason = %reason, "disconnected");
    drop(socket);
    shared.disconnect(&conn.info, code, &reason).await;
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
        let reply = match shared.handler.handle(event).await {
            Ok(response) => match response.body {
                Some(Body::Text(text)) if !text.is_empty() => Some(Message::Text(text.into())),
                Some(Body::Binary(bytes)) if !bytes.is_empty() => {
                    Some(Message::Binary(bytes.into()))
                }
                _ => None,
            },
            Err(err) => {
                warn!(%connection_id, error = %err, "message handler failed");
                // What API Gateway sends the client when the integration fails.
                let body = serde_json::json!({
                    "message": "Internal server error",
                    "connectionId": connection_id,
                    "requestId": request_id,
                });
                Some(Message::Text(body.to_string().into()))
            }
        };
        if let Some(reply) = reply {
            // Waits for room rather than dropping a reply; fails only once the socket is gone.
            if reply_to.send(reply).await.is_err() {
                debug!(%connection_id, "reply dropped: socket closed");
            }
        }
    });
}
