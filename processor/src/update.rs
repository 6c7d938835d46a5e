//! Stream records to updates: `eventType`, `timestamp` (epoch ms), `sequence` and `data` as
//! plain JSON (numbers as numbers, sets as arrays, binary as base64, maps and lists kept).
//!
//! `data` is written as JSON text, not built as a `serde_json::Value`: a DynamoDB number has up
//! to 38 significant digits, more than a double (or `Value`, without serde_json's
//! `arbitrary_precision`, which would change number parsing in every crate) holds. Each number
//! is checked and written with its digits as stored.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::EventRecord;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_dynamo::AttributeValue;
use serde_json::value::RawValue;

/// One change, as clients receive it inside METRICS_UPDATE.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Update {
    pub event_type: EventType,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// The image as JSON text (an object), numbers verbatim.
    pub data: Box<RawValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone)]
pub struct Skipped {
    pub keys: Box<RawValue>,
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

    /// The same update reduced to the item's keys (a JSON object, as [`keys_of`] gives them)
    /// plus `"truncated": true`, for a record too large to send whole.
    pub fn truncated(&self, keys: &RawValue) -> Self {
        let members = keys
            .get()
            .trim()
            .strip_prefix('{')
            .and_then(|k| k.strip_suffix('}'))
            .map_or("", str::trim);
        let text = if members.is_empty() {
            r#"{"truncated":true}"#.to_owned()
        } else {
            format!(r#"{{{members},"truncated":true}}"#)
        };
        Self {
            event_type: self.event_type,
            timestamp: self.timestamp,
            sequence: self.sequence.clone(),
            data: RawValue::from_string(text).expect("an object's members and one more"),
        }
    }
}

/// The record's keys as a JSON object (for truncation and for logs); `null` if they cannot be
/// converted.
pub fn keys_of(record: &EventRecord) -> Box<RawValue> {
    item_to_json(&record.change.keys).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// Converts every record, in order; a record that cannot be converted is set aside.
pub fn convert(records: &[EventRecord]) -> (Vec<(Update, Box<RawValue>)>, Vec<Skipped>) {
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

/// An item (or a map attribute) as a JSON object, members in name order.
pub fn item_to_json(
    item: &HashMap<String, AttributeValue>,
) -> Result<Box<RawValue>, ConversionError> {
    let mut out = Vec::with_capacity(64 * item.len());
    write_item(&mut out, item)?;
    let text = String::from_utf8(out).expect("only UTF-8 text is written");
    Ok(RawValue::from_string(text).expect("valid JSON by construction"))
}

fn write_item(
    out: &mut Vec<u8>,
    item: &HashMap<String, AttributeValue>,
) -> Result<(), ConversionError> {
    let mut members: Vec<_> = item.iter().collect();
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        write_value(out, name, value)?;
    }
    out.push(b'}');
    Ok(())
}

/// One attribute value; `name` is the attribute it belongs to, for errors.
fn write_value(
    out: &mut Vec<u8>,
    name: &str,
    value: &AttributeValue,
) -> Result<(), ConversionError> {
    match value {
        AttributeValue::S(s) => write_str(out, s),
        AttributeValue::N(n) => write_number(out, name, n)?,
        AttributeValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        AttributeValue::Null(_) => out.extend_from_slice(b"null"),
        AttributeValue::B(bytes) => write_base64(out, bytes),
        AttributeValue::M(map) => write_item(out, map)?,
        AttributeValue::L(list) => write_array(out, list, |out, v| write_value(out, name, v))?,
        AttributeValue::Ss(set) => write_array(out, set, |out, s| {
            write_str(out, s);
            Ok(())
        })?,
        AttributeValue::Ns(set) => write_array(out, set, |out, n| write_number(out, name, n))?,
        AttributeValue::Bs(set) => write_array(out, set, |out, b| {
            write_base64(out, b);
            Ok(())
        })?,
    }
    Ok(())
}

fn write_array<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T) -> Result<(), ConversionError>,
) -> Result<(), ConversionError> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item)?;
    }
    out.push(b']');
    Ok(())
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing to memory cannot fail");
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let mut encoded = String::new();
    base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut encoded);
    out.extend_from_slice(encoded.as_bytes());
    out.push(b'"');
}

fn write_number(out: &mut Vec<u8>, name: &str, text: &str) -> Result<(), ConversionError> {
    let number = json_number(text).ok_or_else(|| ConversionError::BadNumber {
        attribute: name.to_owned(),
        value: text.to_owned(),
    })?;
    out.extend_from_slice(number.as_bytes());
    Ok(())
}

/// A DynamoDB number (`[+-]digits[.digits][e[+-]digits]`, either side of the point may be
/// empty but not both) in JSON's grammar, every digit kept: `+` dropped, the integer part's
/// leading zeros dropped (`007` -> `7`), `.5` -> `0.5`, `5.` -> `5`, the exponent as written.
/// `None` if `text` is not such a number.
pub fn json_number(text: &str) -> Option<String> {
    let text = text.trim();
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => unsigned.split_at(at),
        None => (unsigned, ""),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !is_digits(integer) || !is_digits(fraction) || integer.len() + fraction.len() == 0 {
        return None;
    }
    if !exponent.is_empty() {
        let digits = exponent[1..]
            .strip_prefix(['+', '-'])
            .unwrap_or(&exponent[1..]);
        if digits.is_empty() || !is_digits(digits) {
            return None;
        }
    }
    if !within_dynamodb_range(integer, fraction, exponent) {
        return None;
    }
    let integer = integer.trim_start_matches('0');
    let mut json = String::with_capacity(text.len() + 2);
    if negative {
        json.push('-');
    }
    json.push_str(if integer.is_empty() { "0" } else { integer });
    if !fraction.is_empty() {
        json.push('.');
        json.push_str(fraction);
    }
    json.push_str(exponent);
    Some(json)
}

/// DynamoDB's numbers: at most 38 significant digits, a magnitude from 1E-130 to below 1E+126.
/// Anything else cannot come from a stream, and `1e400` would reach browsers as Infinity.
fn within_dynamodb_range(integer: &str, fraction: &str, exponent: &str) -> bool {
    let digits = format!("{integer}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return true; // zero
    }
    let Ok(power) = exponent
        .get(1..)
        .filter(|e| !e.is_empty())
        .map_or(Ok(0), str::parse::<i64>)
    else {
        return false; // an exponent too long for an i64 is far out of range
    };
    let leading_zeros = (digits.len() - significant.len()) as i64;
    let magnitude = integer.len() as i64 - leading_zeros - 1 + power;
    significant.trim_end_matches('0').len() <= 38 && (-130..=125).contains(&magnitude)
}

/// Only ASCII digits (an empty string is).
fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// JSON text parsed as a `Value` (numbers as doubles: only for ordinary values).
    pub(crate) fn value(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).expect("valid JSON")
    }

    /// Each member's JSON text exactly as written.
    fn members(raw: &RawValue) -> HashMap<String, Box<RawValue>> {
        serde_json::from_str(raw.get()).expect("a JSON object")
    }

    /// Each element's JSON text exactly as written.
    fn elements(raw: &RawValue) -> Vec<Box<RawValue>> {
        serde_json::from_str(raw.get()).expect("a JSON array")
    }

    fn texts(raws: &[Box<RawValue>]) -> Vec<&str> {
        raws.iter().map(|r| r.get()).collect()
    }

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
        let data = value(&update.data);
        assert_eq!(data["s"], "text");
        assert_eq!(data["int"], -42);
        assert_eq!(data["big"], json!(18_446_744_073_709_551_615_u64));
        assert_eq!(data["float"], 1234.5);
        assert_eq!(
            data["exp"], 1000.0,
            "1E+3 is sent as written: a JSON number"
        );
        assert_eq!(members(&update.data)["exp"].get(), "1E+3");
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
        assert_eq!(value(&update.data)["metric_value"], 1234);
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
        assert_eq!(skipped[0].keys.get(), r#"{"entity_id":"stream-001"}"#);
        let ConversionError::BadNumber { attribute, value } = &skipped[2].error else {
            unreachable!("matched above");
        };
        assert_eq!((attribute.as_str(), value.as_str()), ("v", "12abc"));
    }

    #[test]
    fn truncation_keeps_keys_and_marks_it() {
        let update =
            Update::from_record(&record("INSERT", "1", seed_image(), Value::Null)).unwrap();
        let keys = item_to_json(&record("INSERT", "1", Value::Null, Value::Null).change.keys);
        let small = update.truncated(&keys.unwrap());
        assert_eq!(
            small.data.get(),
            r#"{"entity_id":"stream-001","truncated":true}"#
        );
        assert_eq!(small.sequence.as_deref(), Some("1"));
        assert_eq!(small.event_type, EventType::Insert);
        let numeric =
            RawValue::from_string(r#"{"id":12345678901234567890123456789012345678}"#.into());
        assert_eq!(
            update.truncated(&numeric.unwrap()).data.get(),
            r#"{"id":12345678901234567890123456789012345678,"truncated":true}"#,
            "a numeric key keeps its digits"
        );
        assert_eq!(
            update.truncated(RawValue::NULL).data.get(),
            r#"{"truncated":true}"#
        );
    }

    /// DynamoDB's 38 significant digits, and the forms its number syntax allows.
    const EXACT: [(&str, &str); 12] = [
        (
            "12345678901234567890123456789012345678",
            "12345678901234567890123456789012345678",
        ),
        (
            "-12345678901234567890123456789012345678",
            "-12345678901234567890123456789012345678",
        ),
        (
            "1234567890123456789.0123456789012345678",
            "1234567890123456789.0123456789012345678",
        ),
        (
            "-0.00000000000000000000000000000000000001",
            "-0.00000000000000000000000000000000000001",
        ),
        (
            "9.9999999999999999999999999999999999999E+125",
            "9.9999999999999999999999999999999999999E+125",
        ),
        ("1E-130", "1E-130"),
        ("1e+3", "1e+3"),
        ("+42", "42"),
        ("007.50", "7.50"),
        (".5", "0.5"),
        ("5.", "5"),
        ("-.5e-3", "-0.5e-3"),
    ];

    #[test]
    fn numbers_keep_every_digit_at_top_level_in_maps_lists_and_sets() {
        for (dynamo, json_text) in EXACT {
            let image = json!({
                "entity_id": {"S": "e"},
                "n": {"N": dynamo},
                "map": {"M": {"n": {"N": dynamo}}},
                "list": {"L": [{"N": dynamo}, {"L": [{"N": dynamo}]}]},
                "ns": {"NS": ["1", dynamo]}
            });
            let update = Update::from_record(&record("MODIFY", "1", image, Value::Null)).unwrap();
            let data = members(&update.data);
            assert_eq!(data["n"].get(), json_text, "{dynamo}");
            assert_eq!(
                members(&data["map"])["n"].get(),
                json_text,
                "{dynamo} in a map"
            );
            let list = elements(&data["list"]);
            assert_eq!(list[0].get(), json_text, "{dynamo} in a list");
            assert_eq!(
                texts(&elements(&list[1])),
                [json_text],
                "{dynamo} in a nested list"
            );
            assert_eq!(
                texts(&elements(&data["ns"])),
                ["1", json_text],
                "{dynamo} in a set"
            );
            // Every form is a JSON number that a client's parser reads as one.
            assert!(value(&data["n"]).is_number(), "{dynamo}");
        }
    }

    #[test]
    fn json_number_writes_json_grammar_and_refuses_what_is_not_a_number() {
        for (dynamo, json_text) in EXACT {
            assert_eq!(json_number(dynamo).as_deref(), Some(json_text), "{dynamo}");
        }
        for (dynamo, json_text) in [("0", "0"), ("-0", "-0"), ("000", "0"), (" 12 ", "12")] {
            assert_eq!(json_number(dynamo).as_deref(), Some(json_text), "{dynamo}");
        }
        for bad in [
            "", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", "12abc", "1_000", "0x10", "NaN", "inf",
            "Infinity", "--1", "+-1", "1e5.5", "1 2", "١٢", "1,5",
        ] {
            assert_eq!(json_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_outside_dynamodb_range_are_refused() {
        let thirty_eight = "12345678901234567890123456789012345678";
        for ok in [
            "1e125",
            "9.9e125",
            "1E-130",
            "0.000e999",
            thirty_eight,
            "-1e125",
        ] {
            assert!(json_number(ok).is_some(), "{ok}");
        }
        let thirty_nine = format!("{thirty_eight}9");
        for bad in [
            "1e126",
            "1e400",
            "1e999999999",
            "1e-131",
            "1e99999999999999999999",
            &thirty_nine,
        ] {
            assert_eq!(json_number(bad), None, "{bad}");
        }
        assert!(json_number("0.00012e-126").is_some(), "1.2E-130");
        assert!(
            json_number(&format!("{thirty_eight}000")).is_some(),
            "trailing zeros are not significant"
        );
    }

    #[test]
    fn an_invalid_number_anywhere_skips_the_record_with_a_typed_error() {
        for image in [
            json!({"entity_id": {"S": "e"}, "v": {"N": "1.2.3"}}),
            json!({"entity_id": {"S": "e"}, "m": {"M": {"v": {"N": "NaN"}}}}),
            json!({"entity_id": {"S": "e"}, "l": {"L": [{"N": "1"}, {"N": "x"}]}}),
            json!({"entity_id": {"S": "e"}, "ns": {"NS": ["1", "1e"]}}),
        ] {
            let (updates, skipped) = convert(&[record("MODIFY", "9", image.clone(), Value::Null)]);
            assert!(updates.is_empty(), "{image}");
            assert!(
                matches!(skipped[0].error, ConversionError::BadNumber { .. }),
                "{image}: {:?}",
                skipped[0].error
            );
        }
    }

    #[test]
    fn strings_and_names_are_escaped_and_members_sorted() {
        let image = json!({
            "z\"quote": {"S": "line\nbreak \u{1} \\ é"},
            "a": {"SS": ["\"x\""]}
        });
        let update = Update::from_record(&record("INSERT", "1", image, Value::Null)).unwrap();
        assert_eq!(
            update.data.get(),
            r#"{"a":["\"x\""],"z\"quote":"line\nbreak \u0001 \\ é"}"#
        );
    }
}
