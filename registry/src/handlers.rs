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

use std::future::Future;

use crate::client_message::{ClientError, ClientMessage, Reply};
use crate::config::RegistryConfig;
use crate::connection::Connection;
use crate::filter::{Filter, FilterError, Interest};
use crate::identity::Identity;
use crate::sampler::LogSampler;
use crate::store::{Registry, Touch};

/// The handshake header a browser offers subprotocols in; a token may travel there.
const SUBPROTOCOL_HEADER: &str = "sec-websocket-protocol";

/// The port to snapshots: posts the connection the current state of every entity its
/// interest matches, in SNAPSHOT parts. The `message` function's is the `snapshot` crate's.
pub trait Snapshots: Send + Sync {
    /// `connected_at_ms`: when the connection opened (its row's `connectedAt`). The state sent
    /// is read after it: a change broadcast before the connection existed is in it.
    fn send(
        &self,
        connection_id: &str,
        interest: &Interest,
        connected_at_ms: i64,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Snapshots where the stage keeps none: a `snapshot` action gets ERROR.
pub struct NoSnapshots;

impl Snapshots for NoSnapshots {
    async fn send(&self, _: &str, _: &Interest, _: i64) -> Result<(), String> {
        Err("snapshots are not enabled on this stage".into())
    }
}

/// Dispatches on the event's route key, as API Gateway's route selection does.
pub async fn route(
    registry: &Registry,
    snapshots: &impl Snapshots,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    match event.request_context.route_key.as_deref() {
        Some("$connect") => connect(registry, event).await,
        Some("$disconnect") => disconnect(registry, event).await,
        _ => message(registry, snapshots, event).await,
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
    let connection = new_row(connection_id, event, registry.config());
    // A filter in the URL is in force from the first broadcast, so nothing is missed between
    // the open and a `subscribe`; one the connection may not have refuses the handshake.
    let filter = match connect_filter(event, &connection) {
        Ok(filter) => filter,
        Err(e) => {
            info!(connection_id, error = %e, "connect refused: invalid filter");
            return response(400, Some(Reply::from(ClientError::from(e)).to_json()));
        }
    };
    let connection = connection.with_filter(filter);
    let subject = connection.subject.as_deref().unwrap_or_default();
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

/// The filter of the connect URL (`entityTypes`, `entityIds`, comma-separated), checked
/// against the types the connection's token allows.
fn connect_filter(
    event: &ApiGatewayWebsocketProxyRequest,
    connection: &Connection,
) -> Result<Filter, FilterError> {
    let query = &event.query_string_parameters;
    let filter = Filter::from_query(query.first("entityTypes"), query.first("entityIds"))?;
    filter.check_allowed(connection.allowed_entity_types.as_deref())?;
    Ok(filter)
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

/// Refused client messages logged per process and minute; the rest are counted (the next
/// line logged says how many). A client can send hundreds of frames a second.
const REFUSALS_LOGGED_PER_MINUTE: u32 = 10;

/// Every refused client message this process saw, logged or not.
pub static REFUSED_MESSAGES: LogSampler = LogSampler::new(REFUSALS_LOGGED_PER_MINUTE, 60_000);

/// The `$default` route: answers every client message, and never fails the connection.
pub async fn message(
    registry: &Registry,
    snapshots: &impl Snapshots,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let connection_id = connection_id(event).unwrap_or_default();
    let reply = match ClientMessage::parse(event.body.as_deref()) {
        Ok(ClientMessage::Ping) => {
            ping(registry, connection_id, event).await;
            Reply::Pong
        }
        Ok(ClientMessage::Subscribe(filter)) => subscribe(registry, connection_id, filter).await,
        Ok(ClientMessage::Snapshot(filter)) => {
            match snapshot(registry, snapshots, connection_id, filter).await {
                // The parts are the answer; the route response stays empty.
                None => return response(200, None),
                Some(error) => error,
            }
        }
        Err(e) => {
            if let Some(suppressed) = REFUSED_MESSAGES.admit(now_ms()) {
                let subject = subject_of(event);
                info!(connection_id, subject, error = %e, suppressed, "refused client message");
            }
            Reply::from(e)
        }
    };
    response(200, Some(reply.to_json()))
}

/// Replaces the connection's filter, unless it names types the connection's token does not
/// allow; the answer echoes the filter in force.
async fn subscribe(registry: &Registry, connection_id: &str, filter: Filter) -> Reply {
    let row = match registry.get(connection_id).await {
        Ok(Some(row)) => row,
        Ok(None) => return error_reply("this connection has no registry row; reconnect"),
        Err(e) => {
            error!(connection_id, error = %e, "could not read the connection for a subscribe");
            return error_reply("the subscription could not be changed; try again");
        }
    };
    if let Err(e) = filter.check_allowed(row.allowed_entity_types.as_deref()) {
        return Reply::from(ClientError::from(e));
    }
    match registry.set_filter(connection_id, &filter).await {
        Ok(true) => {
            info!(connection_id, ?filter, "subscribed");
            Reply::Subscribed(filter)
        }
        Ok(false) => error_reply("this connection has no registry row; reconnect"),
        Err(e) => {
            error!(connection_id, error = %e, "could not store the filter");
            error_reply("the subscription could not be changed; try again")
        }
    }
}

/// Posts the connection its snapshot of what `filter` matches (`None`: the connection's
/// filter), within its token's types; returns the ERROR to answer when it could not.
async fn snapshot(
    registry: &Registry,
    snapshots: &impl Snapshots,
    connection_id: &str,
    filter: Option<Filter>,
) -> Option<Reply> {
    let (interest, connected_at) = match registry.get(connection_id).await {
        Ok(Some(row)) if filter.is_none() => (row.interest(), row.connected_at),
        Ok(Some(row)) => {
            let filter = filter.unwrap_or_default();
            if let Err(e) = filter.check_allowed(row.allowed_entity_types.as_deref()) {
                return Some(Reply::from(ClientError::from(e)));
            }
            let interest = Interest {
                filter,
                allowed_types: row.allowed_entity_types,
            };
            (interest, row.connected_at)
        }
        Ok(None) => {
            return Some(error_reply(
                "this connection has no registry row; reconnect",
            ));
        }
        Err(e) => {
            error!(connection_id, error = %e, "could not read the connection for a snapshot");
            return Some(error_reply("the snapshot could not be sent; try again"));
        }
    };
    match snapshots.send(connection_id, &interest, connected_at).await {
        Ok(()) => None,
        Err(e) => {
            warn!(connection_id, error = %e, "snapshot not sent");
            Some(error_reply(&format!("the snapshot could not be sent: {e}")))
        }
    }
}

fn error_reply(message: &str) -> Reply {
    Reply::Error {
        message: message.to_owned(),
    }
}

/// A ping refreshes the row's ttl (at most once per touch interval); failures are logged only:
/// the client gets its PONG either way.
async fn ping(registry: &Registry, connection_id: &str, event: &ApiGatewayWebsocketProxyRequest) {
    match registry.touch(connection_id, now_ms()).await {
        Ok(Touch::Refreshed | Touch::Recent) => {}
        Ok(Touch::Gone) => {
            let subject = subject_of(event);
            warn!(
                connection_id,
                subject, "ping from a connection without a row"
            );
        }
        Err(e) => {
            let subject = subject_of(event);
            error!(connection_id, subject, error = %e, "could not refresh connection ttl");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    /// Counts the log events whose message is `wanted`.
    struct CountLines {
        wanted: &'static str,
        count: Arc<AtomicUsize>,
    }

    impl Subscriber for CountLines {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            if message.0 == self.wanted {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    struct Message(String);

    impl Visit for Message {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    /// A registry whose table is never reached: refused messages do not touch it.
    fn offline_registry() -> Registry {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        Registry::new(
            aws_sdk_dynamodb::Client::from_conf(config),
            RegistryConfig::for_table("unused"),
        )
    }

    fn message_event(body: &str) -> ApiGatewayWebsocketProxyRequest {
        let mut event = ApiGatewayWebsocketProxyRequest::default();
        event.request_context.route_key = Some("$default".to_owned());
        event.request_context.connection_id = Some("Flood0000000001=".to_owned());
        event.body = Some(body.to_owned());
        event
    }

    // The only test in this binary that sends refused messages through `message`, so the
    // process-wide sampler is its own.
    #[tokio::test]
    async fn a_flood_of_refused_messages_logs_a_bounded_number_of_lines() {
        let count = Arc::new(AtomicUsize::new(0));
        let _guard = tracing::subscriber::set_default(CountLines {
            wanted: "refused client message",
            count: count.clone(),
        });
        let registry = offline_registry();
        let before = REFUSED_MESSAGES.total();
        let junk = format!(r#"{{"action":"{}"}}"#, "j".repeat(4000));
        for _ in 0..2_000 {
            let response = message(&registry, &NoSnapshots, &message_event(&junk)).await;
            assert_eq!(response.status_code, 200, "the connection is never failed");
            let Some(Body::Text(reply)) = response.body else {
                panic!("a text reply");
            };
            assert!(reply.starts_with(r#"{"type":"ERROR""#), "{reply}");
            assert!(reply.len() < 300, "the echo is cut: {} bytes", reply.len());
        }
        let lines = count.load(Ordering::Relaxed);
        assert!(
            (1..=REFUSALS_LOGGED_PER_MINUTE as usize).contains(&lines),
            "{lines} lines for 2000 refused messages"
        );
        assert_eq!(
            REFUSED_MESSAGES.total() - before,
            2_000,
            "every refusal counted"
        );
    }
}
