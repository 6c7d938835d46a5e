//! Gateway settings and errors.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::authorizer::ConnectAuthorizer;
use super::faults::{Faults, Latency};
use super::throttle::Throttle;

/// API Gateway's hard limit on a message, inbound or posted.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// API Gateway's hard limit on one WebSocket frame: a larger message must come in fragments.
pub const MAX_FRAME_BYTES: usize = 32 * 1024;

/// Client messages that may wait per connection behind the one being routed.
pub const DEFAULT_MESSAGE_QUEUE: usize = 32;

/// Settings of one emulated WebSocket API stage. The defaults are AWS's.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The stage: `ws://HOST:PORT/{stage}` and `http://HOST:PORT/{stage}/@connections/{id}`.
    pub stage: String,
    /// `requestContext.apiId` of the events.
    pub api_id: String,
    /// `requestContext.domainName`; `None` reports the `Host` the client connected to.
    pub domain_name: Option<String>,
    /// Route keys selected by `$request.body.action`, besides `$default`.
    pub route_keys: Vec<String>,
    /// A socket without client traffic (messages, pings) for this long is closed.
    pub idle_timeout: Duration,
    /// A socket open for this long is closed whatever its traffic.
    pub max_duration: Duration,
    /// Largest post body and largest client message, in bytes.
    pub max_payload_bytes: usize,
    /// Largest client frame, in bytes; a larger one closes the socket with 1009 as soon as its
    /// header is read.
    pub max_frame_bytes: usize,
    /// Client messages that wait per connection while one of its messages is being routed
    /// (API Gateway routes a connection's messages one at a time). A message that finds the
    /// queue full is not routed: the client gets API Gateway's throttling error instead.
    pub message_queue: usize,
    /// Messages queued per socket before posts get 429 (a client that does not read).
    pub client_buffer_messages: usize,
    /// Account throttle on the management API; `None` is unlimited.
    pub throttle: Option<Throttle>,
    /// Latency added to each management API call.
    pub latency: Latency,
    /// Failures injected into posts.
    pub faults: Faults,
    /// A Lambda REQUEST authorizer on `$connect`; `None` lets every handshake reach `$connect`.
    pub authorizer: Option<ConnectAuthorizer>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            stage: "local".to_owned(),
            api_id: "localwsapi".to_owned(),
            domain_name: None,
            route_keys: Vec::new(),
            idle_timeout: Duration::from_secs(10 * 60),
            max_duration: Duration::from_secs(2 * 60 * 60),
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            max_frame_bytes: MAX_FRAME_BYTES,
            message_queue: DEFAULT_MESSAGE_QUEUE,
            client_buffer_messages: 1024,
            throttle: None,
            latency: Latency::default(),
            faults: Faults::default(),
            authorizer: None,
        }
    }
}

impl GatewayConfig {
    /// Checks the settings that would otherwise fail at run time.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let invalid = |what: &str| Err(GatewayError::InvalidConfig(what.to_owned()));
        if self.stage.is_empty()
            || !self
                .stage
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid("stage must be non-empty [A-Za-z0-9_-]");
        }
        if self.idle_timeout.is_zero() || self.max_duration.is_zero() {
            return invalid("idle_timeout and max_duration must be positive");
        }
        if [
            self.max_payload_bytes,
            self.max_frame_bytes,
            self.message_queue,
            self.client_buffer_messages,
        ]
        .contains(&0)
        {
            return invalid(
                "max_payload_bytes, max_frame_bytes, message_queue and client_buffer_messages must be positive",
            );
        }
        if let Some(throttle) = &self.throttle {
            validate_throttle(throttle)?;
        }
        if let Some(authorizer) = &self.authorizer
            && (authorizer.region.is_empty() || authorizer.account_id.is_empty())
        {
            return invalid("the authorizer's region and account_id must be non-empty");
        }
        validate_faults(&self.faults)
    }
}

pub(crate) fn validate_throttle(throttle: &Throttle) -> Result<(), GatewayError> {
    if throttle.is_valid() {
        Ok(())
    } else {
        Err(GatewayError::InvalidConfig(format!(
            "throttle needs a positive rate and a burst of at least 1: {throttle:?}"
        )))
    }
}

pub(crate) fn validate_faults(faults: &Faults) -> Result<(), GatewayError> {
    if faults.is_valid() {
        Ok(())
    } else {
        Err(GatewayError::InvalidConfig(format!(
            "fault rates must be within 0.0..=1.0: {faults:?}"
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid gateway configuration: {0}")]
    InvalidConfig(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(#[source] io::Error),
    #[error("connection id {0} is already in use")]
    DuplicateConnection(String),
    #[error("the gateway's server failed: {0}")]
    Serve(#[source] io::Error),
    #[error("the gateway's server task ended abnormally: {0}")]
    ServerTask(#[source] tokio::task::JoinError),
}
