//! The heartbeat: the item the canary writes, and how it recognises that item's update among
//! everything else a dashboard connection receives.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

/// The metrics table's key (the seed's schema).
pub const METRICS_KEY: &str = "entity_id";
/// The heartbeat's `entity_type`, so that dashboards can tell it from real entities.
pub const ENTITY_TYPE: &str = "canary";

/// One run's write: a fixed entity whose `nonce` changes every run, so that only this run's
/// update counts (a late update of an earlier run carries an older nonce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub entity_id: String,
    pub nonce: String,
    /// When the write was sent (epoch ms); the item carries it as the seed's `timestamp`.
    pub sent_at_ms: i64,
    /// The previous run's latency, so that a dashboard shows the canary's latency as a metric
    /// of its entity.
    pub previous_latency_ms: Option<u64>,
}

impl Heartbeat {
    pub fn new(entity_id: &str, sent_at_ms: i64, previous_latency_ms: Option<u64>) -> Self {
        Self {
            entity_id: entity_id.to_owned(),
            nonce: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            sent_at_ms,
            previous_latency_ms,
        }
    }

    /// The item as PutItem takes it.
    pub fn item(&self) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            (
                METRICS_KEY.to_owned(),
                AttributeValue::S(self.entity_id.clone()),
            ),
            (
                "entity_type".to_owned(),
                AttributeValue::S(ENTITY_TYPE.to_owned()),
            ),
            ("nonce".to_owned(), AttributeValue::S(self.nonce.clone())),
        ]);
        if let Some(sent) = chrono::DateTime::from_timestamp_millis(self.sent_at_ms) {
            let timestamp = sent.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            item.insert("timestamp".to_owned(), AttributeValue::S(timestamp));
        }
        if let Some(latency) = self.previous_latency_ms {
            item.insert(
                "previous_latency_ms".to_owned(),
                AttributeValue::N(latency.to_string()),
            );
        }
        item
    }

    /// Whether one WebSocket text message carries this heartbeat's update. Anything else a
    /// connection receives (other entities' updates, other parts of a broadcast, an earlier
    /// run's heartbeat, replies such as PONG, text that is not JSON) is not it. A REMOVE
    /// carries the old image, not this write.
    pub fn arrived_in(&self, message: &str) -> bool {
        let Ok(message) = serde_json::from_str::<Value>(message) else {
            return false;
        };
        if message["type"] != "METRICS_UPDATE" {
            return false;
        }
        let Some(updates) = message["updates"].as_array() else {
            return false;
        };
        updates.iter().any(|update| {
            update["eventType"] != "REMOVE"
                && update["data"][METRICS_KEY] == self.entity_id.as_str()
                && update["data"]["nonce"] == self.nonce.as_str()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            entity_id: "canary-heartbeat".into(),
            nonce: "n-2".into(),
            sent_at_ms: 1_764_104_603_000,
            previous_latency_ms: Some(812),
        }
    }

    fn update(entity_id: &str, nonce: Option<&str>, event_type: &str) -> Value {
        let mut data = json!({"entity_id": entity_id, "entity_type": "canary"});
        if let Some(nonce) = nonce {
            data["nonce"] = json!(nonce);
        }
        json!({"eventType": event_type, "timestamp": 1, "sequence": "1", "data": data})
    }

    fn message(part: u64, parts: u64, updates: Vec<Value>) -> String {
        json!({"type": "METRICS_UPDATE", "id": "b-1", "part": part, "parts": parts,
               "stream": "2026-01-01T00:00:00.000", "updates": updates})
        .to_string()
    }

    #[test]
    fn the_item_is_the_seeds_shape_with_the_nonce() {
        let item = heartbeat().item();
        assert_eq!(
            item[METRICS_KEY],
            AttributeValue::S("canary-heartbeat".into())
        );
        assert_eq!(item["entity_type"], AttributeValue::S("canary".into()));
        assert_eq!(item["nonce"], AttributeValue::S("n-2".into()));
        assert_eq!(
            item["timestamp"],
            AttributeValue::S("2025-11-25T21:03:23.000Z".into())
        );
        assert_eq!(item["previous_latency_ms"], AttributeValue::N("812".into()));
        let first = Heartbeat {
            previous_latency_ms: None,
            ..heartbeat()
        };
        assert!(!first.item().contains_key("previous_latency_ms"));
    }

    #[test]
    fn every_run_has_a_new_nonce() {
        let a = Heartbeat::new("canary-heartbeat", 1, None);
        let b = Heartbeat::new("canary-heartbeat", 1, None);
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.nonce.len(), 32);
    }

    #[test]
    fn its_own_update_is_found_in_whichever_part_carries_it() {
        let hb = heartbeat();
        let parts = [
            message(
                1,
                2,
                vec![
                    update("stream-001", None, "MODIFY"),
                    update("job-002", None, "INSERT"),
                ],
            ),
            message(
                2,
                2,
                vec![
                    update("queue-003", None, "MODIFY"),
                    update("canary-heartbeat", Some("n-2"), "MODIFY"),
                ],
            ),
        ];
        assert!(!hb.arrived_in(&parts[0]), "other entities only");
        assert!(hb.arrived_in(&parts[1]));
        let first_write = message(
            1,
            1,
            vec![update("canary-heartbeat", Some("n-2"), "INSERT")],
        );
        assert!(hb.arrived_in(&first_write), "the table's first heartbeat");
    }

    #[test]
    fn anything_else_is_not_it() {
        let hb = heartbeat();
        let not_it = [
            message(1, 1, vec![update("canary-heartbeat", Some("n-1"), "MODIFY")]),
            message(1, 1, vec![update("canary-heartbeat", Some("n-2"), "REMOVE")]),
            message(1, 1, vec![update("canary-heartbeat", None, "MODIFY")]),
            message(1, 1, vec![update("other-entity", Some("n-2"), "MODIFY")]),
            message(1, 1, vec![]),
            json!({"type": "METRICS_UPDATE", "updates": {"data": {}}}).to_string(),
            json!({"type": "SNAPSHOT", "items": [update("canary-heartbeat", Some("n-2"), "MODIFY")["data"]]}).to_string(),
            json!({"type": "PONG"}).to_string(),
            json!({"type": "ERROR", "message": "n-2"}).to_string(),
            // A record too large for a message arrives as its keys only.
            json!({"type": "METRICS_UPDATE", "updates": [{"eventType": "MODIFY",
                   "data": {"entity_id": "canary-heartbeat", "truncated": true}}]})
            .to_string(),
            "canary-heartbeat n-2".to_owned(),
            String::new(),
        ];
        for text in not_it {
            assert!(!hb.arrived_in(&text), "{text}");
        }
    }
}
