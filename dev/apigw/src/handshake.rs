//! The handshake: `GET /{stage}` with an upgrade runs the authorizer (when configured), then
//! `$connect`, and answers 101, or refuses with their status before any WebSocket exists.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::Shared;
use super::authorizer::Refusal;
use super::conn_info::ConnInfo;
use super::counters::bump;
use super::events;
use super::handler::HandlerResult;
use super::ids;
use super::linger::Peer;
use super::table::{Conn, ConnKind, SocketLink};
use super::ws::run_socket;

/// `GET /{stage}` with an upgrade.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let mut info = connection_info(&shared, peer, &headers);
    let mut event = events::connect_event(
        &shared.api,
        &info,
        &headers,
        query.as_deref(),
        info.connected_at_ms,
    );
    if let Some(authorizer) = &shared.config.authorizer {
        match authorizer
            .check(&shared.api, &event, &shared.counters)
            .await
        {
            Ok(fields) => {
                event.request_context.authorizer.fields = fields.clone();
                info.authorizer = fields;
            }
            Err(refusal) => return authorizer_refusal(refusal),
        }
    }
    let connect = shared.handler.handle(event).await;
    match connect_outcome(connect, &info.id) {
        Ok(response) => accept(shared, info, &response, ws),
        Err((status, body)) => {
            bump(&shared.counters.connects_rejected);
            info!(connection_id = %info.id, %status, "$connect refused the connection");
            refusal(status, body)
        }
    }
}

/// A fresh connection id and what the events report about the client.
fn connection_info(shared: &Shared, peer: SocketAddr, headers: &HeaderMap) -> ConnInfo {
    let header = |name| {
        headers
            .get(name)
            .and_then(|h: &HeaderValue| h.to_str().ok())
    };
    let domain_name = shared.config.domain_name.clone().unwrap_or_else(|| {
        header(header::HOST).map_or_else(|| shared.local_addr.to_string(), str::to_owned)
    });
    ConnInfo {
        id: ids::random_id(),
        connected_at_ms: platform::clock::now_ms(),
        source_ip: peer.ip().to_string(),
        user_agent: header(header::USER_AGENT).map(str::to_owned),
        domain_name,
        authorizer: Default::default(),
    }
}

/// `$connect`'s answer: a 2xx accepts; another status, or a failure (500), refuses.
fn connect_outcome(
    result: HandlerResult,
    connection_id: &str,
) -> Result<ApiGatewayProxyResponse, (StatusCode, Option<Body>)> {
    let response = result.map_err(|err| {
        warn!(%connection_id, error = %err, "$connect handler failed");
        (StatusCode::INTERNAL_SERVER_ERROR, None)
    })?;
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok());
    match status {
        Some(status) if status.is_success() => Ok(response),
        Some(status) => Err((status, response.body)),
        None => {
            warn!(%connection_id, status = response.status_code, "$connect returned an invalid status");
            Err((StatusCode::INTERNAL_SERVER_ERROR, None))
        }
    }
}

/// Registers the connection and answers 101; the socket task starts once the upgrade is done.
fn accept(
    shared: Arc<Shared>,
    info: ConnInfo,
    response: &ApiGatewayProxyResponse,
    ws: WebSocketUpgrade,
) -> Response {
    let Some((conn, outbound_rx)) = register(&shared, info) else {
        return refusal(StatusCode::INTERNAL_SERVER_ERROR, None);
    };
    // Tungstenite refuses an oversize frame from its header, before buffering the payload;
    // the socket task answers the refusal with 1009, as API Gateway does.
    let mut ws = ws
        .max_message_size(shared.config.max_payload_bytes)
        .max_frame_size(shared.config.max_frame_bytes);
    // A subprotocol is agreed only when `$connect` returns one, and then exactly that one, as
    // on AWS (even one the client did not offer: the client then fails the handshake).
    if let Some(protocol) = selected_protocol(response) {
        ws.set_selected_protocol(protocol);
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

/// Adds the connection to the table before the 101 goes out: once the client sees the
/// handshake succeed, posts to its id are accepted (queued until the socket task starts).
fn register(shared: &Shared, info: ConnInfo) -> Option<(Arc<Conn>, mpsc::Receiver<Message>)> {
    let (outbound, outbound_rx) = mpsc::channel(shared.config.client_buffer_messages);
    let link = SocketLink::new(outbound, shared.shutdown.child_token());
    let conn = Arc::new(Conn::new(info, ConnKind::Socket(link)));
    if shared.connections.insert(conn.clone()).is_err() {
        warn!(connection_id = %conn.info.id, "connection id collision");
        bump(&shared.counters.connects_rejected);
        return None;
    }
    bump(&shared.counters.connects);
    info!(connection_id = %conn.info.id, source_ip = %conn.info.source_ip, "connected");
    Some((conn, outbound_rx))
}

/// The `Sec-WebSocket-Protocol` of `$connect`'s response, from `headers` or else the first of
/// `multiValueHeaders`.
fn selected_protocol(response: &ApiGatewayProxyResponse) -> Option<HeaderValue> {
    response
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .or_else(|| {
            response
                .multi_value_headers
                .get(header::SEC_WEBSOCKET_PROTOCOL)
        })
        .cloned()
}

fn authorizer_refusal(refusal: Refusal) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json")];
    (refusal.status(), headers, refusal.body()).into_response()
}

fn refusal(status: StatusCode, body: Option<Body>) -> Response {
    let body = match body {
        Some(Body::Text(text)) => text.into_bytes(),
        Some(Body::Binary(bytes)) => bytes,
        _ => Vec::new(),
    };
    (status, body).into_response()
}
