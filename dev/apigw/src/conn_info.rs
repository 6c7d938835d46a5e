//! Who a connection is: what the route events and `GET @connections/{id}` report.

use std::collections::HashMap;

use serde_json::Value;

/// What the events and `GET @connections/{id}` report about a connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub(crate) id: String,
    pub(crate) connected_at_ms: i64,
    pub(crate) source_ip: String,
    pub(crate) user_agent: Option<String>,
    /// The `domainName` of the events: the configured one or the client's `Host`.
    pub(crate) domain_name: String,
    /// `requestContext.authorizer` of every event of the connection: the authorizer's
    /// `principalId` and context, as API Gateway keeps them for the connection's life. Empty
    /// without an authorizer.
    pub(crate) authorizer: HashMap<String, Value>,
}
