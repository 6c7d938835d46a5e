//! A change of one entity, and the merge that keeps the latest per entity.
//!
//! The latest change by stream order wins whatever it is: a REMOVE after an INSERT stays a
//! REMOVE, an INSERT after a REMOVE is an INSERT, and a MODIFY carries the latest image. A
//! dashboard that applies the merged change ends in the same state as one that applied every
//! change in order.

use std::collections::BTreeMap;

/// Width the stream's sequence numbers are padded to, so that their order is the order of
/// the strings (DynamoDB compares strings byte by byte; sequence numbers are decimal and
/// their length may grow).
const ORDER_WIDTH: usize = 40;

/// One entity's change, as the state table keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The item's keys as JSON text (members in name order): the entity's identity.
    pub entity: String,
    /// The record's sequence number, padded: comparable as a string.
    pub order: String,
    /// Epoch ms of the change (the stream record's creation time).
    pub changed_at: i64,
    /// The update exactly as clients receive it inside METRICS_UPDATE.
    pub update: String,
    /// The label of the stream the change came from.
    pub stream: Option<String>,
}

impl Change {
    /// The sortable form of a stream sequence number.
    pub fn order_of(sequence: &str) -> String {
        format!("{sequence:0>ORDER_WIDTH$}")
    }

    /// Whether `self` is at least as new as `other` (a repeat of the same record counts as
    /// new: writing it again changes nothing).
    pub fn supersedes(&self, other: &Change) -> bool {
        self.order >= other.order
    }
}

/// The latest change of each entity among `changes`, in stream order.
pub fn latest(changes: impl IntoIterator<Item = Change>) -> Vec<Change> {
    let mut by_entity: BTreeMap<String, Change> = BTreeMap::new();
    for change in changes {
        match by_entity.get(&change.entity) {
            Some(kept) if !change.supersedes(kept) => {}
            _ => {
                by_entity.insert(change.entity.clone(), change);
            }
        }
    }
    let mut merged: Vec<Change> = by_entity.into_values().collect();
    merged.sort_by(|a, b| a.order.cmp(&b.order));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(entity: &str, sequence: u64, event: &str) -> Change {
        Change {
            entity: format!(r#"{{"entity_id":"{entity}"}}"#),
            order: Change::order_of(&sequence.to_string()),
            changed_at: 0,
            update: format!(r#"{{"eventType":"{event}","sequence":"{sequence}"}}"#),
            stream: None,
        }
    }

    #[test]
    fn orders_compare_as_numbers() {
        assert!(Change::order_of("100") > Change::order_of("99"));
        assert_eq!(Change::order_of("7").len(), ORDER_WIDTH);
    }

    #[test]
    fn the_latest_change_wins_whatever_its_kind() {
        let merged = latest([
            change("a", 1, "INSERT"),
            change("a", 3, "REMOVE"),
            change("b", 2, "REMOVE"),
            change("b", 4, "INSERT"),
            change("c", 6, "MODIFY"),
            change("c", 5, "MODIFY"),
        ]);
        let kinds: Vec<_> = merged.iter().map(|c| c.update.as_str()).collect();
        assert_eq!(
            kinds,
            [
                r#"{"eventType":"REMOVE","sequence":"3"}"#,
                r#"{"eventType":"INSERT","sequence":"4"}"#,
                r#"{"eventType":"MODIFY","sequence":"6"}"#,
            ]
        );
    }

    #[test]
    fn a_repeated_record_is_kept_once() {
        let merged = latest([change("a", 1, "INSERT"), change("a", 1, "INSERT")]);
        assert_eq!(merged.len(), 1);
    }
}
