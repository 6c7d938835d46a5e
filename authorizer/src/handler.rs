//! One `$connect` authorization: event in, Allow / Deny / `Unauthorized` out, one log line.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::Diagnostic;
use platform::telemetry::Metrics;
use serde::{Deserialize, Deserializer};

use crate::jwks::JwksError;
use crate::policy::{self, AuthorizerResponse};
use crate::token::{self, ExtractedToken};
use crate::verify::{self, Identity, Rejection, Verifier, VerifyError};

/// The fields of a WebSocket `requestContext` that the REST-shaped
/// `ApiGatewayCustomAuthorizerRequestTypeRequestContext` does not carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    #[serde(default)]
    pub connection_id: Option<String>,
    #[serde(default)]
    pub route_key: Option<String>,
    #[serde(default)]
    pub event_type: Option<String>,
}

/// The event API Gateway sends a WebSocket REQUEST authorizer on `$connect`.
///
/// Read twice from the same JSON rather than through aws_lambda_events' `catch-all-fields`
/// feature: cargo would unify that feature into every crate of a workspace build, giving
/// each event type of every function (stream records, SQS messages) a flattened catch-all.
#[derive(Debug, Clone, Default)]
pub struct ConnectAuthEvent {
    pub request: ApiGatewayCustomAuthorizerRequestTypeRequest,
    pub connection: ConnectionInfo,
}

impl<'de> Deserialize<'de> for ConnectAuthEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        let connection = match value.get("requestContext") {
            Some(context) => ConnectionInfo::deserialize(context).map_err(D::Error::custom)?,
            None => ConnectionInfo::default(),
        };
        let request = serde_json::from_value(value).map_err(D::Error::custom)?;
        Ok(Self {
            request,
            connection,
        })
    }
}

/// A failed invocation, as opposed to a Deny.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthorizerError {
    /// No token: API Gateway answers 401 for exactly this error message.
    #[error("Unauthorized")]
    Unauthorized,
    /// The issuer's keys could not be had: API Gateway answers 500.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(JwksError),
    #[error("the event has no methodArn")]
    MissingMethodArn,
}

impl From<AuthorizerError> for Diagnostic {
    fn from(error: AuthorizerError) -> Self {
        let error_type = match error {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::KeysUnavailable(_) => "KeysUnavailable",
            AuthorizerError::MissingMethodArn => "MissingMethodArn",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    MissingToken,
    Allow {
        identity: Identity,
        token: ExtractedToken,
    },
    Deny {
        rejection: Rejection,
        token: ExtractedToken,
    },
    Unavailable(JwksError),
}

/// The handler: decides, logs the decision, answers.
pub async fn authorize(
    verifier: &Verifier,
    event: &ConnectAuthEvent,
) -> Result<AuthorizerResponse, AuthorizerError> {
    let method_arn = event
        .request
        .method_arn
        .as_deref()
        .ok_or(AuthorizerError::MissingMethodArn)?;
    let decision = decide(verifier, &event.request).await;
    log_decision(&decision, &event.connection);
    decision_metrics(&decision).emit();
    match decision {
        Decision::Allow { identity, .. } => Ok(policy::allow(&identity, method_arn)),
        Decision::Deny { .. } => Ok(policy::deny(method_arn)),
        Decision::MissingToken => Err(AuthorizerError::Unauthorized),
        Decision::Unavailable(e) => Err(AuthorizerError::KeysUnavailable(e)),
    }
}

pub async fn decide(
    verifier: &Verifier,
    request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
) -> Decision {
    let Some(token) = find_token(request) else {
        return Decision::MissingToken;
    };
    match verifier.verify(token.token()).await {
        Ok(identity) => Decision::Allow { identity, token },
        Err(VerifyError::Rejected(rejection)) => Decision::Deny { rejection, token },
        Err(VerifyError::Unavailable(e)) => Decision::Unavailable(e),
    }
}

/// API Gateway fills both the single- and the multi-value maps; either may carry the token.
fn find_token(request: &ApiGatewayCustomAuthorizerRequestTypeRequest) -> Option<ExtractedToken> {
    token::extract(&request.headers, &request.query_string_parameters).or_else(|| {
        token::extract(
            &request.multi_value_headers,
            &request.multi_value_query_string_parameters,
        )
    })
}

/// One EMF document per decision: the alarms watch denials and failures.
pub fn decision_metrics(decision: &Decision) -> Metrics {
    let is = |name: &str| {
        let hit = match decision {
            Decision::Allow { .. } => "Allowed",
            Decision::Deny { .. } => "Denied",
            Decision::MissingToken => "Unauthorized",
            Decision::Unavailable(_) => "KeysUnavailable",
        };
        u64::from(hit == name)
    };
    let mut metrics = Metrics::new("authorizer");
    metrics
        .add_counts(&[
            ("Allowed", is("Allowed")),
            ("Denied", is("Denied")),
            ("Unauthorized", is("Unauthorized")),
            ("KeysUnavailable", is("KeysUnavailable")),
        ])
        .expect("catalogued authorizer metrics");
    metrics
}

/// One structured line per decision; the token itself is never logged.
fn log_decision(decision: &Decision, connection: &ConnectionInfo) {
    let connection_id = connection.connection_id.as_deref().unwrap_or("-");
    let route_key = connection.route_key.as_deref().unwrap_or("-");
    match decision {
        Decision::Allow { identity, token } => tracing::info!(
            connection_id,
            route_key,
            decision = "allow",
            subject = %identity.subject,
            entity_types = identity.entity_types.as_ref().map(|t| t.join(",")),
            source = token.source().as_str(),
            "authorizer decision"
        ),
        Decision::Deny { rejection, token } => tracing::warn!(
            connection_id,
            route_key,
            decision = "deny",
            reason = rejection.code(),
            detail = %rejection,
            claimed_subject = verify::claimed_subject(token.token()),
            source = token.source().as_str(),
            "authorizer decision"
        ),
        Decision::MissingToken => tracing::info!(
            connection_id,
            route_key,
            decision = "unauthorized",
            reason = "missing_token",
            "authorizer decision"
        ),
        Decision::Unavailable(e) => tracing::error!(
            connection_id,
            route_key,
            decision = "error",
            reason = "keys_unavailable",
            detail = %e,
            "authorizer decision"
        ),
    }
}

#[cfg(test)]
mod tests;
