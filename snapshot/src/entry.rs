//! The state table's entity changes as snapshot entries: what each says the entity is, and
//! the item a SNAPSHOT carries for it.
//!
//! An item is the entity's latest update as METRICS_UPDATE carried it, without `eventType`:
//! `{"sequence":"…","timestamp":…,"data":{…}}`, `sequence` and `data` verbatim (numbers keep
//! every digit). A client keeps the newer of an item and an update by `sequence`, in either
//! arrival order. Entities whose latest change is a REMOVE are left out.

use std::collections::BTreeMap;

use registry::{EntityRef, Interest};
use rounds::Change;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One entity, as snapshots send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `data.entity_type`, when it is a string.
    pub entity_type: Option<String>,
    /// `data.entity_id`, when it is a string.
    pub entity_id: Option<String>,
    /// The item's JSON text.
    pub item: String,
    /// The item reduced to the entity's keys plus `"truncated": true`, for an item too large
    /// for a part of its own (as METRICS_UPDATE sends an update too large).
    pub truncated: String,
}

/// What every snapshot is cut from: one read of the state table's entities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The entities whose latest change is not a REMOVE, in stream order.
    pub entries: Vec<Entry>,
    /// The label of the stream of the most recent change (REMOVEs included): the stream the
    /// updates a client receives now come from.
    pub stream: Option<String>,
    /// Changes that could not be read (each logged), left out.
    pub unreadable: usize,
}

/// The update as the state table keeps it (`Change::update`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored<'a> {
    event_type: String,
    #[serde(default, borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(default)]
    sequence: Option<String>,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Serialize)]
struct Item<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<&'a RawValue>,
    data: &'a RawValue,
}

impl Entry {
    /// The entry of `change`; `Ok(None)` for a REMOVE (the entity is gone).
    pub fn of(change: &Change) -> Result<Option<Self>, serde_json::Error> {
        let stored: Stored<'_> = serde_json::from_str(&change.update)?;
        if stored.event_type == "REMOVE" {
            return Ok(None);
        }
        let entity = EntityRef::of(stored.data.get());
        let item = |data: &RawValue| {
            serde_json::to_string(&Item {
                sequence: stored.sequence.as_deref(),
                timestamp: stored.timestamp,
                data,
            })
        };
        Ok(Some(Self {
            entity_type: entity.entity_type,
            entity_id: entity.entity_id,
            item: item(stored.data)?,
            truncated: item(&truncated_data(&change.entity))?,
        }))
    }
}

/// The entity's keys (a JSON object) plus `"truncated": true`.
fn truncated_data(keys: &str) -> Box<RawValue> {
    let mut members: BTreeMap<String, Box<RawValue>> =
        serde_json::from_str(keys).unwrap_or_default();
    members.insert(
        "truncated".to_owned(),
        RawValue::from_string("true".to_owned()).expect("valid JSON"),
    );
    serde_json::value::to_raw_value(&members).expect("raw values serialize")
}

impl State {
    /// The state of `changes` (the state table's entity items, in stream order).
    pub fn from_changes(changes: &[Change]) -> Self {
        let mut state = Self {
            stream: changes
                .iter()
                .filter(|c| c.stream.is_some())
                .max_by_key(|c| c.changed_at)
                .and_then(|c| c.stream.clone()),
            ..Self::default()
        };
        for change in changes {
            match Entry::of(change) {
                Ok(Some(entry)) => state.entries.push(entry),
                Ok(None) => {}
                Err(error) => {
                    state.unreadable += 1;
                    tracing::error!(entity = %change.entity, %error, "state item unreadable; left out of snapshots");
                }
            }
        }
        state
    }

    /// The entries `interest` matches, in stream order.
    pub fn matching<'a>(&'a self, interest: &'a Interest) -> impl Iterator<Item = &'a Entry> {
        self.entries
            .iter()
            .filter(|e| interest.matches(e.entity_type.as_deref(), e.entity_id.as_deref()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use registry::Filter;
    use serde_json::{Value, json};

    /// A change as the processor records it: `entity_id` is the key.
    pub(crate) fn change(id: &str, kind: &str, sequence: u64, event: &str) -> Change {
        let data = json!({"entity_id": id, "entity_type": kind, "metric_value": sequence});
        Change {
            entity: json!({"entity_id": id}).to_string(),
            order: Change::order_of(&sequence.to_string()),
            changed_at: 1_700_000_000_000 + sequence as i64,
            update: json!({"eventType": event, "timestamp": 1_700_000_000_000_i64,
                           "sequence": sequence.to_string(), "data": data})
            .to_string(),
            stream: Some("2026-01-01T00:00:00.000".to_owned()),
        }
    }

    fn strings(values: &[&str]) -> Option<Vec<String>> {
        Some(values.iter().map(|v| (*v).to_owned()).collect())
    }

    fn ids<'a>(entries: impl Iterator<Item = &'a Entry>) -> Vec<&'a str> {
        entries.filter_map(|e| e.entity_id.as_deref()).collect()
    }

    #[test]
    fn an_item_is_the_update_without_its_event_type_with_every_digit() {
        let mut c = change("e1", "stream", 7, "MODIFY");
        c.update = r#"{"eventType":"MODIFY","timestamp":1700000000000,"sequence":"000700","data":{"entity_id":"e1","big":12345678901234567890123456789012345678,"x":1E+3}}"#.to_owned();
        let entry = Entry::of(&c).unwrap().unwrap();
        assert_eq!(
            entry.item,
            r#"{"sequence":"000700","timestamp":1700000000000,"data":{"entity_id":"e1","big":12345678901234567890123456789012345678,"x":1E+3}}"#
        );
        assert_eq!(entry.entity_id.as_deref(), Some("e1"));
        assert_eq!(entry.entity_type, None);
        let truncated: Value = serde_json::from_str(&entry.truncated).unwrap();
        assert_eq!(
            truncated,
            json!({"sequence": "000700", "timestamp": 1_700_000_000_000_i64,
                   "data": {"entity_id": "e1", "truncated": true}})
        );
    }

    #[test]
    fn removed_entities_are_left_out_and_unreadable_items_counted() {
        let mut bad = change("e9", "disk", 9, "MODIFY");
        bad.update = "not json".to_owned();
        let state = State::from_changes(&[
            change("e1", "stream", 1, "INSERT"),
            change("e2", "stream", 2, "REMOVE"),
            change("e3", "disk", 3, "MODIFY"),
            bad,
        ]);
        assert_eq!(ids(state.entries.iter()), ["e1", "e3"]);
        assert_eq!(state.unreadable, 1);
    }

    #[test]
    fn the_stream_is_the_most_recent_changes_removes_included() {
        let mut old = change("e1", "stream", 1, "MODIFY");
        old.stream = Some("old".to_owned());
        let mut new = change("e2", "stream", 2, "REMOVE");
        new.stream = Some("new".to_owned());
        let state = State::from_changes(&[old.clone(), new]);
        assert_eq!(state.stream.as_deref(), Some("new"));
        old.stream = None;
        assert_eq!(State::from_changes(&[old]).stream, None);
    }

    #[test]
    fn the_interest_decides_which_entries_a_snapshot_has() {
        let state = State::from_changes(&[
            change("s1", "stream", 1, "INSERT"),
            change("d1", "disk", 2, "INSERT"),
            change("c1", "cpu", 3, "MODIFY"),
            change("d2", "disk", 4, "MODIFY"),
        ]);
        let interest = |types: &[&str], entity_ids: &[&str], allowed: Option<&[&str]>| Interest {
            filter: Filter::new(
                (!types.is_empty()).then(|| strings(types).unwrap()),
                (!entity_ids.is_empty()).then(|| strings(entity_ids).unwrap()),
            )
            .unwrap(),
            allowed_types: allowed.and_then(strings),
        };
        let all = interest(&[], &[], None);
        assert_eq!(ids(state.matching(&all)), ["s1", "d1", "c1", "d2"]);
        let disks = interest(&["disk"], &[], None);
        assert_eq!(ids(state.matching(&disks)), ["d1", "d2"]);
        let disks_or_c1 = interest(&["disk"], &["c1"], None);
        assert_eq!(ids(state.matching(&disks_or_c1)), ["d1", "c1", "d2"]);
        let token_streams = interest(&[], &[], Some(&["stream"]));
        assert_eq!(ids(state.matching(&token_streams)), ["s1"]);
        let ids_beyond_token = interest(&[], &["c1", "s1"], Some(&["stream"]));
        assert_eq!(ids(state.matching(&ids_beyond_token)), ["s1"]);
        let nothing = interest(&["gpu"], &[], None);
        assert_eq!(state.matching(&nothing).count(), 0);
    }
}
