//! Property tests of the stream poller's record encoding: an SDK stream record (as
//! GetRecords returns it) becomes the JSON Lambda delivers (`lambda_record`), which must decode
//! into `aws_lambda_events`' `EventRecord` as the poller decodes it, carrying the same images,
//! event name, sequence and time, for arbitrary attribute values.
//!
//! Cases per property: `PROPTEST_CASES` (256 unless set; `make fuzz` sets it high).

use std::collections::HashMap;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodbstreams::primitives::{Blob, DateTime};
use aws_sdk_dynamodbstreams::types::{
    AttributeValue, OperationType, Record, StreamRecord, StreamViewType,
};
use event_sources::streams::lambda_record;
use platform::properties::check;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

const ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/metrics/stream/2026-01-01T00:00:00.000";

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..24)
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        "-?[1-9][0-9]{0,37}(\\.[0-9]{1,10})?(E[+-][0-9]{1,2})?",
        any::<String>(), // the poller passes N through as text, whatever it is
    ]
}

/// Every kind of attribute value GetRecords returns, maps and lists nested a few levels.
fn attribute_value() -> impl Strategy<Value = AttributeValue> {
    let leaf = prop_oneof![
        any::<String>().prop_map(AttributeValue::S),
        number_text().prop_map(AttributeValue::N),
        bytes().prop_map(|b| AttributeValue::B(Blob::new(b))),
        any::<bool>().prop_map(AttributeValue::Bool),
        any::<bool>().prop_map(AttributeValue::Null),
        prop::collection::vec(any::<String>(), 1..4).prop_map(AttributeValue::Ss),
        prop::collection::vec(number_text(), 1..4).prop_map(AttributeValue::Ns),
        prop::collection::vec(bytes().prop_map(Blob::new), 1..4).prop_map(AttributeValue::Bs),
    ];
    leaf.prop_recursive(4, 40, 4, |inner| {
        prop_oneof![
            prop::collection::hash_map(any::<String>(), inner.clone(), 0..4)
                .prop_map(AttributeValue::M),
            prop::collection::vec(inner, 0..4).prop_map(AttributeValue::L),
        ]
    })
}

type Image = HashMap<String, AttributeValue>;

fn image() -> impl Strategy<Value = Option<Image>> {
    prop::option::weighted(
        0.8,
        prop::collection::hash_map(any::<String>(), attribute_value(), 0..5),
    )
}

#[derive(Debug, Clone)]
struct Parts {
    event_id: Option<String>,
    event_name: Option<String>,
    keys: Option<Image>,
    new_image: Option<Image>,
    old_image: Option<Image>,
    sequence: Option<String>,
    size_bytes: Option<i64>,
    created_secs: Option<i64>,
    view: Option<&'static str>,
}

fn parts() -> impl Strategy<Value = Parts> {
    let name = prop_oneof![
        3 => prop::sample::select(vec!["INSERT", "MODIFY", "REMOVE"]).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let view = prop::option::of(prop::sample::select(vec![
        "NEW_IMAGE",
        "OLD_IMAGE",
        "NEW_AND_OLD_IMAGES",
        "KEYS_ONLY",
    ]));
    (
        (
            prop::option::weighted(0.9, "[0-9a-f]{32}"),
            prop::option::weighted(0.9, name),
            image(),
            image(),
            image(),
        ),
        (
            prop::option::of("[0-9]{1,40}"),
            prop::option::weighted(0.9, 0i64..400_000),
            prop::option::weighted(0.9, 0i64..=4_102_444_800),
            view,
        ),
    )
        .prop_map(
            |(
                (event_id, event_name, keys, new_image, old_image),
                (sequence, size_bytes, created_secs, view),
            )| Parts {
                event_id,
                event_name,
                keys,
                new_image,
                old_image,
                sequence,
                size_bytes,
                created_secs,
                view,
            },
        )
}

fn sdk_record(parts: &Parts) -> Record {
    let change = StreamRecord::builder()
        .set_approximate_creation_date_time(parts.created_secs.map(DateTime::from_secs))
        .set_keys(parts.keys.clone())
        .set_new_image(parts.new_image.clone())
        .set_old_image(parts.old_image.clone())
        .set_sequence_number(parts.sequence.clone())
        .set_size_bytes(parts.size_bytes)
        .set_stream_view_type(parts.view.map(StreamViewType::from))
        .build();
    Record::builder()
        .set_event_id(parts.event_id.clone())
        .set_event_name(parts.event_name.as_deref().map(OperationType::from))
        .event_version("1.1")
        .event_source("aws:dynamodb")
        .aws_region("us-east-1")
        .dynamodb(change)
        .build()
}

/// The image as `aws_lambda_events` holds it (an absent image is an empty one).
fn lambda_image(image: &Option<Image>) -> serde_dynamo::Item {
    serde_dynamo::Item::from(image.clone().unwrap_or_default())
}

#[test]
fn sdk_records_become_lambda_records_that_decode_to_the_same_change() {
    check("event_sources::lambda_record", parts(), |parts| {
        let json = lambda_record(&sdk_record(&parts), ARN);
        // As the poller decodes a batch before invoking the function.
        let decoded = serde_json::from_value::<Event>(json!({ "Records": [json] }));
        let complete =
            parts.event_id.is_some() && parts.event_name.is_some() && parts.size_bytes.is_some();
        if !complete {
            // GetRecords always sets these; without one the batch cannot form an event
            // (the poller logs it and, after bisecting, discards the record).
            return Ok(());
        }
        let mut event = decoded.map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
        prop_assert_eq!(event.records.len(), 1);
        let record = event.records.remove(0);
        prop_assert_eq!(Some(&record.event_name), parts.event_name.as_ref());
        prop_assert_eq!(Some(&record.event_id), parts.event_id.as_ref());
        prop_assert_eq!(record.event_source_arn.as_deref(), Some(ARN));
        let change = &record.change;
        prop_assert_eq!(&change.keys, &lambda_image(&parts.keys));
        prop_assert_eq!(&change.new_image, &lambda_image(&parts.new_image));
        prop_assert_eq!(&change.old_image, &lambda_image(&parts.old_image));
        prop_assert_eq!(&change.sequence_number, &parts.sequence);
        prop_assert_eq!(Some(change.size_bytes), parts.size_bytes);
        if let Some(secs) = parts.created_secs {
            prop_assert_eq!(change.approximate_creation_date_time.timestamp(), secs);
        }
        Ok(())
    });
}
