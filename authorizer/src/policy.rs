//! The answer API Gateway expects from a REQUEST authorizer: a principal, an IAM policy on the
//! event's `methodArn`, and a context whose values reach `$connect` in
//! `requestContext.authorizer` (values must be strings, numbers or booleans).

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde::{Deserialize, Serialize};

use crate::verify::Identity;

pub const POLICY_VERSION: &str = "2012-10-17";
pub const INVOKE_ACTION: &str = "execute-api:Invoke";
/// API Gateway wants a principal even on a Deny; the token's own `sub` is not trusted there.
pub const DENIED_PRINCIPAL: &str = "anonymous";
/// Context keys, as `$connect` reads them from `requestContext.authorizer`.
pub const SUBJECT_KEY: &str = "subject";
pub const ENTITY_TYPES_KEY: &str = "entityTypes";

/// The context map of an Allow (empty on a Deny).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Comma-joined: context values cannot be arrays.
    #[serde(
        rename = "entityTypes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entity_types: Option<String>,
}

pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse<AuthContext>;

pub fn allow(identity: &Identity, method_arn: &str) -> AuthorizerResponse {
    let context = AuthContext {
        subject: Some(identity.subject.clone()),
        entity_types: identity.entity_types.as_ref().map(|types| types.join(",")),
    };
    response(
        &identity.subject,
        IamPolicyEffect::Allow,
        method_arn,
        context,
    )
}

pub fn deny(method_arn: &str) -> AuthorizerResponse {
    response(
        DENIED_PRINCIPAL,
        IamPolicyEffect::Deny,
        method_arn,
        AuthContext::default(),
    )
}

fn response(
    principal: &str,
    effect: IamPolicyEffect,
    method_arn: &str,
    context: AuthContext,
) -> AuthorizerResponse {
    // The aws_lambda_events types are #[non_exhaustive]: built from Default, field by field.
    let mut statement = IamPolicyStatement::default();
    statement.action = vec![INVOKE_ACTION.to_owned()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_owned()];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some(POLICY_VERSION.to_owned());
    policy.statement = vec![statement];
    let mut answer = AuthorizerResponse::default();
    answer.principal_id = Some(principal.to_owned());
    answer.policy_document = policy;
    answer.context = context;
    answer
}

/// What `$connect` learns from an Allow: the authorizer map of its request context
/// (`ApiGatewayWebsocketProxyRequestContext::authorizer.fields`), read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    /// `None`: every entity type.
    pub entity_types: Option<Vec<String>>,
}

impl Principal {
    /// `None` when the map carries no subject (no authorizer ran).
    pub fn from_authorizer_fields(fields: &HashMap<String, serde_json::Value>) -> Option<Self> {
        let text = |key: &str| fields.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let subject = text(SUBJECT_KEY).filter(|s| !s.is_empty())?;
        let entity_types = text(ENTITY_TYPES_KEY).map(|joined| {
            joined
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        });
        Some(Self {
            subject,
            entity_types,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/$connect";

    fn identity(entity_types: Option<&[&str]>) -> Identity {
        Identity {
            subject: "alice".into(),
            entity_types: entity_types.map(|t| t.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn allow_shape() {
        let answer = allow(&identity(Some(&["stream", "batch"])), ARN);
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({
                "principalId": "alice",
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Action": ["execute-api:Invoke"],
                        "Effect": "Allow",
                        "Resource": [ARN],
                    }],
                },
                "context": {"subject": "alice", "entityTypes": "stream,batch"},
                "usageIdentifierKey": null,
            })
        );
    }

    #[test]
    fn allow_without_entity_types_has_no_entity_types_key() {
        let value = serde_json::to_value(allow(&identity(None), ARN)).unwrap();
        assert_eq!(value["context"], json!({"subject": "alice"}));
    }

    #[test]
    fn deny_shape() {
        assert_eq!(
            serde_json::to_value(deny(ARN)).unwrap(),
            json!({
                "principalId": "anonymous",
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Action": ["execute-api:Invoke"],
                        "Effect": "Deny",
                        "Resource": [ARN],
                    }],
                },
                "context": {},
                "usageIdentifierKey": null,
            })
        );
    }

    #[test]
    fn principal_read_back_from_the_connect_request_context() {
        // As API Gateway passes an Allow's context to $connect (with its own extras).
        let fields: HashMap<String, serde_json::Value> = serde_json::from_value(json!({
            "principalId": "alice",
            "subject": "alice",
            "entityTypes": "stream,batch",
            "integrationLatency": 42,
        }))
        .unwrap();
        assert_eq!(
            Principal::from_authorizer_fields(&fields),
            Some(Principal {
                subject: "alice".into(),
                entity_types: Some(vec!["stream".into(), "batch".into()]),
            })
        );
        assert_eq!(Principal::from_authorizer_fields(&HashMap::new()), None);
    }
}
