//! The `$connect` Lambda REQUEST authorizer, run as API Gateway runs it for a WebSocket API:
//! the identity sources are checked first (one missing or empty: 401, no call); then the
//! function gets the REQUEST event. An applicable `Allow` lets `$connect` run, with the
//! `principalId` and context in `requestContext.authorizer` of every event of the connection;
//! a `Deny` refuses with 403, an `Unauthorized` failure with 401, any other failure or a
//! malformed answer with 500.

mod identity;
mod policy;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use futures::future::BoxFuture;
use http::StatusCode;
use serde_json::Value;
use tracing::{info, warn};

pub use identity::{IdentitySource, InvalidIdentitySource};

use crate::counters::{Counters, bump};
use crate::events::{self, ApiContext};
use crate::handler::HandlerError;
use policy::Decision;

/// The error message with which a Lambda authorizer asks API Gateway for a 401.
const UNAUTHORIZED: &str = "Unauthorized";

/// An authorizer invocation that failed rather than answered.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizerFailure {
    /// The function failed with the message `Unauthorized`: API Gateway answers 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// Any other failure: API Gateway answers 500.
    #[error("{0}")]
    Failed(#[source] HandlerError),
}

impl AuthorizerFailure {
    /// A Lambda function's error as API Gateway sees it: only its message, and the message
    /// `Unauthorized` means 401. So a real authorizer's error type maps here unchanged.
    pub fn from_error(error: impl Into<HandlerError>) -> Self {
        let error = error.into();
        if error.to_string() == UNAUTHORIZED {
            Self::Unauthorized
        } else {
            Self::Failed(error)
        }
    }
}

/// What an authorizer returns: its JSON answer (`principalId`, `policyDocument`, `context`),
/// read as API Gateway reads it, or a failure.
pub type AuthorizerResult = Result<Value, AuthorizerFailure>;

/// A Lambda REQUEST authorizer. It receives the event as API Gateway builds it for a
/// WebSocket API's `$connect` (`type`, `methodArn`, headers, query string, `requestContext`
/// with `connectionId` and `routeKey`), as JSON.
pub trait Authorizer: Send + Sync + 'static {
    fn authorize(&self, event: Value) -> BoxFuture<'_, AuthorizerResult>;
}

struct FnAuthorizer<F>(F);

impl<F, Fut> Authorizer for FnAuthorizer<F>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthorizerResult> + Send + 'static,
{
    fn authorize(&self, event: Value) -> BoxFuture<'_, AuthorizerResult> {
        Box::pin((self.0)(event))
    }
}

/// An [`Authorizer`] from an async closure.
pub fn authorizer_fn<F, Fut>(f: F) -> Arc<dyn Authorizer>
where
    F: Fn(Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = AuthorizerResult> + Send + 'static,
{
    Arc::new(FnAuthorizer(f))
}

/// A stage's `$connect` authorizer: the function, and where API Gateway requires an identity.
#[derive(Clone)]
pub struct ConnectAuthorizer {
    pub handler: Arc<dyn Authorizer>,
    /// Each must be present and non-empty, or the handshake gets 401 without a call. Empty:
    /// the authorizer is always called.
    pub identity_sources: Vec<IdentitySource>,
    /// The region and account of the `methodArn`.
    pub region: String,
    pub account_id: String,
}

impl ConnectAuthorizer {
    /// `handler` with no identity source, in `us-east-1`, account `123456789012`.
    pub fn new(handler: Arc<dyn Authorizer>) -> Self {
        Self {
            handler,
            identity_sources: Vec::new(),
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
        }
    }

    pub fn with_identity_sources(
        mut self,
        sources: impl IntoIterator<Item = IdentitySource>,
    ) -> Self {
        self.identity_sources = sources.into_iter().collect();
        self
    }

    /// Decides the handshake whose `$connect` event is `connect`: on Allow, the fields of
    /// `requestContext.authorizer` for the connection's events.
    pub(crate) async fn check(
        &self,
        api: &ApiContext,
        connect: &ApiGatewayWebsocketProxyRequest,
        counters: &Counters,
    ) -> Result<HashMap<String, Value>, Refusal> {
        let connection_id = connect
            .request_context
            .connection_id
            .as_deref()
            .unwrap_or_default();
        let outcome = match identity::first_missing(&self.identity_sources, connect) {
            Some(source) => {
                info!(connection_id, %source, "identity source missing: 401 without calling the authorizer");
                Err(Refusal::Unauthorized)
            }
            None => self.call(api, connect, counters).await,
        };
        count(counters, &outcome);
        if let Err(refusal) = &outcome {
            info!(connection_id, status = %refusal.status(), "the authorizer refused the connection");
        }
        outcome
    }

    /// Calls the function and reads its answer.
    async fn call(
        &self,
        api: &ApiContext,
        connect: &ApiGatewayWebsocketProxyRequest,
        counters: &Counters,
    ) -> Result<HashMap<String, Value>, Refusal> {
        let method_arn = events::connect_method_arn(api, &self.region, &self.account_id);
        let event = events::authorizer_event(connect, &method_arn).map_err(|err| {
            warn!(error = %err, "the handshake cannot be written as an authorizer event");
            Refusal::Failed
        })?;
        bump(&counters.authorizer_calls);
        let started = Instant::now();
        let answer = self.handler.authorize(event).await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        judge(answer, &method_arn).map(|allowed| allowed.into_fields(latency_ms))
    }
}

impl std::fmt::Debug for ConnectAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectAuthorizer")
            .field("identity_sources", &self.identity_sources)
            .field("region", &self.region)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// Why the authorizer step refused a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 401: an identity source missing, or the function failed with `Unauthorized`.
    Unauthorized,
    /// 403: the policy does not allow `$connect`.
    Forbidden,
    /// 500: the function failed, or its answer was malformed.
    Failed,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body API Gateway sends with the refusal.
    pub(crate) fn body(self) -> String {
        let message = match self {
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::Failed => "Internal server error",
        };
        serde_json::json!({ "message": message }).to_string()
    }
}

/// The outcome of an answered (or failed) call.
fn judge(answer: AuthorizerResult, method_arn: &str) -> Result<policy::Allowed, Refusal> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(AuthorizerFailure::Unauthorized) => return Err(Refusal::Unauthorized),
        Err(AuthorizerFailure::Failed(err)) => {
            warn!(error = %err, "the authorizer failed");
            return Err(Refusal::Failed);
        }
    };
    match policy::evaluate(answer, method_arn) {
        Ok(Decision::Allow(allowed)) => Ok(allowed),
        Ok(Decision::Deny) => Err(Refusal::Forbidden),
        Err(err) => {
            warn!(error = %err, "the authorizer's answer is malformed");
            Err(Refusal::Failed)
        }
    }
}

fn count<T>(counters: &Counters, outcome: &Result<T, Refusal>) {
    bump(match outcome {
        Ok(_) => &counters.authorizer_allowed,
        Err(Refusal::Unauthorized) => &counters.authorizer_unauthorized,
        Err(Refusal::Forbidden) => &counters.authorizer_denied,
        Err(Refusal::Failed) => &counters.authorizer_errors,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_error_named_unauthorized_is_a_401() {
        #[derive(Debug, thiserror::Error)]
        #[error("Unauthorized")]
        struct Missing;
        assert!(matches!(
            AuthorizerFailure::from_error(Missing),
            AuthorizerFailure::Unauthorized
        ));
        assert!(matches!(
            AuthorizerFailure::from_error("keys unavailable"),
            AuthorizerFailure::Failed(_)
        ));
    }

    #[test]
    fn failures_and_answers_map_to_statuses() {
        let arn = "arn:aws:execute-api:us-east-1:1:api/local/$connect";
        let refused = |answer| judge(answer, arn).unwrap_err().status().as_u16();
        assert_eq!(refused(Err(AuthorizerFailure::Unauthorized)), 401);
        assert_eq!(refused(Err(AuthorizerFailure::Failed("boom".into()))), 500);
        assert_eq!(refused(Ok(serde_json::json!({"nonsense": 1}))), 500);
        let deny = serde_json::json!({
            "principalId": "x",
            "policyDocument": {"Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": arn}]},
        });
        assert_eq!(refused(Ok(deny)), 403);
    }
}
