//! What a connection receives: its subscription filter (the `subscribe` action, or
//! `?entityTypes=…&entityIds=…` at connect) within the entity types its token allows.
//!
//! An entity matches a filter when its `entity_type` is in `entityTypes` or its `entity_id` is
//! in `entityIds`; a filter with neither list matches everything (the seed's clients, which
//! send none, keep receiving every change). An empty list is the same as none.

use serde::{Deserialize, Serialize};

/// Values per list at most.
pub const MAX_FILTER_VALUES: usize = 100;
/// Characters per value at most.
pub const MAX_VALUE_CHARS: usize = 128;

/// A subscription filter, normalized (sorted, no repeats) so that equal filters compare and
/// hash equal: the processor encodes an update once per distinct filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{list} has {count} values; the limit is {MAX_FILTER_VALUES}")]
    TooMany { list: &'static str, count: usize },
    #[error("{list} has a value of {chars} characters; values are 1 to {MAX_VALUE_CHARS}")]
    BadValue { list: &'static str, chars: usize },
    #[error("{list} must be a list of strings")]
    NotStrings { list: &'static str },
    #[error("this connection may not receive entity types {0:?}")]
    NotAllowed(Vec<String>),
}

impl Filter {
    pub const EVERYTHING: Filter = Filter {
        entity_types: None,
        entity_ids: None,
    };

    /// A filter from its two optional lists, checked and normalized.
    pub fn new(
        entity_types: Option<Vec<String>>,
        entity_ids: Option<Vec<String>>,
    ) -> Result<Self, FilterError> {
        Ok(Self {
            entity_types: normalized("entityTypes", entity_types)?,
            entity_ids: normalized("entityIds", entity_ids)?,
        })
    }

    /// A filter from a `subscribe` message's members (`entityTypes`, `entityIds`), whose
    /// values must be lists of strings when present.
    pub fn from_message(message: &serde_json::Value) -> Result<Self, FilterError> {
        let list = |name: &'static str| -> Result<Option<Vec<String>>, FilterError> {
            match message.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(value) => serde_json::from_value(value.clone())
                    .map(Some)
                    .map_err(|_| FilterError::NotStrings { list: name }),
            }
        };
        Self::new(list("entityTypes")?, list("entityIds")?)
    }

    /// A filter from the connect URL's query string values, comma-separated.
    pub fn from_query(
        entity_types: Option<&str>,
        entity_ids: Option<&str>,
    ) -> Result<Self, FilterError> {
        let split = |text: Option<&str>| {
            text.map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
        };
        Self::new(split(entity_types), split(entity_ids))
    }

    pub fn is_everything(&self) -> bool {
        self.entity_types.is_none() && self.entity_ids.is_none()
    }

    pub fn matches(&self, entity_type: Option<&str>, entity_id: Option<&str>) -> bool {
        if self.is_everything() {
            return true;
        }
        let has = |list: &Option<Vec<String>>, value: Option<&str>| {
            value.is_some_and(|v| list.as_ref().is_some_and(|l| l.iter().any(|x| x == v)))
        };
        has(&self.entity_types, entity_type) || has(&self.entity_ids, entity_id)
    }

    /// Refuses a filter that names entity types outside `allowed` (the token's limit).
    pub fn check_allowed(&self, allowed: Option<&[String]>) -> Result<(), FilterError> {
        let (Some(allowed), Some(types)) = (allowed, &self.entity_types) else {
            return Ok(());
        };
        let outside: Vec<String> = types
            .iter()
            .filter(|t| !allowed.contains(t))
            .cloned()
            .collect();
        if outside.is_empty() {
            Ok(())
        } else {
            Err(FilterError::NotAllowed(outside))
        }
    }
}

fn normalized(
    list: &'static str,
    values: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, FilterError> {
    let Some(mut values) = values else {
        return Ok(None);
    };
    if values.len() > MAX_FILTER_VALUES {
        return Err(FilterError::TooMany {
            list,
            count: values.len(),
        });
    }
    if let Some(bad) = values
        .iter()
        .find(|v| v.is_empty() || v.chars().count() > MAX_VALUE_CHARS)
    {
        return Err(FilterError::BadValue {
            list,
            chars: bad.chars().count(),
        });
    }
    values.sort_unstable();
    values.dedup();
    Ok((!values.is_empty()).then_some(values))
}

/// What an update's `data` says the entity is (the seed's `entity_type` and `entity_id`); an
/// attribute of another type counts as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EntityRef {
    #[serde(default, deserialize_with = "lenient")]
    pub entity_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub entity_id: Option<String>,
}

impl EntityRef {
    /// The entity an update's `data` (JSON) names; nothing when it is not an object.
    pub fn of(data: &str) -> Self {
        serde_json::from_str(data).unwrap_or_default()
    }
}

/// A string, or nothing when the attribute is of another type.
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(value.as_str().map(str::to_owned))
}

/// What one connection receives: its filter, within the types its token allows. Equal
/// interests hash equal, so a broadcast is encoded once per distinct interest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interest {
    pub filter: Filter,
    /// The token's entity types; `None`: every type.
    pub allowed_types: Option<Vec<String>>,
}

impl Interest {
    pub fn is_everything(&self) -> bool {
        self.filter.is_everything() && self.allowed_types.is_none()
    }

    pub fn matches(&self, entity_type: Option<&str>, entity_id: Option<&str>) -> bool {
        let allowed = self
            .allowed_types
            .as_ref()
            .is_none_or(|allowed| entity_type.is_some_and(|t| allowed.iter().any(|a| a == t)));
        allowed && self.filter.matches(entity_type, entity_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(values: &[&str]) -> Option<Vec<String>> {
        Some(values.iter().map(|v| (*v).to_owned()).collect())
    }

    #[test]
    fn a_type_or_an_id_matches_and_no_list_matches_everything() {
        let filter = Filter::new(strings(&["stream"]), strings(&["disk-9"])).unwrap();
        assert!(filter.matches(Some("stream"), Some("stream-1")));
        assert!(filter.matches(Some("disk"), Some("disk-9")));
        assert!(!filter.matches(Some("disk"), Some("disk-1")));
        assert!(!filter.matches(None, None));
        assert!(Filter::EVERYTHING.matches(None, None));
        let ids_only = Filter::new(None, strings(&["a"])).unwrap();
        assert!(!ids_only.matches(Some("stream"), Some("b")));
    }

    #[test]
    fn filters_are_normalized_so_equal_ones_are_equal() {
        let a = Filter::new(strings(&["disk", "stream", "disk"]), strings(&[])).unwrap();
        let b = Filter::from_query(Some("stream, disk"), Some("")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.entity_ids, None);
        assert!(Filter::from_query(None, Some(",")).unwrap().is_everything());
    }

    #[test]
    fn limits_and_shapes_are_checked() {
        let many: Vec<String> = (0..=MAX_FILTER_VALUES).map(|i| i.to_string()).collect();
        assert_eq!(
            Filter::new(Some(many), None),
            Err(FilterError::TooMany {
                list: "entityTypes",
                count: MAX_FILTER_VALUES + 1
            })
        );
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        assert!(matches!(
            Filter::new(None, Some(vec![long])),
            Err(FilterError::BadValue {
                list: "entityIds",
                ..
            })
        ));
        assert!(matches!(
            Filter::new(None, Some(vec![String::new()])),
            Err(FilterError::BadValue { .. })
        ));
        assert_eq!(
            Filter::from_message(&json!({"entityTypes": "stream"})),
            Err(FilterError::NotStrings {
                list: "entityTypes"
            })
        );
        assert_eq!(
            Filter::from_message(&json!({"entityIds": [1, 2]})),
            Err(FilterError::NotStrings { list: "entityIds" })
        );
        assert_eq!(
            Filter::from_message(&json!({"action": "subscribe", "entityTypes": null})),
            Ok(Filter::EVERYTHING)
        );
    }

    #[test]
    fn a_token_limits_the_types_a_filter_may_name_and_what_matches() {
        let allowed = vec!["stream".to_owned()];
        let filter = Filter::new(strings(&["stream", "disk"]), None).unwrap();
        assert_eq!(
            filter.check_allowed(Some(&allowed)),
            Err(FilterError::NotAllowed(vec!["disk".into()]))
        );
        assert_eq!(filter.check_allowed(None), Ok(()));
        let by_id = Interest {
            filter: Filter::new(None, strings(&["disk-1", "stream-1"])).unwrap(),
            allowed_types: Some(allowed),
        };
        assert!(by_id.matches(Some("stream"), Some("stream-1")));
        assert!(!by_id.matches(Some("disk"), Some("disk-1")));
        assert!(!by_id.is_everything());
        assert!(Interest::default().is_everything());
    }
}
