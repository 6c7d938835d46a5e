//! A local API Gateway WebSocket API: real sockets, real route events, the real `@connections`
//! management API, on one loopback listener.
//!
//! - `ws://HOST:PORT/{stage}`: the handshake runs `$connect` through the [`RouteHandler`]; a
//!   non-2xx answer refuses it with that status. A `Sec-WebSocket-Protocol` in `$connect`'s
//!   response `headers` (or `multiValueHeaders`) is the handshake's protocol, passed through
//!   as API Gateway does (even one the client did not offer); without one the handshake
//!   completes with no protocol. Client messages become `MESSAGE` events routed on
//!   `$request.body.action` (configured route keys, else `$default`); a handler's response
//!   body goes back to the client. Client close, drop, idle timeout and maximum duration end in
//!   `$disconnect` (best effort, as on AWS).
//! - An optional Lambda REQUEST authorizer on `$connect` ([`GatewayConfig::authorizer`], a
//!   [`ConnectAuthorizer`] over an [`Authorizer`]): identity sources checked first (one
//!   missing or empty: 401, no call), then the REQUEST event as JSON (`methodArn`, headers,
//!   query string, `requestContext` with `connectionId`). An `Allow` policy on the method ARN
//!   runs `$connect`, and its `principalId`, context and `integrationLatency` are in
//!   `requestContext.authorizer` of the `$connect`, `MESSAGE` and `$disconnect` events of the
//!   connection; a `Deny` refuses with 403, an `Unauthorized` failure with 401, any other
//!   failure or a malformed answer with 500, all before any WebSocket exists.
//! - `POST|GET|DELETE http://HOST:PORT/{stage}/@connections/{id}`: what
//!   aws-sdk-apigatewaymanagement calls with `endpoint_url = http://HOST:PORT/{stage}`, with
//!   AWS's status codes and `x-amzn-ErrorType` (410 Gone with an empty body, 413
//!   PayloadTooLarge, 429 LimitExceeded, 500, 403 MissingAuthenticationToken for other
//!   methods), UUID request ids, an optional token-bucket throttle, added latency and injected
//!   faults.
//!   Per-call latency, injected faults and the throttle can be changed while it runs: through
//!   [`Gateway`]'s methods, or (on a loopback listener) `GET|PUT /_admin/faults` with
//!   [`FaultSettings`] as JSON; `GET /_admin/counters` shows the [`CountersSnapshot`].
//! - Limits as API Gateway's: a client frame over 32 KB or a message over 128 KB closes the
//!   socket with 1009, invalid UTF-8 with 1007, a protocol violation with 1002. A
//!   connection's messages are routed one at a time, with a bounded queue behind
//!   ([`GatewayConfig::message_queue`]); a message that finds it full is answered with API
//!   Gateway's throttling error frame (`{"message": "Too Many Requests", ...}`).
//! - Virtual connections: ids without a socket whose posts are accepted, counted and
//!   time-stamped, so that a benchmark can fan out to 100k+ connections on one machine.
//!
//! ```no_run
//! use apigw::{AuthorizerFailure, ConnectAuthorizer, Gateway, GatewayConfig};
//! use apigw::{authorizer_fn, handler_fn, proxy_response};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let authorizer = authorizer_fn(|event: serde_json::Value| async move {
//!     let Some(token) = event["queryStringParameters"]["token"].as_str() else {
//!         return Err(AuthorizerFailure::Unauthorized);
//!     };
//!     let effect = if token == "let-me-in" { "Allow" } else { "Deny" };
//!     Ok(serde_json::json!({
//!         "principalId": "user-1",
//!         "policyDocument": {"Version": "2012-10-17", "Statement": [{
//!             "Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"],
//!         }]},
//!         "context": {"subject": "user-1"},
//!     }))
//! });
//! let config = GatewayConfig {
//!     authorizer: Some(
//!         ConnectAuthorizer::new(authorizer)
//!             .with_identity_sources(["route.request.querystring.token".parse()?]),
//!     ),
//!     ..GatewayConfig::default()
//! };
//! let routes = handler_fn(|_event| async { Ok(proxy_response(200, None)) });
//! let gateway = Gateway::bind("127.0.0.1:0".parse()?, config, routes).await?;
//! # drop(gateway);
//! # Ok(())
//! # }
//! ```

mod admin;
mod authorizer;
mod config;
mod conn_info;
mod counters;
mod events;
mod faults;
mod handler;
mod handshake;
pub mod ids;
mod inbound;
mod linger;
mod management;
mod settings;
mod table;
mod throttle;
mod ws;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use platform::clock::now_ms;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use authorizer::{
    Authorizer, AuthorizerFailure, AuthorizerResult, ConnectAuthorizer, IdentitySource,
    InvalidIdentitySource, authorizer_fn,
};
pub use config::{
    DEFAULT_MESSAGE_QUEUE, GatewayConfig, GatewayError, MAX_FRAME_BYTES, MAX_PAYLOAD_BYTES,
};
pub use counters::CountersSnapshot;
pub use faults::{Faults, Latency};
pub use handler::{HandlerError, HandlerResult, RouteHandler, handler_fn, proxy_response};
pub use settings::{FaultPatch, FaultSettings, SettingsError};
pub use table::{DeliverySummary, VirtualDelivery};
pub use throttle::Throttle;

use conn_info::ConnInfo;
use counters::{Counters, bump};
use events::ApiContext;
use faults::Knobs;
use linger::{LingeringListener, Peer};
use table::{Conn, ConnKind, ConnTable, DeliveryStats};

/// How long shutdown waits for sockets to close and `$disconnect`s to run.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// State shared by the socket tasks and the management API.
pub(crate) struct Shared {
    config: GatewayConfig,
    api: ApiContext,
    local_addr: SocketAddr,
    handler: Arc<dyn RouteHandler>,
    connections: ConnTable,
    counters: Counters,
    knobs: Knobs,
    /// Cancelled on shutdown; each socket's close token is a child of it.
    shutdown: CancellationToken,
    /// Socket tasks, message handlers and `$disconnect`s, awaited on shutdown.
    tasks: TaskTracker,
}

impl Shared {
    /// Runs `$disconnect` for a connection that has ended. Its answer is ignored, as on AWS.
    async fn disconnect(&self, info: &ConnInfo, code: u16, reason: &str) {
        bump(&self.counters.disconnects);
        let event = events::disconnect_event(&self.api, info, code, reason, now_ms());
        if let Err(err) = self.handler.handle(event).await {
            warn!(connection_id = %info.id, error = %err, "$disconnect handler failed");
        }
    }

    fn spawn_disconnect(self: &Arc<Self>, info: ConnInfo, code: u16, reason: &'static str) {
        let shared = self.clone();
        self.tasks
            .spawn(async move { shared.disconnect(&info, code, reason).await });
    }
}

/// The gateway's routes: the handshake, the management API and, on a loopback listener only,
/// the admin endpoint.
fn routes(shared: &Arc<Shared>) -> Router {
    let mut routes = Router::new()
        .route(
            &format!("/{}", shared.config.stage),
            get(handshake::upgrade),
        )
        .merge(management::routes(&shared.config.stage));
    if shared.local_addr.ip().is_loopback() {
        routes = routes.merge(admin::routes());
    }
    routes.with_state(shared.clone())
}

/// A running gateway. Dropping it stops the server and closes its sockets; [`Gateway::shutdown`]
/// also waits for the `$disconnect`s.
pub struct Gateway {
    shared: Arc<Shared>,
    server: Option<JoinHandle<io::Result<()>>>,
}

impl Gateway {
    /// Listens on `addr` (e.g. `127.0.0.1:0`) and starts serving.
    pub async fn bind(
        addr: SocketAddr,
        config: GatewayConfig,
        handler: Arc<dyn RouteHandler>,
    ) -> Result<Self, GatewayError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| GatewayError::Bind { addr, source })?;
        Self::start(listener, config, handler)
    }

    /// Serves the WebSocket API and the management API on `listener`.
    ///
    /// Must be called within a Tokio runtime: the server runs in a spawned task.
    pub fn start(
        listener: TcpListener,
        config: GatewayConfig,
        handler: Arc<dyn RouteHandler>,
    ) -> Result<Self, GatewayError> {
        Self::start_with_routes(listener, config, handler, Router::new())
    }

    /// Like [`Gateway::start`], with `extra` routes (e.g. a dashboard at `/`) on the same
    /// listener. They must not use `/{stage}`, `/{any}/@connections/{id}` or `/_admin/...`.
    pub fn start_with_routes(
        listener: TcpListener,
        config: GatewayConfig,
        handler: Arc<dyn RouteHandler>,
        extra: Router,
    ) -> Result<Self, GatewayError> {
        config.validate()?;
        let local_addr = listener.local_addr().map_err(GatewayError::LocalAddr)?;
        let shared = Arc::new(Shared {
            api: ApiContext {
                api_id: config.api_id.clone(),
                stage: config.stage.clone(),
                port: local_addr.port(),
            },
            knobs: Knobs::new(config.latency, config.faults, config.throttle),
            config,
            local_addr,
            handler,
            connections: ConnTable::new(),
            counters: Counters::default(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        let app = routes(&shared).merge(extra);
        let stop = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                LingeringListener(listener),
                app.into_make_service_with_connect_info::<Peer>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
        });
        info!(%local_addr, stage = %shared.config.stage, "API Gateway emulator listening");
        Ok(Self {
            shared,
            server: Some(server),
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The address clients reach: a wildcard listener is reached on loopback.
    fn reachable_addr(&self) -> SocketAddr {
        let mut addr = self.shared.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        addr
    }

    /// `ws://HOST:PORT/{stage}`
    pub fn ws_url(&self) -> String {
        format!(
            "ws://{}/{}",
            self.reachable_addr(),
            self.shared.config.stage
        )
    }

    /// `http://HOST:PORT/{stage}`: the SDK's `endpoint_url`.
    pub fn management_endpoint(&self) -> String {
        format!(
            "http://{}/{}",
            self.reachable_addr(),
            self.shared.config.stage
        )
    }

    /// The configuration the gateway started with (knobs may have changed since).
    pub fn config(&self) -> &GatewayConfig {
        &self.shared.config
    }

    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    /// Zeroes the counters (between benchmark runs).
    pub fn reset_counters(&self) {
        self.shared.counters.reset();
    }

    /// Open sockets.
    pub fn socket_count(&self) -> usize {
        self.shared.connections.counts().0
    }

    /// Ids of the open sockets.
    pub fn socket_ids(&self) -> Vec<String> {
        self.shared.connections.socket_ids()
    }

    /// Whether `id` is connected (socket or virtual).
    pub fn is_connected(&self, id: &str) -> bool {
        self.shared.connections.contains(id)
    }

    /// Replaces the throttle of the management API; a new bucket starts full.
    pub fn set_throttle(&self, throttle: Option<Throttle>) -> Result<(), GatewayError> {
        if let Some(throttle) = &throttle {
            config::validate_throttle(throttle)?;
        }
        self.shared.knobs.set_throttle(throttle);
        Ok(())
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), GatewayError> {
        config::validate_faults(&faults)?;
        self.shared.knobs.set_faults(faults);
        Ok(())
    }

    pub fn set_latency(&self, latency: Latency) {
        self.shared.knobs.set_latency(latency);
    }

    /// The live throttle, latency and fault settings, as `GET /_admin/faults` shows them.
    pub fn fault_settings(&self) -> FaultSettings {
        self.shared.knobs.settings()
    }

    fn virtual_conn(&self, id: String) -> Arc<Conn> {
        Arc::new(Conn::new(
            ConnInfo {
                id,
                connected_at_ms: now_ms(),
                source_ip: Ipv4Addr::LOCALHOST.to_string(),
                user_agent: Some("virtual-connection".to_owned()),
                domain_name: self
                    .shared
                    .config
                    .domain_name
                    .clone()
                    .unwrap_or_else(|| self.reachable_addr().to_string()),
                authorizer: Default::default(),
            },
            ConnKind::Virtual(DeliveryStats::default()),
        ))
    }

    /// Registers `n` virtual connections with fresh ids, without running `$connect`.
    pub fn add_virtual_connections(&self, n: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(n);
        while ids.len() < n {
            let id = ids::random_id();
            if self
                .shared
                .connections
                .insert(self.virtual_conn(id.clone()))
                .is_ok()
            {
                ids.push(id);
            }
        }
        ids
    }

    /// Registers a virtual connection with a chosen id, without running `$connect`.
    pub fn add_virtual_connection(&self, id: impl Into<String>) -> Result<(), GatewayError> {
        let id = id.into();
        self.shared
            .connections
            .insert(self.virtual_conn(id.clone()))
            .map_err(|_| GatewayError::DuplicateConnection(id))
    }

    /// Removes a virtual connection without `$disconnect`: a client gone while its
    /// `$disconnect` was missed, so the registry still lists it and posts get 410.
    pub fn remove_virtual_connection(&self, id: &str) -> bool {
        match self.shared.connections.get(id) {
            Some(conn) if matches!(conn.kind, ConnKind::Virtual(_)) => {
                self.shared.connections.remove_exact(&conn)
            }
            _ => false,
        }
    }

    /// Deliveries to one virtual connection; `None` for unknown ids and sockets.
    pub fn virtual_delivery(&self, id: &str) -> Option<VirtualDelivery> {
        self.shared.connections.virtual_delivery(id)
    }

    /// Deliveries to every virtual connection.
    pub fn virtual_deliveries(&self) -> Vec<(String, VirtualDelivery)> {
        self.shared.connections.virtual_deliveries()
    }

    /// Deliveries over all virtual connections.
    pub fn virtual_delivery_summary(&self) -> DeliverySummary {
        self.shared.connections.delivery_summary()
    }

    /// Forgets the deliveries of every virtual connection (between benchmark runs).
    pub fn reset_virtual_deliveries(&self) {
        self.shared.connections.reset_virtual_deliveries();
    }

    /// Stops accepting, closes every socket with 1001 and waits (bounded) for their
    /// `$disconnect`s and for the server to end.
    pub async fn shutdown(mut self) -> Result<(), GatewayError> {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.shared.tasks.wait())
            .await
            .is_err()
        {
            warn!("sockets or handlers still running after the shutdown grace period");
        }
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(result)) => result.map_err(GatewayError::Serve),
            Ok(Err(join)) => Err(GatewayError::ServerTask(join)),
            Err(_) => {
                warn!("HTTP connections still open after the shutdown grace period");
                Ok(())
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("local_addr", &self.shared.local_addr)
            .field("stage", &self.shared.config.stage)
            .finish_non_exhaustive()
    }
}
