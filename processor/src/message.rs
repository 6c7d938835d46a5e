//! Updates to METRICS_UPDATE messages of at most `max_bytes` each, and the broadcast id.
//!
//! ```json
//! {"type":"METRICS_UPDATE","id":"b-…","part":1,"parts":2,"updates":[…]}
//! ```
//! The seed's message with additive `id`/`part`/`parts`: clients drop a repeated `id`+`part`.

use platform::hash::stable_hash;
use platform::pack::pack;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::update::Update;

/// API Gateway's hard limit on a WebSocket message.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// The parts of one broadcast, in order.
#[derive(Debug, Clone)]
pub struct Parts {
    pub broadcast_id: String,
    pub messages: Vec<Box<RawValue>>,
    /// Keys of the updates that were too large alone and were sent truncated.
    pub truncated: Vec<Value>,
}

/// A broadcast id derived from the batch alone: a retried batch (same records) gets the same
/// id, so clients drop what they already have; a different batch, a different id.
pub fn broadcast_id<'a>(sequences: impl IntoIterator<Item = &'a str>) -> String {
    let mut joined = Vec::new();
    for sequence in sequences {
        joined.extend_from_slice(sequence.as_bytes());
        joined.push(b',');
    }
    format!("b-{:016x}", stable_hash(&joined))
}

/// Splits updates, in order, into as few messages of at most `max_bytes` as a greedy fill
/// gives. An update too large for a message of its own is reduced to its keys (`keys`, the
/// same length as `updates`) plus `"truncated": true`.
pub fn split(broadcast_id: &str, updates: &[(Update, Value)], max_bytes: usize) -> Parts {
    // The envelope's size with `part`/`parts` at the widest they can be.
    let width = digits(updates.len().max(1));
    let overhead = envelope(broadcast_id, &"9".repeat(width), &"9".repeat(width), "").len();
    let room = max_bytes.saturating_sub(overhead);

    let mut truncated = Vec::new();
    let texts: Vec<String> = updates
        .iter()
        .map(|(update, keys)| encode_within(update, keys, room, &mut truncated))
        .collect();
    // Each update costs its bytes and a separating comma; a part's last update writes no comma,
    // hence the one byte more of room.
    let groups = pack(texts, room + 1, usize::MAX, |text| text.len() + 1);
    let parts = groups.len().to_string();
    let messages = groups
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let text = envelope(broadcast_id, &(i + 1).to_string(), &parts, &group.join(","));
            RawValue::from_string(text).expect("valid JSON by construction")
        })
        .collect();
    Parts {
        broadcast_id: broadcast_id.to_owned(),
        messages,
        truncated,
    }
}

/// The update as JSON, or its keys marked `"truncated": true` when it alone exceeds `room`.
fn encode_within(update: &Update, keys: &Value, room: usize, truncated: &mut Vec<Value>) -> String {
    let text = serde_json::to_string(update).expect("updates serialize");
    if text.len() <= room {
        return text;
    }
    tracing::warn!(keys = %keys, size = text.len(), limit = room, "update too large for one message; sending its keys only");
    truncated.push(keys.clone());
    serde_json::to_string(&update.truncated(keys.clone())).expect("updates serialize")
}

fn envelope(id: &str, part: &str, parts: &str, updates: &str) -> String {
    let id = serde_json::to_string(id).expect("strings serialize");
    format!(
        r#"{{"type":"METRICS_UPDATE","id":{id},"part":{part},"parts":{parts},"updates":[{updates}]}}"#
    )
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::tests::{record, seed_image};
    use crate::update::{EventType, convert};
    use serde_json::json;

    fn updates(n: usize, pad: usize) -> Vec<(Update, Value)> {
        (0..n)
            .map(|i| {
                let update = Update {
                    event_type: EventType::Modify,
                    timestamp: 1_699_123_456_789,
                    sequence: Some(format!("{i:021}")),
                    data: json!({"entity_id": format!("e{i}"), "metric_value": i, "pad": "x".repeat(pad)}),
                };
                (update, json!({"entity_id": format!("e{i}")}))
            })
            .collect()
    }

    fn parsed(parts: &Parts) -> Vec<Value> {
        parts
            .messages
            .iter()
            .map(|m| serde_json::from_str(m.get()).unwrap())
            .collect()
    }

    #[test]
    fn one_small_batch_is_one_seed_shaped_message() {
        let (updates, _) = convert(&[record("INSERT", "100", seed_image(), Value::Null)]);
        let parts = split("b-1", &updates, MAX_MESSAGE_BYTES);
        assert_eq!(
            parsed(&parts),
            [json!({
                "type": "METRICS_UPDATE", "id": "b-1", "part": 1, "parts": 1,
                "updates": [{
                    "eventType": "INSERT", "timestamp": 1_699_123_456_000_i64, "sequence": "100",
                    "data": {"entity_id": "stream-001", "entity_type": "stream",
                             "metric_value": 1234, "timestamp": "2024-11-04T12:34:56Z"}
                }]
            })]
        );
    }

    #[test]
    fn splitting_keeps_every_message_under_the_limit_and_every_update_once_in_order() {
        for (n, pad, limit) in [
            (100, 3000, MAX_MESSAGE_BYTES),
            (500, 50, 4096),
            (37, 900, 2048),
            (1, 10, 300),
        ] {
            let input = updates(n, pad);
            let parts = split("b-x", &input, limit);
            let messages = parsed(&parts);
            assert!(
                parts.messages.iter().all(|m| m.get().len() <= limit),
                "n={n} limit={limit}"
            );
            let count = messages.len();
            let mut seen = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                assert_eq!(m["part"], i + 1);
                assert_eq!(m["parts"], count);
                assert_eq!(m["id"], "b-x");
                for u in m["updates"].as_array().unwrap() {
                    seen.push(u["sequence"].as_str().unwrap().to_owned());
                }
            }
            let expected: Vec<String> = input
                .iter()
                .map(|(u, _)| u.sequence.clone().unwrap())
                .collect();
            assert_eq!(seen, expected, "n={n} limit={limit}");
            assert!(parts.truncated.is_empty());
        }
        let parts = split("b", &updates(100, 3000), MAX_MESSAGE_BYTES);
        assert_eq!(
            parts.messages.len(),
            3,
            "~300 KB of updates in 128 KB parts"
        );
    }

    #[test]
    fn a_record_too_large_alone_is_sent_as_its_keys() {
        let mut input = updates(3, 10);
        input[1] = updates(2, 200_000).pop().unwrap();
        let parts = split("b", &input, MAX_MESSAGE_BYTES);
        let messages = parsed(&parts);
        assert_eq!(parts.truncated, [json!({"entity_id": "e1"})]);
        let all: Vec<&Value> = messages
            .iter()
            .flat_map(|m| m["updates"].as_array().unwrap())
            .collect();
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[1]["data"],
            json!({"entity_id": "e1", "truncated": true})
        );
        assert_eq!(all[1]["eventType"], "MODIFY");
        assert!(
            parts
                .messages
                .iter()
                .all(|m| m.get().len() <= MAX_MESSAGE_BYTES)
        );
    }

    #[test]
    fn the_broadcast_id_is_stable_across_retries_and_differs_between_batches() {
        let a = broadcast_id(["100", "101", "102"]);
        assert_eq!(a, broadcast_id(["100", "101", "102"]));
        assert_ne!(a, broadcast_id(["100", "101"]));
        assert_ne!(broadcast_id(["1", "23"]), broadcast_id(["12", "3"]));
        assert!(a.starts_with("b-") && a.len() == 18);
    }
}
