//! Who a connection is: what the `$connect` authorizer said about it. API Gateway passes the
//! authorizer's `principalId` and context to every route of the connection in
//! `requestContext.authorizer`; the keys here are the ones `authorizer::policy` writes.

use std::collections::HashMap;

use serde_json::Value;

/// The authorizer context key of the token's subject.
pub const SUBJECT_KEY: &str = "subject";
/// The authorizer context key of the entity types a token allows, comma-joined (context values
/// cannot be lists).
pub const ENTITY_TYPES_KEY: &str = "entityTypes";
const PRINCIPAL_KEY: &str = "principalId";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// `None`: the token does not limit what the connection may receive.
    pub entity_types: Option<Vec<String>>,
}

impl Identity {
    /// The identity in an event's authorizer fields; `None` when no authorizer ran
    /// (`AUTH_MODE=none`).
    pub fn from_authorizer(fields: &HashMap<String, Value>) -> Option<Self> {
        let text = |key| {
            fields
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let subject = text(SUBJECT_KEY).or_else(|| text(PRINCIPAL_KEY))?;
        let entity_types = text(ENTITY_TYPES_KEY).map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect()
        });
        Some(Self {
            subject: subject.to_owned(),
            entity_types,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: Value) -> HashMap<String, Value> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn subject_and_entity_types_come_from_the_context() {
        let identity = Identity::from_authorizer(&fields(json!({
            "principalId": "alice", "subject": "alice", "entityTypes": "stream, disk",
            "integrationLatency": 12
        })))
        .unwrap();
        assert_eq!(identity.subject, "alice");
        assert_eq!(
            identity.entity_types,
            Some(vec!["stream".to_owned(), "disk".to_owned()])
        );
    }

    #[test]
    fn the_principal_stands_in_for_a_missing_subject_and_no_authorizer_is_none() {
        let identity = Identity::from_authorizer(&fields(json!({"principalId": "bob"}))).unwrap();
        assert_eq!(
            (identity.subject.as_str(), identity.entity_types),
            ("bob", None)
        );
        assert_eq!(Identity::from_authorizer(&HashMap::new()), None);
        assert_eq!(
            Identity::from_authorizer(&fields(json!({"subject": ""}))),
            None
        );
    }
}
