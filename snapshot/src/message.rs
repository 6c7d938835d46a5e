//! Snapshot entries to SNAPSHOT messages of at most `max_bytes` each:
//!
//! ```json
//! {"type":"SNAPSHOT","id":"s-5f0c…","part":1,"parts":2,"stream":"2026-11-25T21:00:00.000",
//!  "items":[{"sequence":"4000000000000000000001","timestamp":1764104603000,"data":{…}}]}
//! ```
//! `id` + `part` + `parts` as in METRICS_UPDATE (a client knows when it has every part);
//! `stream` when known. Items in stream order. A snapshot that matches nothing is one part
//! with `"items":[]`, so that the client knows it is complete.

use platform::pack::pack;

use crate::entry::Entry;

/// API Gateway's hard limit on a WebSocket message.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// One snapshot's messages, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub id: String,
    pub messages: Vec<String>,
    /// Items sent (each entry once).
    pub items: usize,
    /// Items too large alone, sent as their keys marked `"truncated": true`.
    pub truncated: usize,
}

/// A new snapshot id: `s-` and 16 hex digits, random (every snapshot is new to the client).
pub fn snapshot_id() -> String {
    format!("s-{:016x}", rand::random::<u64>())
}

/// Splits `entries`, in order, into as few messages of at most `max_bytes` as a greedy fill
/// gives, each carrying `stream` when there is one.
pub fn split(id: &str, stream: Option<&str>, entries: &[&Entry], max_bytes: usize) -> Parts {
    let head = Head::new(id, stream);
    // The envelope with `part`/`parts` at their widest: never more parts than entries.
    let width = entries.len().max(1).to_string().len();
    let overhead = head
        .envelope(&"9".repeat(width), &"9".repeat(width), "")
        .len();
    let room = max_bytes.saturating_sub(overhead);
    let mut truncated = 0;
    let texts: Vec<&str> = entries
        .iter()
        .map(|entry| {
            if entry.item.len() <= room {
                entry.item.as_str()
            } else {
                truncated += 1;
                tracing::warn!(
                    size = entry.item.len(),
                    limit = room,
                    entity_id = entry.entity_id.as_deref().unwrap_or(""),
                    "snapshot item too large for one message; sending its keys only"
                );
                entry.truncated.as_str()
            }
        })
        .collect();
    // Each item costs its bytes and a separating comma; a part's last item writes no comma,
    // hence the one byte more of room.
    let mut groups = pack(texts, room + 1, usize::MAX, |text| text.len() + 1);
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    let parts = groups.len().to_string();
    let messages = groups
        .iter()
        .enumerate()
        .map(|(i, group)| head.envelope(&(i + 1).to_string(), &parts, &group.join(",")))
        .collect();
    Parts {
        id: id.to_owned(),
        messages,
        items: entries.len(),
        truncated,
    }
}

/// What every part carries before its items, as JSON members.
struct Head {
    id: String,
    stream: String,
}

impl Head {
    fn new(id: &str, stream: Option<&str>) -> Self {
        let quote = |s: &str| serde_json::to_string(s).expect("strings serialize");
        Self {
            id: quote(id),
            stream: stream
                .map(|label| format!(r#","stream":{}"#, quote(label)))
                .unwrap_or_default(),
        }
    }

    fn envelope(&self, part: &str, parts: &str, items: &str) -> String {
        let Self { id, stream } = self;
        format!(
            r#"{{"type":"SNAPSHOT","id":{id},"part":{part},"parts":{parts}{stream},"items":[{items}]}}"#
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::State;
    use crate::entry::tests::change;
    use rounds::Change;
    use serde_json::{Value, json};

    const LABEL: &str = "2026-01-01T00:00:00.000";

    /// `n` entities whose data is padded to about `pad` bytes (varying with `i`).
    fn state(n: usize, pad: impl Fn(usize) -> usize) -> State {
        let changes: Vec<Change> = (0..n)
            .map(|i| {
                let mut c = change(&format!("e{i:05}"), "stream", i as u64 + 1, "MODIFY");
                let data = json!({"entity_id": format!("e{i:05}"), "entity_type": "stream",
                                  "pad": "x".repeat(pad(i))});
                c.update =
                    json!({"eventType": "MODIFY", "timestamp": 1, "sequence": format!("{}", i + 1),
                                  "data": data})
                    .to_string();
                c
            })
            .collect();
        State::from_changes(&changes)
    }

    fn parsed(parts: &Parts) -> Vec<Value> {
        parts
            .messages
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect()
    }

    /// Every part at most `limit`, numbered 1..=N of N, with the id and stream, and every
    /// entry once, in order.
    fn check(parts: &Parts, entries: &[&Entry], limit: usize) {
        let messages = parsed(parts);
        let count = messages.len();
        let mut items = Vec::new();
        for (i, (text, m)) in parts.messages.iter().zip(&messages).enumerate() {
            assert!(
                text.len() <= limit,
                "part {} is {} bytes",
                i + 1,
                text.len()
            );
            assert_eq!(m["type"], "SNAPSHOT");
            assert_eq!(m["id"], parts.id.as_str());
            assert_eq!(m["part"], i + 1);
            assert_eq!(m["parts"], count);
            assert_eq!(m["stream"], LABEL);
            items.extend(m["items"].as_array().unwrap().iter().cloned());
        }
        let expected: Vec<Value> = entries
            .iter()
            .map(|e| serde_json::from_str(&e.item).unwrap())
            .collect();
        assert_eq!(items, expected);
    }

    #[test]
    fn parts_are_never_over_the_limit_complete_and_in_order() {
        for (n, limit) in [
            (2_000, MAX_MESSAGE_BYTES),
            (300, 4096),
            (37, 2048),
            (1, 300),
        ] {
            let state = state(n, |i| (i * 7919) % 400);
            let entries: Vec<&Entry> = state.entries.iter().collect();
            let parts = split("s-1", Some(LABEL), &entries, limit);
            check(&parts, &entries, limit);
            assert_eq!((parts.items, parts.truncated), (n, 0));
            // Greedy: a part ends only when the next item does not fit.
            for pair in parts.messages.windows(2) {
                let next: Value = serde_json::from_str(&pair[1]).unwrap();
                let first = next["items"][0].to_string();
                assert!(
                    pair[0].len() + first.len() + 1 > limit,
                    "n={n} limit={limit}"
                );
            }
        }
        let state = state(2_000, |_| 200);
        let entries: Vec<&Entry> = state.entries.iter().collect();
        let parts = split("s-2", Some(LABEL), &entries, MAX_MESSAGE_BYTES);
        let bytes: usize = entries.iter().map(|e| e.item.len() + 1).sum();
        assert_eq!(
            parts.messages.len(),
            bytes.div_ceil(MAX_MESSAGE_BYTES - 100),
            "{bytes} bytes of items in as many 128 KB parts as they need"
        );
    }

    #[test]
    fn nothing_matching_is_one_complete_part_without_items() {
        let parts = split("s-3", None, &[], MAX_MESSAGE_BYTES);
        assert_eq!(
            parts.messages,
            [r#"{"type":"SNAPSHOT","id":"s-3","part":1,"parts":1,"items":[]}"#]
        );
        assert_eq!(parts.items, 0);
    }

    #[test]
    fn an_item_too_large_alone_is_sent_as_its_keys() {
        let state = state(3, |i| if i == 1 { 10_000 } else { 10 });
        let entries: Vec<&Entry> = state.entries.iter().collect();
        let parts = split("s-4", Some(LABEL), &entries, 4096);
        assert_eq!(parts.truncated, 1);
        let items: Vec<Value> = parsed(&parts)
            .iter()
            .flat_map(|m| m["items"].as_array().unwrap().clone())
            .collect();
        assert_eq!(items.len(), 3);
        assert_eq!(
            items[1],
            json!({"sequence": "2", "timestamp": 1, "data": {"entity_id": "e00001", "truncated": true}})
        );
        assert!(parts.messages.iter().all(|m| m.len() <= 4096));
    }

    #[test]
    fn ids_are_new_each_time() {
        let (a, b) = (snapshot_id(), snapshot_id());
        assert_ne!(a, b);
        assert!(a.starts_with("s-") && a.len() == 18, "{a}");
        assert!(a[2..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
