//! An authorizer's answer as API Gateway reads it: a `principalId`, an IAM policy on the
//! `methodArn`, and a `context` whose values are strings, numbers or booleans.
//!
//! The policy is judged as IAM judges it: a statement applies when one of its actions matches
//! `execute-api:Invoke` and one of its resources matches the method ARN (`*` and `?` are
//! wildcards); an applicable `Deny` wins, otherwise an applicable `Allow` allows, otherwise the
//! request is denied.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Map, Value};

const INVOKE_ACTION: &str = "execute-api:Invoke";

/// What API Gateway decided from a well-formed answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Allow(Allowed),
    Deny,
}

/// An Allow's principal and context: what the connection's events carry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Allowed {
    principal_id: String,
    context: Map<String, Value>,
}

impl Allowed {
    /// `requestContext.authorizer` as API Gateway fills it: each context key, `principalId`
    /// and the authorizer's `integrationLatency` in milliseconds.
    pub(crate) fn into_fields(self, integration_latency_ms: u64) -> HashMap<String, Value> {
        let mut fields: HashMap<String, Value> = self.context.into_iter().collect();
        fields.insert("principalId".to_owned(), Value::String(self.principal_id));
        fields.insert(
            "integrationLatency".to_owned(),
            Value::from(integration_latency_ms),
        );
        fields
    }
}

/// An answer API Gateway cannot use: the client gets 500.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MalformedAnswer {
    #[error("not an authorizer response: {0}")]
    Shape(#[from] serde_json::Error),
    #[error("context value {0:?} is an object or an array")]
    ContextValue(String),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    principal_id: String,
    policy_document: PolicyDocument,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct PolicyDocument {
    #[serde(rename = "Statement")]
    statement: OneOrMany<Statement>,
}

#[derive(Debug, Deserialize)]
struct Statement {
    #[serde(rename = "Effect")]
    effect: Effect,
    #[serde(rename = "Action")]
    action: OneOrMany<String>,
    #[serde(rename = "Resource")]
    resource: OneOrMany<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Effect {
    Allow,
    Deny,
}

/// IAM accepts a single value where a list is expected.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            Self::One(one) => std::slice::from_ref(one),
            Self::Many(many) => many,
        }
    }
}

impl Statement {
    fn applies_to(&self, method_arn: &str) -> bool {
        // Action names are case-insensitive in IAM; resources are not.
        let action = INVOKE_ACTION.to_ascii_lowercase();
        self.action
            .as_slice()
            .iter()
            .any(|a| wildcard_match(&a.to_ascii_lowercase(), &action))
            && self
                .resource
                .as_slice()
                .iter()
                .any(|r| wildcard_match(r, method_arn))
    }
}

/// Reads an authorizer's answer for a request on `method_arn`.
pub(crate) fn evaluate(answer: Value, method_arn: &str) -> Result<Decision, MalformedAnswer> {
    let answer: Answer = serde_json::from_value(answer)?;
    let context = answer.context.unwrap_or_default();
    if let Some(key) = context
        .iter()
        .find_map(|(key, value)| (value.is_object() || value.is_array()).then_some(key))
    {
        return Err(MalformedAnswer::ContextValue(key.clone()));
    }
    let effects: Vec<Effect> = answer
        .policy_document
        .statement
        .as_slice()
        .iter()
        .filter(|s| s.applies_to(method_arn))
        .map(|s| s.effect)
        .collect();
    if effects.contains(&Effect::Deny) || !effects.contains(&Effect::Allow) {
        return Ok(Decision::Deny);
    }
    Ok(Decision::Allow(Allowed {
        principal_id: answer.principal_id,
        context,
    }))
}

/// IAM's string match: `*` is any run of characters, `?` any one character.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has absorbed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_lambda_events::apigw::{
        ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse,
    };
    use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:localwsapi/local/$connect";

    fn answer(statements: Value, context: Value) -> Value {
        json!({
            "principalId": "user-1",
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": context,
        })
    }

    fn statement(effect: &str, resource: &str) -> Value {
        json!({"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource})
    }

    #[test]
    fn allow_on_the_method_arn_carries_principal_and_context() {
        let context = json!({"subject": "alice", "admin": true, "level": 3});
        let decision = evaluate(answer(json!([statement("Allow", ARN)]), context), ARN).unwrap();
        let Decision::Allow(allowed) = decision else {
            panic!("expected Allow, got {decision:?}");
        };
        let fields = allowed.into_fields(7);
        assert_eq!(fields["principalId"], "user-1");
        assert_eq!(fields["subject"], "alice");
        assert_eq!(fields["admin"], true);
        assert_eq!(fields["level"], 3);
        assert_eq!(fields["integrationLatency"], 7);
    }

    #[test]
    fn deny_wins_and_no_applicable_allow_denies() {
        let both = json!([statement("Allow", "*"), statement("Deny", ARN)]);
        assert_eq!(
            evaluate(answer(both, json!({})), ARN).unwrap(),
            Decision::Deny
        );
        let elsewhere = json!([statement("Allow", "arn:aws:execute-api:*:*:other/*")]);
        assert_eq!(
            evaluate(answer(elsewhere, Value::Null), ARN).unwrap(),
            Decision::Deny
        );
        let other_action = json!([{"Action": "execute-api:ManageConnections", "Effect": "Allow", "Resource": ARN}]);
        assert_eq!(
            evaluate(answer(other_action, Value::Null), ARN).unwrap(),
            Decision::Deny
        );
        assert_eq!(
            evaluate(answer(json!([]), Value::Null), ARN).unwrap(),
            Decision::Deny
        );
    }

    #[test]
    fn single_statements_lists_and_wildcards_are_read_as_iam_reads_them() {
        let single = json!({"Action": ["execute-api:*"], "Effect": "Allow", "Resource": ["arn:aws:execute-api:us-east-1:*:localwsapi/*/$connect"]});
        assert!(matches!(
            evaluate(answer(single, Value::Null), ARN).unwrap(),
            Decision::Allow(_)
        ));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(!wildcard_match("a*d", "abc"));
    }

    #[test]
    fn malformed_answers_are_errors() {
        let nested = answer(json!([statement("Allow", ARN)]), json!({"roles": ["a"]}));
        assert!(matches!(
            evaluate(nested, ARN),
            Err(MalformedAnswer::ContextValue(key)) if key == "roles"
        ));
        let no_policy = json!({"principalId": "user-1"});
        assert!(matches!(
            evaluate(no_policy, ARN),
            Err(MalformedAnswer::Shape(_))
        ));
        let no_principal = json!({"policyDocument": {"Statement": [statement("Allow", ARN)]}});
        assert!(evaluate(no_principal, ARN).is_err());
        let bad_effect = answer(json!([statement("allow", ARN)]), Value::Null);
        assert!(evaluate(bad_effect, ARN).is_err());
        assert!(evaluate(json!("Allow"), ARN).is_err());
    }

    /// The answer the project's authorizer builds with aws_lambda_events' types.
    #[test]
    fn reads_the_aws_lambda_events_response_type() {
        let mut statement = IamPolicyStatement::default();
        statement.action = vec![INVOKE_ACTION.to_owned()];
        statement.effect = IamPolicyEffect::Allow;
        statement.resource = vec![ARN.to_owned()];
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.version = Some("2012-10-17".to_owned());
        policy.statement = vec![statement];
        let mut response = ApiGatewayCustomAuthorizerResponse::<Value>::default();
        response.principal_id = Some("alice".to_owned());
        response.policy_document = policy;
        response.context = json!({"subject": "alice"});
        let value = serde_json::to_value(&response).unwrap();
        let Decision::Allow(allowed) = evaluate(value, ARN).unwrap() else {
            panic!("expected Allow");
        };
        assert_eq!(allowed.into_fields(0)["subject"], "alice");
    }
}
