//! A broadcast's editions: what each distinct interest (a subscription filter within a token's
//! entity types) receives of it, encoded once per interest, never per connection. A connection
//! whose interest matches none of the broadcast's updates gets nothing at all: never an empty
//! `updates`.

use std::collections::HashMap;
use std::sync::Arc;

use registry::{EntityRef, Interest};
use serde_json::value::RawValue;

use crate::message::{Parts, split};
use crate::update::Update;

/// The broadcast: its updates (each with its keys and the entity it is about), the parts
/// everyone-receives, and the filtered parts made so far.
pub struct Editions {
    pub everything: Arc<Parts>,
    updates: Vec<(Update, Box<RawValue>)>,
    entities: Vec<EntityRef>,
    stream: Option<String>,
    max_bytes: usize,
    filtered: HashMap<Interest, Option<Arc<Parts>>>,
}

impl Editions {
    /// The broadcast `id` of `updates` from `stream`, in parts of at most `max_bytes`.
    pub fn new(
        id: &str,
        stream: Option<&str>,
        updates: Vec<(Update, Box<RawValue>)>,
        max_bytes: usize,
        in_round: bool,
    ) -> Self {
        let mut everything = split(id, stream, &updates, max_bytes);
        everything.in_round = in_round;
        let entities = updates
            .iter()
            .map(|(update, _)| EntityRef::of(update.data.get()))
            .collect();
        Self {
            everything: Arc::new(everything),
            updates,
            entities,
            stream: stream.map(str::to_owned),
            max_bytes,
            filtered: HashMap::new(),
        }
    }

    /// The parts `interest` receives (`None`: everything); `None` when it matches no update.
    pub fn for_interest(&mut self, interest: Option<&Interest>) -> Option<Arc<Parts>> {
        let Some(interest) = interest.filter(|i| !i.is_everything()) else {
            return Some(self.everything.clone());
        };
        if let Some(parts) = self.filtered.get(interest) {
            return parts.clone();
        }
        let parts = self.filter(interest);
        self.filtered.insert(interest.clone(), parts.clone());
        parts
    }

    fn filter(&self, interest: &Interest) -> Option<Arc<Parts>> {
        let matching: Vec<(Update, Box<RawValue>)> = self
            .updates
            .iter()
            .zip(&self.entities)
            .filter(|(_, e)| interest.matches(e.entity_type.as_deref(), e.entity_id.as_deref()))
            .map(|(u, _)| u.clone())
            .collect();
        if matching.is_empty() {
            return None;
        }
        if matching.len() == self.updates.len() {
            return Some(self.everything.clone());
        }
        let everything = &self.everything;
        let mut parts = split(
            &everything.broadcast_id,
            self.stream.as_deref(),
            &matching,
            self.max_bytes,
        );
        parts.in_round = everything.in_round;
        Some(Arc::new(parts))
    }

    /// Distinct filtered editions made so far (for the report).
    pub fn filtered_count(&self) -> usize {
        self.filtered.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::EventType;
    use registry::Filter;
    use serde_json::{Value, json};

    fn update(entity_type: &str, entity_id: &str) -> (Update, Box<RawValue>) {
        let data = json!({"entity_id": entity_id, "entity_type": entity_type, "metric_value": 1});
        (
            Update {
                event_type: EventType::Modify,
                timestamp: 0,
                sequence: Some("1".into()),
                data: serde_json::value::to_raw_value(&data).unwrap(),
            },
            serde_json::value::to_raw_value(&json!({"entity_id": entity_id})).unwrap(),
        )
    }

    fn interest(types: &[&str], ids: &[&str]) -> Interest {
        let list = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
        Interest {
            filter: Filter::new(list(types), list(ids)).unwrap(),
            allowed_types: None,
        }
    }

    fn ids_in(parts: &Parts) -> Vec<String> {
        parts
            .messages
            .iter()
            .flat_map(|m| {
                let v: Value = serde_json::from_str(m.get()).unwrap();
                v["updates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|u| u["data"]["entity_id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn editions() -> Editions {
        let updates = vec![
            update("stream", "stream-1"),
            update("disk", "disk-1"),
            update("stream", "stream-2"),
        ];
        Editions::new("b-1", None, updates, 128 * 1024, true)
    }

    #[test]
    fn each_interest_gets_exactly_its_share_in_the_broadcast_order() {
        let mut editions = editions();
        let streams = editions
            .for_interest(Some(&interest(&["stream"], &[])))
            .unwrap();
        assert_eq!(ids_in(&streams), ["stream-1", "stream-2"]);
        assert!(streams.in_round);
        assert_eq!(streams.broadcast_id, "b-1");
        let by_id = editions
            .for_interest(Some(&interest(&[], &["disk-1"])))
            .unwrap();
        assert_eq!(ids_in(&by_id), ["disk-1"]);
        let all = editions.for_interest(None).unwrap();
        assert_eq!(ids_in(&all), ["stream-1", "disk-1", "stream-2"]);
    }

    #[test]
    fn an_interest_matching_nothing_gets_nothing_and_each_is_encoded_once() {
        let mut editions = editions();
        assert!(
            editions
                .for_interest(Some(&interest(&["cpu"], &[])))
                .is_none()
        );
        let first = editions
            .for_interest(Some(&interest(&["disk"], &[])))
            .unwrap();
        let again = editions
            .for_interest(Some(&interest(&["disk"], &[])))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(editions.filtered_count(), 2);
        // A filter that matches every update shares the everyone edition.
        let both = editions
            .for_interest(Some(&interest(&["disk", "stream"], &[])))
            .unwrap();
        assert!(Arc::ptr_eq(&both, &editions.everything));
    }

    #[test]
    fn a_token_limit_applies_with_the_filter() {
        let mut editions = editions();
        let limited = Interest {
            filter: Filter::EVERYTHING,
            allowed_types: Some(vec!["disk".into()]),
        };
        let parts = editions.for_interest(Some(&limited)).unwrap();
        assert_eq!(ids_in(&parts), ["disk-1"]);
    }
}
