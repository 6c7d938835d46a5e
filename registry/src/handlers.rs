//! The `$connect`, `$disconnect` and `$default` route handlers.
//!
//! Each takes the API Gateway event and answers with the proxy response API Gateway expects.
//! They never return an error to the runtime: a failure becomes a status code and a log line, so
//! API Gateway (not the Lambda retry machinery) decides what the client sees.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;
use platform::clock::now_ms;
use tracing::{error, info, warn};

use crate::client_message::{ClientMessage, Reply};
use crate::config::RegistryConfig;
use crate::connection::Connection;
use crate::identity::Identity;
use crate::store::Registry;

/// The handshake header a browser offers subprotocols in; a token may travel there.
const SUBPROTOCOL_HEADER: &str = "sec-websocket-protocol";

/// Dispatches on the event's route key, as API Gateway's route selection does.
pub async fn route(
    registry: &Registry,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    match event.request_context.route_key.as_deref() {
        Some("$connect") => connect(registry, event).await,
        Some("$disconnect") => disconnect(registry, event).await,
        _ => message(registry, event).await,
    }
}

/// Records the new connection, with the identity the authorizer gave it. A storage failure
/// answers 500, which makes API Gateway refuse the handshake: a client without a row would
/// never receive a broadcast. When the client offered subprotocols (a browser sending its
/// token that way), the answer names the first, or the browser drops the connection.
pub async fn connect(
    registry: &Registry,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let Some(connection_id) = connection_id(event) else {
        return response(400, None);
    };
    let subject = subject_of(event);
    let connection = new_row(connection_id, event, registry.config());
    match registry.register(&connection).await {
        Ok(()) => {
            info!(connection_id, subject, partition = %connection.connected, "connected");
            with_subprotocol(response(200, None), chosen_subprotocol(event))
        }
        Err(e) => {
            error!(connection_id, subject, error = %e, "could not register connection; refusing it");
            response(500, None)
        }
    }
}

/// The row of a connection that `$connect` accepts: who and where from, per the event.
fn new_row(
    connection_id: &str,
    event: &ApiGatewayWebsocketProxyRequest,
    config: &RegistryConfig,
) -> Connection {
    let context = &event.request_context;
    let connected_at = if context.connected_at > 0 {
        context.connected_at
    } else {
        now_ms()
    };
    Connection::new(
        connection_id,
        connected_at,
        context.identity.source_ip.clone(),
        context.identity.user_agent.clone(),
        config.buckets,
        config.ttl_seconds,
    )
    .with_identity(Identity::from_authorizer(&context.authorizer.fields))
}

/// Removes the connection's row; an id without a row is not an error (the row may have been
/// removed by fan-out on 410 Gone, or expired).
pub async fn disconnect(
    registry: &Registry,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let Some(connection_id) = connection_id(event) else {
        return response(400, None);
    };
    let context = &event.request_context;
    let subject = subject_of(event);
    match registry.remove(connection_id).await {
        Ok(()) => {
            info!(
                connection_id,
                subject,
                status = context.disconnect_status_code,
                reason = context.disconnect_reason.as_deref().unwrap_or(""),
                "disconnected"
            );
            response(200, None)
        }
        Err(e) => {
            // TTL removes the row eventually; fan-out removes it on the next 410.
            error!(connection_id, subject, error = %e, "could not remove connection row");
            response(500, None)
        }
    }
}

/// The `$default` route: answers every client message, and never fails the connection.
pub async fn message(
    registry: &Registry,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let connection_id = connection_id(event).unwrap_or_default();
    let subject = subject_of(event);
    let reply = match ClientMessage::parse(event.body.as_deref()) {
        Ok(ClientMessage::Ping) => {
            match registry.touch(connection_id, now_ms()).await {
                Ok(true) => {}
                Ok(false) => {
                    warn!(
                        connection_id,
                        subject, "ping from a connection without a row"
                    )
                }
                Err(e) => {
                    error!(connection_id, subject, error = %e, "could not refresh connection ttl")
                }
            }
            Reply::Pong
        }
        Err(e) => {
            info!(connection_id, subject, error = %e, "refused client message");
            Reply::from(e)
        }
    };
    response(200, Some(reply.to_json()))
}

fn connection_id(event: &ApiGatewayWebsocketProxyRequest) -> Option<&str> {
    let id = event
        .request_context
        .connection_id
        .as_deref()
        .filter(|id| !id.is_empty());
    if id.is_none() {
        error!(route = ?event.request_context.route_key, "event without a connectionId");
    }
    id
}

/// The authenticated subject for log lines ("" without authentication).
fn subject_of(event: &ApiGatewayWebsocketProxyRequest) -> String {
    Identity::from_authorizer(&event.request_context.authorizer.fields)
        .map(|identity| identity.subject)
        .unwrap_or_default()
}

/// The first subprotocol the client offered, if any.
fn chosen_subprotocol(event: &ApiGatewayWebsocketProxyRequest) -> Option<HeaderValue> {
    let offered = event.headers.get(SUBPROTOCOL_HEADER)?.to_str().ok()?;
    let first = offered.split(',').map(str::trim).find(|p| !p.is_empty())?;
    HeaderValue::from_str(first).ok()
}

fn with_subprotocol(
    mut response: ApiGatewayProxyResponse,
    protocol: Option<HeaderValue>,
) -> ApiGatewayProxyResponse {
    if let Some(protocol) = protocol {
        response.headers.insert(SUBPROTOCOL_HEADER, protocol);
    }
    response
}

fn response(status: i64, body: Option<String>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.body = body.map(Body::Text);
    response
}
