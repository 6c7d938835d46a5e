//! Stream records to updates: `eventType`, `timestamp` (epoch ms), `sequence` and `data` as
//! plain JSON (numbers as numbers, sets as arrays, binary as base64, maps and lists kept).

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use base64::Engine;
use serde::Serialize;
use serde_dynamo::AttributeValue;
use serde_json::{Map, Number, Value};

/// One change, as clients receive it inside METRICS_UPDATE.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Update {
    pub event_type: EventType,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    pub data: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Insert,
    Modify,
    Remove,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConversionError {
    #[error("unknown eventName {0:?}")]
    UnknownEvent(String),
    #[error("the record has no {0} (is the stream's view type NEW_AND_OLD_IMAGES?)")]
    NoImage(&'static str),
    #[error("attribute {attribute}: {value:?} is not a number")]
    BadNumber { attribute: String, value: String },
}

/// A record that could not be converted: skipped, and logged with its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub keys: Value,
    pub sequence: Option<String>,
    pub error: ConversionError,
}

impl Update {
    pub fn from_record(record: &EventRecord) -> Result<Self, ConversionError> {
        let change = &record.change;
        let (event_type, image, which) = match record.event_name.as_str() {
            "INSERT" => (EventType::Insert, &change.new_image, "NewImage"),
            "MODIFY" => (EventType::Modify, &change.new_image, "NewImage"),
            "REMOVE" => (EventType::Remove, &change.old_image, "OldImage"),
            other => return Err(ConversionError::UnknownEvent(other.to_owned())),
        };
        if image.is_empty() {
            return Err(ConversionError::NoImage(which));
        }
        Ok(Self {
            event_type,
            // Epoch ms, as the seed sent it (whole seconds: aws_lambda_events reads the
            // stream's ApproximateCreationDateTime at second precision).
            timestamp: change.approximate_creation_date_time.timestamp_millis(),
            sequence: change.sequence_number.clone(),
            data: item_to_json(image)?,
        })
    }

    /// The same update reduced to the item's keys, for a record too large to send whole.
    pub fn truncated(&self, keys: Value) -> Self {
        let mut data = match keys {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        data.insert("truncated".into(), Value::Bool(true));
        Self {
            data: Value::Object(data),
            ..self.clone()
        }
    }
}

/// The record's keys as plain JSON (for truncation and for logs).
pub fn keys_of(record: &EventRecord) -> Value {
    item_to_json(&record.change.keys).unwrap_or(Value::Null)
}

/// Converts every record, in order; a record that cannot be converted is set aside.
pub fn convert(records: &[EventRecord]) -> (Vec<(Update, Value)>, Vec<Skipped>) {
    let mut updates = Vec::with_capacity(records.len());
    let mut skipped = Vec::new();
    for record in records {
        match Update::from_record(record) {
            Ok(update) => updates.push((update, keys_of(record))),
            Err(error) => skipped.push(Skipped {
                keys: keys_of(record),
                sequence: record.change.sequence_number.clone(),
                error,
            }),
        }
    }
    (updates, skipped)
}

pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Result<Value, ConversionError> {
    item.iter()
        .map(|(name, value)| Ok((name.clone(), to_json(name, value)?)))
        .collect::<Result<Map<_, _>, _>>()
        .map(Value::Object)
}

fn to_json(name: &str, value: &AttributeValue) -> Result<Value, ConversionError> {
    Ok(match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => Value::Number(number(name, n)?),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(bytes) => Value::String(base64(bytes)),
        AttributeValue::M(map) => item_to_json(map)?,
        AttributeValue::L(list) => Value::Array(
            list.iter()
                .map(|v| to_json(name, v))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::Ss(set) => Value::Array(set.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(set) => Value::Array(
            set.iter()
                .map(|n| number(name, n).map(Value::Number))
                .collect::<Result<_, _>>()?,
        ),
        AttributeValue::Bs(set) => {
            Value::Array(set.iter().map(|b| Value::String(base64(b))).collect())
        }
    })
}

/// DynamoDB numbers are decimal strings: integers stay exact, the rest become doubles.
fn number(name: &str, text: &str) -> Result<Number, ConversionError> {
    let bad = || ConversionError::BadNumber {
        attribute: name.to_owned(),
        value: text.to_owned(),
    };
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Number::from(i));
    }
    if let Ok(u) = text.parse::<u64>() {
        return Ok(Number::from(u));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or_else(bad)
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A stream record as Lambda delivers it (the JSON wire form).
    pub(crate) fn record(
        event_name: &str,
        seq: &str,
        new_image: Value,
        old_image: Value,
    ) -> EventRecord {
        serde_json::from_value(json!({
            "eventID": format!("id-{seq}"),
            "eventName": event_name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_699_123_456,
                "Keys": {"entity_id": {"S": "stream-001"}},
                "NewImage": new_image,
                "OldImage": old_image,
                "SequenceNumber": seq,
                "SizeBytes": 120,
                "StreamViewType": "NEW_AND_OLD_IMAGES"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/metrics/stream/2024-11-04T00:00:00.000"
        }))
        .expect("a valid stream record")
    }

    pub(crate) fn seed_image() -> Value {
        json!({
            "entity_id": {"S": "stream-001"},
            "entity_type": {"S": "stream"},
            "metric_value": {"N": "1234"},
            "timestamp": {"S": "2024-11-04T12:34:56Z"}
        })
    }

    #[test]
    fn the_seed_example_converts_to_the_seed_json() {
        let update =
            Update::from_record(&record("INSERT", "100", seed_image(), Value::Null)).unwrap();
        assert_eq!(
            serde_json::to_value(&update).unwrap(),
            json!({
                "eventType": "INSERT",
                "timestamp": 1_699_123_456_000_i64,
                "sequence": "100",
                "data": {
                    "entity_id": "stream-001",
                    "entity_type": "stream",
                    "metric_value": 1234,
                    "timestamp": "2024-11-04T12:34:56Z"
                }
            })
        );
    }

    #[test]
    fn every_attribute_type_becomes_plain_json() {
        let image = json!({
            "s": {"S": "text"},
            "int": {"N": "-42"},
            "big": {"N": "18446744073709551615"},
            "float": {"N": "1234.5"},
            "exp": {"N": "1E+3"},
            "yes": {"BOOL": true},
            "nothing": {"NULL": true},
            "bin": {"B": "aGVsbG8="},
            "map": {"M": {"inner": {"N": "1"}, "deep": {"M": {"x": {"S": "y"}}}}},
            "list": {"L": [{"S": "a"}, {"N": "2"}, {"L": [{"BOOL": false}]}]},
            "ss": {"SS": ["a", "b"]},
            "ns": {"NS": ["1", "2.5"]},
            "bs": {"BS": ["aGk=", "eW8="]}
        });
        let update = Update::from_record(&record("MODIFY", "1", image, Value::Null)).unwrap();
        assert_eq!(update.event_type, EventType::Modify);
        let data = update.data;
        assert_eq!(data["s"], "text");
        assert_eq!(data["int"], -42);
        assert_eq!(data["big"], json!(18_446_744_073_709_551_615_u64));
        assert_eq!(data["float"], 1234.5);
        assert_eq!(data["exp"], 1000.0);
        assert_eq!(data["yes"], true);
        assert_eq!(data["nothing"], Value::Null);
        assert_eq!(data["bin"], "aGVsbG8=", "binary is base64 of the bytes");
        assert_eq!(data["map"], json!({"inner": 1, "deep": {"x": "y"}}));
        assert_eq!(data["list"], json!(["a", 2, [false]]));
        let mut ss: Vec<String> = serde_json::from_value(data["ss"].clone()).unwrap();
        ss.sort();
        assert_eq!(ss, ["a", "b"]);
        assert_eq!(data["ns"], json!([1, 2.5]));
        assert_eq!(data["bs"], json!(["aGk=", "eW8="]));
    }

    #[test]
    fn remove_sends_the_old_image() {
        let update =
            Update::from_record(&record("REMOVE", "7", Value::Null, seed_image())).unwrap();
        assert_eq!(update.event_type, EventType::Remove);
        assert_eq!(update.data["metric_value"], 1234);
        assert_eq!(serde_json::to_value(update.event_type).unwrap(), "REMOVE");
    }

    #[test]
    fn unconvertible_records_are_set_aside_with_their_keys() {
        let records = [
            record("INSERT", "1", seed_image(), Value::Null),
            record("INSERT", "2", Value::Null, Value::Null),
            record("UPSERT", "3", seed_image(), Value::Null),
            record(
                "MODIFY",
                "4",
                json!({"entity_id": {"S": "x"}, "v": {"N": "12abc"}}),
                Value::Null,
            ),
            record("MODIFY", "5", seed_image(), Value::Null),
        ];
        let (updates, skipped) = convert(&records);
        let sequences: Vec<_> = updates
            .iter()
            .map(|(u, _)| u.sequence.clone().unwrap())
            .collect();
        assert_eq!(sequences, ["1", "5"]);
        assert_eq!(skipped.len(), 3);
        assert_eq!(skipped[0].error, ConversionError::NoImage("NewImage"));
        assert_eq!(
            skipped[1].error,
            ConversionError::UnknownEvent("UPSERT".into())
        );
        assert!(matches!(
            skipped[2].error,
            ConversionError::BadNumber { .. }
        ));
        assert_eq!(skipped[0].keys, json!({"entity_id": "stream-001"}));
    }

    #[test]
    fn truncation_keeps_keys_and_marks_it() {
        let update =
            Update::from_record(&record("INSERT", "1", seed_image(), Value::Null)).unwrap();
        let small = update.truncated(json!({"entity_id": "stream-001"}));
        assert_eq!(
            small.data,
            json!({"entity_id": "stream-001", "truncated": true})
        );
        assert_eq!(small.sequence.as_deref(), Some("1"));
    }
}
