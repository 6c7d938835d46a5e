//! Property tests of stream records to updates (`Update::from_record`, `convert`): records
//! built from arbitrary DynamoDB attribute values, event names and images. A record converts or
//! is set aside with a typed `ConversionError`, never a panic; every valid record converts to
//! plain JSON that says what the image says.
//!
//! Numbers: the properties hold whether a number becomes an `f64` or keeps all 38 digits. An
//! integer within i64 (or u64) must come back exactly; any valid number's JSON text must parse
//! to the same `f64` as its DynamoDB text; text that is no number at all is a `BadNumber`.
//!
//! Cases per property: `PROPTEST_CASES` (256 unless set; `make fuzz` sets it high).

use std::collections::{BTreeMap, HashMap};

use aws_lambda_events::dynamodb::EventRecord;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use platform::properties::check;
use processor::update::{ConversionError, EventType, Update, convert, keys_of};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde_dynamo::{AttributeValue, Item};
use serde_json::value::RawValue;
use serde_json::{Value, json};

// ---- numbers ----

/// A number DynamoDB accepts: up to 38 significant digits, magnitude within 1E-130..1E+126,
/// written plainly or with an exponent.
fn valid_number() -> BoxedStrategy<String> {
    let decimal = (any::<bool>(), "[1-9][0-9]{0,37}")
        .prop_flat_map(|(negative, digits)| {
            let n = digits.len();
            (
                Just(negative),
                Just(digits),
                1..=n,
                prop::option::of(-90i32..=80),
                any::<bool>(),
            )
        })
        .prop_map(|(negative, digits, point, exponent, lower_e)| {
            let (int, frac) = digits.split_at(point);
            let mut text = String::from(if negative { "-" } else { "" });
            text.push_str(int);
            if !frac.is_empty() {
                text.push('.');
                text.push_str(frac);
            }
            if let Some(e) = exponent {
                text.push(if lower_e { 'e' } else { 'E' });
                text.push_str(&format!("{e:+}"));
            }
            text
        });
    let small_fraction = ("[0-9]{1,20}", any::<bool>())
        .prop_map(|(digits, negative)| format!("{}0.{digits}", if negative { "-" } else { "" }));
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|u| u.to_string()),
        (-1000i64..=1000).prop_map(|i| i.to_string()),
        decimal,
        small_fraction,
    ]
    .boxed()
}

/// Text that is not a number in any reading (Rust's `f64` grammar is wider than DynamoDB's).
fn invalid_number() -> BoxedStrategy<String> {
    let fixed = prop::sample::select(vec![
        "", " ", "-", "+", ".", "-.", "1..2", "1.2.3", "1e", "e5", "1e+", "--1", "12abc", "0x10",
        "1,000", "1 000", "NaN", "nan", "inf", "-inf", "Infinity", "١٢٣",
    ])
    .prop_map(str::to_owned);
    let near_miss = "[-+0-9.eE xX_,#a-z]{0,16}"
        .prop_filter("not an f64", |t: &String| t.trim().parse::<f64>().is_err());
    let anything = any::<String>().prop_filter("not an f64", |t| t.trim().parse::<f64>().is_err());
    prop_oneof![fixed, near_miss, anything].boxed()
}

/// What the stream may carry in `N`: mostly numbers, sometimes anything.
fn any_number_text() -> BoxedStrategy<String> {
    prop_oneof![3 => valid_number(), 1 => invalid_number(), 1 => any::<String>()].boxed()
}

// ---- attribute values and records ----

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

/// Attribute values with `number` in N and NS, maps and lists nested up to `depth` levels.
fn attribute_value(
    number: BoxedStrategy<String>,
    depth: u32,
) -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        any::<String>().prop_map(AttributeValue::S),
        number.clone().prop_map(AttributeValue::N),
        bytes().prop_map(AttributeValue::B),
        any::<bool>().prop_map(AttributeValue::Bool),
        Just(AttributeValue::Null(true)),
        prop::collection::vec(any::<String>(), 1..4).prop_map(AttributeValue::Ss),
        prop::collection::vec(number, 1..4).prop_map(AttributeValue::Ns),
        prop::collection::vec(bytes(), 1..4).prop_map(AttributeValue::Bs),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            prop::collection::hash_map(any::<String>(), inner.clone(), 0..4)
                .prop_map(AttributeValue::M),
            prop::collection::vec(inner, 0..4).prop_map(AttributeValue::L),
        ]
    })
}

type Image = HashMap<String, AttributeValue>;

fn image(
    number: BoxedStrategy<String>,
    size: std::ops::Range<usize>,
) -> impl Strategy<Value = Image> {
    prop::collection::hash_map(any::<String>(), attribute_value(number, 3), size)
}

fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["INSERT", "MODIFY", "REMOVE"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["insert", "UPSERT", "", " INSERT", "REMOVE\0"]).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

#[derive(Debug, Clone)]
struct RecordParts {
    event_name: String,
    keys: Image,
    new_image: Image,
    old_image: Image,
    sequence: Option<String>,
    created_secs: i64,
}

fn record_parts(
    number: BoxedStrategy<String>,
    images: std::ops::Range<usize>,
) -> impl Strategy<Value = RecordParts> {
    (
        event_name(),
        image(number.clone(), 0..2),
        image(number.clone(), images.clone()),
        image(number, images),
        prop::option::of("[0-9]{1,40}"),
        0i64..=4_102_444_800, // up to 2100
    )
        .prop_map(
            |(event_name, keys, new_image, old_image, sequence, created_secs)| RecordParts {
                event_name,
                keys,
                new_image,
                old_image,
                sequence,
                created_secs,
            },
        )
}

/// The record as Lambda hands it to the function (the struct is `non_exhaustive`).
fn record(parts: &RecordParts) -> EventRecord {
    let mut record = EventRecord::default();
    record.event_name = parts.event_name.clone();
    record.event_id = "id-1".to_owned();
    record.aws_region = "us-east-1".to_owned();
    record.change.keys = Item::from(parts.keys.clone());
    record.change.new_image = Item::from(parts.new_image.clone());
    record.change.old_image = Item::from(parts.old_image.clone());
    record.change.sequence_number = parts.sequence.clone();
    record.change.approximate_creation_date_time =
        chrono::DateTime::from_timestamp(parts.created_secs, 0).expect("in chrono's range");
    record
}

// ---- the oracle ----

/// JSON with each number's text as written: the data may carry more digits than a double (or
/// a `serde_json::Value`) holds.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

/// What `value` serializes to (the data of an update, its keys, the update itself).
fn tree(value: &impl Serialize) -> Json {
    parse(&serde_json::to_string(value).expect("serializes"))
}

fn parse(text: &str) -> Json {
    let text = text.trim();
    match text.as_bytes().first() {
        Some(b'{') => Json::Object(
            serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(text)
                .expect("a JSON object")
                .into_iter()
                .map(|(k, v)| (k, parse(v.get())))
                .collect(),
        ),
        Some(b'[') => Json::Array(
            serde_json::from_str::<Vec<Box<RawValue>>>(text)
                .expect("a JSON array")
                .iter()
                .map(|v| parse(v.get()))
                .collect(),
        ),
        Some(b'"') => Json::String(serde_json::from_str(text).expect("a JSON string")),
        Some(b't') => Json::Bool(true),
        Some(b'f') => Json::Bool(false),
        Some(b'n') => Json::Null,
        _ => {
            serde_json::from_str::<Box<RawValue>>(text).expect("a JSON number");
            Json::Number(text.to_owned())
        }
    }
}

/// Every N and NS text inside `value`.
fn numbers_in(value: &AttributeValue, out: &mut Vec<String>) {
    match value {
        AttributeValue::N(n) => out.push(n.clone()),
        AttributeValue::Ns(ns) => out.extend(ns.iter().cloned()),
        AttributeValue::M(map) => map.values().for_each(|v| numbers_in(v, out)),
        AttributeValue::L(list) => list.iter().for_each(|v| numbers_in(v, out)),
        _ => {}
    }
}

fn image_numbers(image: &Image) -> Vec<String> {
    let mut out = Vec::new();
    image.values().for_each(|v| numbers_in(v, &mut out));
    out
}

/// `json` is what a client must see for the DynamoDB number `text`: an integer within i64
/// (or u64) exactly, any number as JSON text that reads back as the same double.
fn number_agrees(text: &str, json: &Json) -> Result<(), String> {
    let Json::Number(written) = json else {
        return Err(format!("{text:?} became {json:?}, not a JSON number"));
    };
    if let Ok(exact) = text.parse::<i64>() {
        if written.parse::<i64>() != Ok(exact) {
            return Err(format!(
                "{text:?} became {written}: integers within i64 are exact"
            ));
        }
    } else if let Ok(exact) = text.parse::<u64>()
        && written.parse::<u64>() != Ok(exact)
    {
        return Err(format!(
            "{text:?} became {written}: integers within u64 are exact"
        ));
    }
    let expected = text.parse::<f64>().map_err(|e| format!("{text:?}: {e}"))?;
    match written.parse::<f64>() {
        Ok(back) if back == expected => Ok(()),
        other => Err(format!(
            "{text:?} became {written}, which reads back as {other:?}, not {expected}"
        )),
    }
}

/// `json` is the plain-JSON form of `value`: numbers as numbers, sets as arrays, binary as
/// base64, maps and lists kept.
fn agrees(value: &AttributeValue, json: &Json) -> Result<(), String> {
    let mismatch = || Err(format!("{value:?} became {json:?}"));
    let strings = |array: &[Json]| -> Vec<String> {
        let mut all: Vec<String> = array
            .iter()
            .map(|j| match j {
                Json::String(s) => s.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        all.sort_unstable();
        all
    };
    match (value, json) {
        (AttributeValue::S(s), Json::String(j)) if s == j => Ok(()),
        (AttributeValue::N(n), _) => number_agrees(n, json),
        (AttributeValue::Bool(b), Json::Bool(j)) if b == j => Ok(()),
        (AttributeValue::Null(_), Json::Null) => Ok(()),
        (AttributeValue::B(bytes), Json::String(j)) if *j == STANDARD.encode(bytes) => Ok(()),
        (AttributeValue::M(map), Json::Object(object)) => {
            if map.len() != object.len() {
                return mismatch();
            }
            map.iter().try_for_each(|(k, v)| match object.get(k) {
                Some(j) => agrees(v, j),
                None => Err(format!("member {k:?} is missing")),
            })
        }
        (AttributeValue::L(list), Json::Array(array)) if list.len() == array.len() => {
            list.iter().zip(array).try_for_each(|(v, j)| agrees(v, j))
        }
        (AttributeValue::Ss(set), Json::Array(array)) => {
            let mut want = set.clone();
            want.sort_unstable();
            if strings(array) == want {
                Ok(())
            } else {
                mismatch()
            }
        }
        (AttributeValue::Ns(set), Json::Array(array)) if set.len() == array.len() => set
            .iter()
            .zip(array)
            .try_for_each(|(n, j)| number_agrees(n, j)),
        (AttributeValue::Bs(set), Json::Array(array)) => {
            let mut want: Vec<String> = set.iter().map(|b| STANDARD.encode(b)).collect();
            want.sort_unstable();
            if strings(array) == want {
                Ok(())
            } else {
                mismatch()
            }
        }
        _ => mismatch(),
    }
}

fn image_agrees(image: &Image, data: &Json) -> Result<(), TestCaseError> {
    agrees(&AttributeValue::M(image.clone()), data).map_err(TestCaseError::fail)
}

/// The error of a conversion that must fail.
fn error_of(result: Result<Update, ConversionError>) -> Result<ConversionError, TestCaseError> {
    match result {
        Err(error) => Ok(error),
        Ok(update) => Err(TestCaseError::fail(format!(
            "converted to {}, expected a refusal",
            serde_json::to_string(&update).unwrap_or_default()
        ))),
    }
}

/// The image a record of this event name is sent with.
fn image_of(parts: &RecordParts) -> Option<(&Image, &'static str, EventType)> {
    match parts.event_name.as_str() {
        "INSERT" => Some((&parts.new_image, "NewImage", EventType::Insert)),
        "MODIFY" => Some((&parts.new_image, "NewImage", EventType::Modify)),
        "REMOVE" => Some((&parts.old_image, "OldImage", EventType::Remove)),
        _ => None,
    }
}

// ---- properties ----

#[test]
fn arbitrary_records_convert_or_are_refused_with_a_typed_error() {
    check(
        "processor::from_record_arbitrary",
        record_parts(any_number_text(), 0..5),
        |parts| {
            let result = Update::from_record(&record(&parts));
            let Some((image, which, event_type)) = image_of(&parts) else {
                let error = error_of(result)?;
                prop_assert_eq!(
                    error,
                    ConversionError::UnknownEvent(parts.event_name.clone())
                );
                return Ok(());
            };
            if image.is_empty() {
                prop_assert_eq!(error_of(result)?, ConversionError::NoImage(which));
                return Ok(());
            }
            match result {
                Ok(update) => {
                    prop_assert_eq!(update.event_type, event_type);
                    // The wire form is JSON whose data has the image's members.
                    let Json::Object(data) = tree(&update.data) else {
                        return Err(TestCaseError::fail("data is not an object"));
                    };
                    let got: Vec<&String> = data.keys().collect();
                    let mut want: Vec<&String> = image.keys().collect();
                    want.sort();
                    prop_assert_eq!(got, want);
                }
                Err(ConversionError::BadNumber { value, .. }) => {
                    prop_assert!(
                        image_numbers(image).contains(&value),
                        "BadNumber names {value:?}, which is not in the image"
                    );
                }
                Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
            }
            Ok(())
        },
    );
}

#[test]
fn valid_records_convert_to_what_their_image_says() {
    let parts = record_parts(valid_number(), 1..5).prop_map(|mut p| {
        if !["INSERT", "MODIFY", "REMOVE"].contains(&p.event_name.as_str()) {
            p.event_name = "MODIFY".to_owned();
        }
        p
    });
    check("processor::from_record_valid", parts, |parts| {
        let update = Update::from_record(&record(&parts))
            .map_err(|e| TestCaseError::fail(format!("a valid record was refused: {e}")))?;
        let (image, _, event_type) = image_of(&parts).expect("a known event");
        prop_assert_eq!(update.event_type, event_type);
        prop_assert_eq!(update.timestamp, parts.created_secs * 1000);
        prop_assert_eq!(&update.sequence, &parts.sequence);
        image_agrees(image, &tree(&update.data))?;
        // The whole update's wire form carries the same data.
        let Json::Object(wire) = tree(&update) else {
            return Err(TestCaseError::fail("an update is a JSON object"));
        };
        image_agrees(image, &wire["data"])?;
        Ok(())
    });
}

#[test]
fn a_number_converts_exactly_or_as_its_nearest_double() {
    check("processor::valid_numbers", valid_number(), |text| {
        let image: Image = HashMap::from([
            ("entity_id".to_owned(), AttributeValue::S("e-1".to_owned())),
            ("v".to_owned(), AttributeValue::N(text.clone())),
            (
                "set".to_owned(),
                AttributeValue::Ns(vec![text.clone(), "1".to_owned()]),
            ),
        ]);
        let parts = RecordParts {
            event_name: "INSERT".to_owned(),
            keys: HashMap::new(),
            new_image: image,
            old_image: HashMap::new(),
            sequence: None,
            created_secs: 0,
        };
        let update = Update::from_record(&record(&parts))
            .map_err(|e| TestCaseError::fail(format!("{text:?} was refused: {e}")))?;
        let Json::Object(data) = tree(&update.data) else {
            return Err(TestCaseError::fail("data is not an object"));
        };
        number_agrees(&text, &data["v"]).map_err(TestCaseError::fail)?;
        let Json::Array(set) = &data["set"] else {
            return Err(TestCaseError::fail("NS is not an array"));
        };
        number_agrees(&text, &set[0]).map_err(TestCaseError::fail)?;
        Ok(())
    });
}

#[test]
fn text_that_is_no_number_is_a_bad_number_wherever_it_is() {
    let place = prop::sample::select(vec!["top", "set", "map", "list"]);
    check(
        "processor::invalid_numbers",
        (invalid_number(), place),
        |(text, place)| {
            let n = AttributeValue::N(text.clone());
            let value = match place {
                "top" => n,
                "set" => AttributeValue::Ns(vec!["1".to_owned(), text.clone()]),
                "map" => AttributeValue::M(HashMap::from([("inner".to_owned(), n)])),
                _ => AttributeValue::L(vec![AttributeValue::S("x".to_owned()), n]),
            };
            let parts = RecordParts {
                event_name: "MODIFY".to_owned(),
                keys: HashMap::from([(
                    "entity_id".to_owned(),
                    AttributeValue::S("e-1".to_owned()),
                )]),
                new_image: HashMap::from([
                    ("entity_id".to_owned(), AttributeValue::S("e-1".to_owned())),
                    ("v".to_owned(), value),
                ]),
                old_image: HashMap::new(),
                sequence: Some("7".to_owned()),
                created_secs: 0,
            };
            let record = record(&parts);
            match error_of(Update::from_record(&record))? {
                ConversionError::BadNumber { value, .. } => prop_assert_eq!(value, text),
                other => {
                    return Err(TestCaseError::fail(format!(
                        "{text:?} in {place}: {other:?}"
                    )));
                }
            }
            // convert sets it aside with the record's keys and sequence.
            let (updates, skipped) = convert(std::slice::from_ref(&record));
            prop_assert!(updates.is_empty());
            prop_assert_eq!(skipped.len(), 1);
            prop_assert_eq!(tree(&skipped[0].keys), parse(r#"{"entity_id":"e-1"}"#));
            prop_assert_eq!(skipped[0].sequence.as_deref(), Some("7"));
            Ok(())
        },
    );
}

#[test]
fn convert_accounts_for_every_record_in_order() {
    let batch = prop::collection::vec(record_parts(any_number_text(), 0..3), 0..6);
    check("processor::convert_batches", batch, |batch| {
        let records: Vec<EventRecord> = batch.iter().map(record).collect();
        let (updates, skipped) = convert(&records);
        prop_assert_eq!(updates.len() + skipped.len(), records.len());
        // Each record lands on exactly one side, in order, keeping its keys.
        let (mut u, mut s) = (updates.iter(), skipped.iter());
        for record in &records {
            match Update::from_record(record) {
                Ok(expected) => {
                    let (update, keys) = u.next().expect("an update per good record");
                    prop_assert_eq!(tree(update), tree(&expected));
                    prop_assert_eq!(tree(keys), tree(&keys_of(record)));
                }
                Err(error) => {
                    let skip = s.next().expect("a skip per bad record");
                    prop_assert_eq!(&skip.error, &error);
                    prop_assert_eq!(tree(&skip.keys), tree(&keys_of(record)));
                    prop_assert_eq!(&skip.sequence, &record.change.sequence_number);
                }
            }
        }
        Ok(())
    });
}

#[test]
fn nesting_to_dynamodbs_limit_converts() {
    // DynamoDB nests maps and lists up to 32 levels.
    let chain = (
        1usize..=32,
        prop::collection::vec(any::<bool>(), 32),
        valid_number(),
    );
    check("processor::deep_nesting", chain, |(depth, kinds, leaf)| {
        let mut value = AttributeValue::N(leaf.clone());
        for as_map in kinds.iter().take(depth) {
            value = if *as_map {
                AttributeValue::M(HashMap::from([("k".to_owned(), value)]))
            } else {
                AttributeValue::L(vec![value])
            };
        }
        let image = HashMap::from([("deep".to_owned(), value)]);
        let parts = RecordParts {
            event_name: "INSERT".to_owned(),
            keys: HashMap::new(),
            new_image: image.clone(),
            old_image: HashMap::new(),
            sequence: None,
            created_secs: 0,
        };
        let update =
            Update::from_record(&record(&parts)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        image_agrees(&image, &tree(&update.data))?;
        Ok(())
    });
}

/// DynamoDB JSON of an attribute value, sometimes malformed (wrong types, bad base64, two
/// type keys, unknown type keys).
fn dynamodb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(|s| json!({"S": s})),
        any_number_text().prop_map(|n| json!({"N": n})),
        any::<i64>().prop_map(|n| json!({"N": n})),
        bytes().prop_map(|b| json!({"B": STANDARD.encode(b)})),
        "[A-Za-z0-9+/=!]{0,12}".prop_map(|b| json!({"B": b})),
        any::<bool>().prop_map(|b| json!({"BOOL": b})),
        Just(json!({"NULL": true})),
        Just(json!({"NULL": "yes"})),
        prop::collection::vec(any::<String>(), 0..3).prop_map(|s| json!({"SS": s})),
        prop::collection::vec(any_number_text(), 0..3).prop_map(|s| json!({"NS": s})),
        Just(json!({"S": "a", "N": "1"})),
        Just(json!({"X": 1})),
        Just(json!({})),
        Just(json!(null)),
        Just(json!("plain")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::btree_map(any::<String>(), inner.clone(), 0..4)
                .prop_map(|m| json!({"M": m})),
            prop::collection::vec(inner, 0..4).prop_map(|l| json!({"L": l})),
        ]
    })
}

#[test]
fn records_as_lambda_delivers_them_decode_and_convert_without_panicking() {
    let created = prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!("2024-01-01")),
        Just(json!(null)),
    ];
    let image = || {
        prop_oneof![
            1 => Just(json!(null)),
            4 => prop::collection::btree_map(any::<String>(), dynamodb_json(), 0..4)
                .prop_map(|m| json!(m)),
        ]
    };
    let fields = (
        event_name(),
        created,
        image(),
        image(),
        prop::option::of(any::<String>()),
    );
    check(
        "processor::lambda_json_records",
        fields,
        |(event_name, created, new_image, old_image, sequence)| {
            let body = json!({
                "eventID": "id-1", "eventName": event_name, "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": created,
                    "Keys": {"entity_id": {"S": "e-1"}},
                    "NewImage": new_image, "OldImage": old_image,
                    "SequenceNumber": sequence, "SizeBytes": 100,
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            });
            // An undecodable record fails the whole event before the function runs; a
            // decodable one converts or is set aside.
            if let Ok(record) = serde_json::from_value::<EventRecord>(body) {
                let (updates, skipped) = convert(std::slice::from_ref(&record));
                prop_assert_eq!(updates.len() + skipped.len(), 1);
            }
            Ok(())
        },
    );
}
