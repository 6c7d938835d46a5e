//! The connections table item (the seed's schema, extended with `lastSeenAt`).

use serde::{Deserialize, Serialize};

use crate::bucket::Buckets;
use crate::filter::{Filter, Interest};
use crate::identity::Identity;

/// `sourceIp` and `userAgent` come from the client's request: each is stored cut to this many
/// bytes (on a character boundary), so that no client decides its row's size (a 390 KB
/// User-Agent made a 390 KB row).
pub const MAX_CLIENT_TEXT_BYTES: usize = 512;

/// One row per open WebSocket connection. Attribute names and types are the seed's contract:
/// `connectionId` S (key), `connected` S (GSI partition), `connectedAt` N epoch ms (GSI sort),
/// `sourceIp` S, `userAgent` S, `ttl` N epoch seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    pub connection_id: String,
    pub connected: String,
    pub connected_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    pub ttl: i64,
    /// Epoch ms of the last client ping; absent until the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<i64>,
    /// The authenticated subject (the token's `sub`); absent without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The entity types the token allows; absent when it allows every type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_entity_types: Option<Vec<String>>,
    /// The subscription filter's lists (see [`Filter`]); absent: every entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_ids: Option<Vec<String>>,
}

impl Connection {
    /// A new row; `ttl` is `connected_at` plus `ttl_seconds`, in epoch seconds; `source_ip` and
    /// `user_agent` are cut to [`MAX_CLIENT_TEXT_BYTES`].
    pub fn new(
        connection_id: impl Into<String>,
        connected_at_ms: i64,
        source_ip: Option<String>,
        user_agent: Option<String>,
        buckets: Buckets,
        ttl_seconds: u64,
    ) -> Self {
        let connection_id = connection_id.into();
        Self {
            connected: buckets.partition_key(&connection_id),
            connection_id,
            connected_at: connected_at_ms,
            source_ip: source_ip.map(clip),
            user_agent: user_agent.map(clip),
            ttl: expiry(connected_at_ms, ttl_seconds),
            last_seen_at: None,
            subject: None,
            allowed_entity_types: None,
            entity_types: None,
            entity_ids: None,
        }
    }

    /// The same row subscribed to `filter`.
    pub fn with_filter(self, filter: Filter) -> Self {
        Self {
            entity_types: filter.entity_types,
            entity_ids: filter.entity_ids,
            ..self
        }
    }

    pub fn filter(&self) -> Filter {
        Filter {
            entity_types: self.entity_types.clone(),
            entity_ids: self.entity_ids.clone(),
        }
    }

    /// What the connection receives.
    pub fn interest(&self) -> Interest {
        Interest {
            filter: self.filter(),
            allowed_types: self.allowed_entity_types.clone(),
        }
    }

    /// The same row carrying who the authorizer said the connection is.
    pub fn with_identity(self, identity: Option<Identity>) -> Self {
        let (subject, allowed_entity_types) =
            identity.map_or((None, None), |i| (Some(i.subject), i.entity_types));
        Self {
            subject,
            allowed_entity_types,
            ..self
        }
    }
}

/// `text` cut to at most [`MAX_CLIENT_TEXT_BYTES`], on a character boundary.
fn clip(mut text: String) -> String {
    if text.len() > MAX_CLIENT_TEXT_BYTES {
        let mut end = MAX_CLIENT_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Epoch seconds at which DynamoDB TTL may remove a row last seen at `now_ms`.
pub fn expiry(now_ms: i64, ttl_seconds: u64) -> i64 {
    now_ms.div_euclid(1000) + i64::try_from(ttl_seconds).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_dynamo::AttributeValue;
    use std::collections::HashMap;

    #[test]
    fn the_item_matches_the_seed_schema_attribute_by_attribute() {
        let connection = Connection::new(
            "L0SM9cOFvHcCIhw=",
            1_699_123_456_789,
            Some("203.0.113.7".into()),
            Some("Mozilla/5.0".into()),
            Buckets::SEED,
            86_400,
        );
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(&connection).expect("serializable");
        let expected: HashMap<String, AttributeValue> = [
            ("connectionId", AttributeValue::S("L0SM9cOFvHcCIhw=".into())),
            ("connected", AttributeValue::S("true".into())),
            ("connectedAt", AttributeValue::N("1699123456789".into())),
            ("sourceIp", AttributeValue::S("203.0.113.7".into())),
            ("userAgent", AttributeValue::S("Mozilla/5.0".into())),
            ("ttl", AttributeValue::N("1699209856".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(item, expected);
        let back: Connection = serde_dynamo::from_item(item).expect("deserializable");
        assert_eq!(back, connection);
    }

    #[test]
    fn an_authenticated_row_carries_its_subject_and_allowed_types() {
        let identity = Identity {
            subject: "alice".into(),
            entity_types: Some(vec!["stream".into()]),
        };
        let connection =
            Connection::new("a=", 0, None, None, Buckets::SEED, 60).with_identity(Some(identity));
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&connection).unwrap();
        assert_eq!(item["subject"], AttributeValue::S("alice".into()));
        assert_eq!(
            item["allowedEntityTypes"],
            AttributeValue::L(vec![AttributeValue::S("stream".into())])
        );
        let back: Connection = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, connection);
    }

    #[test]
    fn client_supplied_text_is_cut_to_the_limit_on_a_char_boundary() {
        let huge = "Mozilla/5.0 ".repeat(33_000); // ~390 KB
        let ip = "é".repeat(400); // 800 bytes of 2-byte characters
        let row = Connection::new(
            "a=",
            0,
            Some(ip.clone()),
            Some(huge.clone()),
            Buckets::SEED,
            60,
        );
        let agent = row.user_agent.unwrap();
        assert_eq!(agent.len(), MAX_CLIENT_TEXT_BYTES);
        assert!(huge.starts_with(&agent));
        let source = row.source_ip.unwrap();
        assert_eq!(
            source.len(),
            MAX_CLIENT_TEXT_BYTES,
            "256 whole 2-byte characters"
        );
        assert!(ip.starts_with(&source));

        let odd = format!("x{}", "é".repeat(300));
        let cut = clip(odd.clone());
        assert_eq!(
            cut.len(),
            MAX_CLIENT_TEXT_BYTES - 1,
            "never half a character"
        );
        assert!(odd.starts_with(&cut));
        assert_eq!(clip("short".into()), "short");
    }

    #[test]
    fn absent_identity_fields_are_not_written() {
        let connection = Connection::new("a=", 0, None, None, Buckets::new(4).unwrap(), 60);
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&connection).unwrap();
        for absent in ["sourceIp", "userAgent", "subject", "allowedEntityTypes"] {
            assert!(!item.contains_key(absent), "{absent}");
        }
        assert_eq!(
            item["connected"],
            AttributeValue::S(Buckets::new(4).unwrap().partition_key("a="))
        );
        assert_eq!(item["ttl"], AttributeValue::N("60".into()));
    }
}
