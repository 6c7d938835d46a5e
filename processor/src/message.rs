//! Updates to METRICS_UPDATE messages of at most `max_bytes` each, and the broadcast id.
//!
//! ```json
//! {"type":"METRICS_UPDATE","id":"b-…","part":1,"parts":2,"stream":"2024-11-04T00:00:00.000","updates":[…]}
//! ```
//! The seed's message with additive `id`/`part`/`parts`: clients drop a repeated `id`+`part`;
//! and `stream`, the label of the stream the updates came from: sequences (and so ids) start
//! over in a new stream, so a client that sees another label resets what it remembered.

use aws_lambda_events::dynamodb::EventRecord;
use platform::hash::stable_hash;
use platform::pack::pack;
use serde_json::value::RawValue;

use crate::update::Update;

/// API Gateway's hard limit on a WebSocket message.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// The parts of one broadcast, in order.
#[derive(Debug, Clone)]
pub struct Parts {
    pub broadcast_id: String,
    /// Whether the broadcast is a round (`BROADCAST_MODE=rounds`, its id the round's): its
    /// jobs then carry their place in it, to be counted done.
    pub in_round: bool,
    pub messages: Vec<Box<RawValue>>,
    /// Keys of the updates that were too large alone and were sent truncated.
    pub truncated: Vec<Box<RawValue>>,
}

/// A broadcast id derived from the batch alone: a retried batch (same records from the same
/// stream) gets the same id, so clients drop what they already have; a different batch, a
/// different id. `stream` is the stream's ARN: sequence numbers start over in a new stream
/// (a re-enabled stream, a fresh local stack), and the same sequences there must not repeat
/// an id that clients already dropped as seen.
pub fn broadcast_id<'a>(
    stream: Option<&str>,
    sequences: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut joined = Vec::new();
    joined.extend_from_slice(stream.unwrap_or_default().as_bytes());
    joined.push(b'\n'); // never in an ARN or a sequence number
    for sequence in sequences {
        joined.extend_from_slice(sequence.as_bytes());
        joined.push(b',');
    }
    format!("b-{:016x}", stable_hash(&joined))
}

/// The ARN of the stream a batch came from (every record of a batch has the same one).
pub fn stream_arn(records: &[EventRecord]) -> Option<&str> {
    records.iter().find_map(|r| r.event_source_arn.as_deref())
}

/// The label at the end of a stream ARN (`arn:…:table/<name>/stream/<label>`), an ISO 8601
/// timestamp that tells a table's successive streams apart: clients get it, not the ARN,
/// which would show them the account, region and table.
pub fn stream_label(arn: &str) -> Option<&str> {
    arn.rsplit_once("/stream/")
        .map(|(_, label)| label)
        .filter(|label| !label.is_empty())
}

/// Splits updates, in order, into as few messages of at most `max_bytes` as a greedy fill
/// gives, each carrying `stream` (a stream label) when there is one. An update too large for a
/// message of its own is reduced to its keys (`keys`, beside each update) plus
/// `"truncated": true`.
pub fn split(
    broadcast_id: &str,
    stream: Option<&str>,
    updates: &[(Update, Box<RawValue>)],
    max_bytes: usize,
) -> Parts {
    let head = Head::new(broadcast_id, stream);
    // The envelope's size with `part`/`parts` at the widest they can be.
    let width = digits(updates.len().max(1));
    let overhead = head
        .envelope(&"9".repeat(width), &"9".repeat(width), "")
        .len();
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
            let text = head.envelope(&(i + 1).to_string(), &parts, &group.join(","));
            RawValue::from_string(text).expect("valid JSON by construction")
        })
        .collect();
    Parts {
        broadcast_id: broadcast_id.to_owned(),
        in_round: false,
        messages,
        truncated,
    }
}

/// The update as JSON, or its keys marked `"truncated": true` when it alone exceeds `room`.
fn encode_within(
    update: &Update,
    keys: &RawValue,
    room: usize,
    truncated: &mut Vec<Box<RawValue>>,
) -> String {
    let text = serde_json::to_string(update).expect("updates serialize");
    if text.len() <= room {
        return text;
    }
    tracing::warn!(keys = %keys, size = text.len(), limit = room, "update too large for one message; sending its keys only");
    truncated.push(keys.to_owned());
    serde_json::to_string(&update.truncated(keys)).expect("updates serialize")
}

/// What every part of a broadcast carries before its updates, as JSON members.
struct Head {
    id: String,
    stream: Option<String>,
}

impl Head {
    fn new(id: &str, stream: Option<&str>) -> Self {
        let quote = |s: &str| serde_json::to_string(s).expect("strings serialize");
        Self {
            id: quote(id),
            stream: stream.map(quote),
        }
    }

    fn envelope(&self, part: &str, parts: &str, updates: &str) -> String {
        let id = &self.id;
        let stream = match &self.stream {
            Some(label) => format!(r#","stream":{label}"#),
            None => String::new(),
        };
        format!(
            r#"{{"type":"METRICS_UPDATE","id":{id},"part":{part},"parts":{parts}{stream},"updates":[{updates}]}}"#
        )
    }
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::tests::{record, seed_image};
    use crate::update::{EventType, convert};
    use serde_json::value::to_raw_value;
    use serde_json::{Value, json};

    const LABEL: &str = "2024-11-04T00:00:00.000";
    const ARN: &str =
        "arn:aws:dynamodb:us-east-1:123456789012:table/metrics/stream/2024-11-04T00:00:00.000";

    fn raw(value: &Value) -> Box<RawValue> {
        to_raw_value(value).unwrap()
    }

    fn updates(n: usize, pad: usize) -> Vec<(Update, Box<RawValue>)> {
        (0..n)
            .map(|i| {
                let update = Update {
                    event_type: EventType::Modify,
                    timestamp: 1_699_123_456_789,
                    sequence: Some(format!("{i:021}")),
                    data: raw(
                        &json!({"entity_id": format!("e{i}"), "metric_value": i, "pad": "x".repeat(pad)}),
                    ),
                };
                (update, raw(&json!({"entity_id": format!("e{i}")})))
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
        let parts = split("b-1", Some(LABEL), &updates, MAX_MESSAGE_BYTES);
        assert_eq!(
            parsed(&parts),
            [json!({
                "type": "METRICS_UPDATE", "id": "b-1", "part": 1, "parts": 1,
                "stream": "2024-11-04T00:00:00.000",
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
            let parts = split("b-x", Some(LABEL), &input, limit);
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
                assert_eq!(m["stream"], LABEL);
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
        let parts = split("b", Some(LABEL), &updates(100, 3000), MAX_MESSAGE_BYTES);
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
        let parts = split("b", None, &input, MAX_MESSAGE_BYTES);
        let messages = parsed(&parts);
        let truncated: Vec<&str> = parts.truncated.iter().map(|k| k.get()).collect();
        assert_eq!(truncated, [r#"{"entity_id":"e1"}"#]);
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
        let a = broadcast_id(Some(ARN), ["100", "101", "102"]);
        assert_eq!(a, broadcast_id(Some(ARN), ["100", "101", "102"]));
        assert_ne!(a, broadcast_id(Some(ARN), ["100", "101"]));
        assert_ne!(
            broadcast_id(Some(ARN), ["1", "23"]),
            broadcast_id(Some(ARN), ["12", "3"])
        );
        assert!(a.starts_with("b-") && a.len() == 18);
    }

    #[test]
    fn the_same_sequences_in_another_stream_get_another_id() {
        let records = |arn: &str| {
            (0..3)
                .map(|i| {
                    let mut r = record("MODIFY", &format!("{i:021}"), seed_image(), Value::Null);
                    r.event_source_arn = Some(arn.to_owned());
                    r
                })
                .collect::<Vec<_>>()
        };
        let id_of = |records: &[EventRecord]| {
            let sequences = records
                .iter()
                .filter_map(|r| r.change.sequence_number.as_deref());
            broadcast_id(stream_arn(records), sequences)
        };
        let first = records(ARN);
        let fresh = records(&ARN.replace("2024-11-04T00:00:00.000", "2024-11-05T09:30:00.123"));
        let other_table = records(&ARN.replace("table/metrics", "table/metrics-b"));
        assert_eq!(id_of(&first), id_of(&first.clone()), "a retried batch");
        assert_ne!(id_of(&first), id_of(&fresh), "a re-enabled stream");
        assert_ne!(id_of(&first), id_of(&other_table), "another table's stream");
        let sequences: Vec<String> = (0..3).map(|i| format!("{i:021}")).collect();
        let without_stream = broadcast_id(None, sequences.iter().map(String::as_str));
        assert_ne!(
            id_of(&first),
            without_stream,
            "a batch without a stream ARN"
        );
    }

    #[test]
    fn the_stream_label_is_the_arn_tail() {
        assert_eq!(stream_label(ARN), Some(LABEL));
        assert_eq!(
            stream_label("arn:aws:dynamodb:us-east-1:1:table/t/stream/"),
            None
        );
        assert_eq!(stream_label("arn:aws:sqs:us-east-1:1:queue"), None);
        assert_eq!(stream_arn(&[]), None);
        let mut r = record("MODIFY", "1", seed_image(), Value::Null);
        assert_eq!(stream_arn(std::slice::from_ref(&r)), Some(ARN));
        r.event_source_arn = None;
        assert_eq!(stream_arn(&[r]), None);
    }

    #[test]
    fn without_a_stream_label_the_message_has_no_stream_member() {
        let parts = split("b-2", None, &updates(2, 1), MAX_MESSAGE_BYTES);
        let text = parts.messages[0].get();
        assert!(
            text.starts_with(
                r#"{"type":"METRICS_UPDATE","id":"b-2","part":1,"parts":1,"updates":["#
            ),
            "{text}"
        );
        let parts = split("b-2", Some("a\"b"), &updates(2, 1), MAX_MESSAGE_BYTES);
        assert_eq!(
            parsed(&parts)[0]["stream"],
            "a\"b",
            "the label is a JSON string"
        );
    }

    #[test]
    fn numbers_go_out_with_every_digit() {
        let image = json!({
            "entity_id": {"S": "e"},
            "big": {"N": "12345678901234567890123456789012345678"},
            "ns": {"NS": ["-1.2345678901234567890123456789012345678E-100"]}
        });
        let (updates, _) = convert(&[record("MODIFY", "1", image, Value::Null)]);
        let parts = split("b-3", Some(LABEL), &updates, MAX_MESSAGE_BYTES);
        let text = parts.messages[0].get();
        assert!(
            text.contains(r#""big":12345678901234567890123456789012345678,"#),
            "{text}"
        );
        assert!(
            text.contains(r#""ns":[-1.2345678901234567890123456789012345678E-100]"#),
            "{text}"
        );
    }
}
