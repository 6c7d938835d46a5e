//! Property tests of `FanoutJob::decode`, which reads SQS message bodies: whatever the body,
//! a job or a typed `JobError`, never a panic; every job `encode` makes decodes to itself.
//!
//! Cases per property: `PROPTEST_CASES` (256 unless set; `make fuzz` sets it high).

use jobs::{FanoutJob, JobError, job::VERSION};
use platform::properties::check;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Connection ids: API Gateway's shape most of the time, anything at all otherwise.
fn connection_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9+/]{15}=",
        1 => any::<String>(),
    ]
}

fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a Value serializes to valid JSON")
}

/// A decode failure is one of the kinds `decode` documents; `TooLarge` is for `encode` only.
fn is_decode_error(error: &JobError) -> bool {
    matches!(
        error,
        JobError::Malformed(_) | JobError::UnknownVersion { .. } | JobError::Empty(_)
    )
}

#[test]
fn arbitrary_bodies_decode_or_fail_with_a_reason() {
    let body = prop_oneof![
        any::<String>(),
        "[{}\\[\\]\":,0-9 vpartsconectidbrdAEQ-]{0,80}",
        json_value().prop_map(|v| v.to_string()),
    ];
    check("jobs::decode_arbitrary_bodies", body, |body| {
        if let Err(error) = FanoutJob::decode(&body) {
            prop_assert!(is_decode_error(&error), "{error:?}");
            prop_assert!(!error.to_string().is_empty());
        }
        Ok(())
    });
}

#[test]
fn any_version_but_this_one_is_refused_as_unknown() {
    let other = any::<u64>().prop_filter("not this version", |v| *v != u64::from(VERSION));
    check(
        "jobs::decode_unknown_versions",
        (
            other,
            prop::collection::btree_map(any::<String>(), json_value(), 0..4),
        ),
        |(v, rest)| {
            let mut body: Map<String, Value> = rest.into_iter().collect();
            body.insert("v".to_owned(), json!(v));
            let decoded = FanoutJob::decode(&Value::Object(body).to_string());
            prop_assert_eq!(decoded.unwrap_err(), JobError::UnknownVersion { found: v });
            Ok(())
        },
    );
}

/// A body with every field of a version-1 job, each of the right type, in any order, with
/// members decode does not know, and possibly no parts or no connections.
#[derive(Debug, Clone)]
struct Fields {
    broadcast_id: String,
    attempt: u32,
    enqueued_at: i64,
    parts: Vec<Value>,
    connections: Vec<String>,
    unknown: Vec<(String, Value)>,
}

fn fields() -> impl Strategy<Value = Fields> {
    let known = [
        "v",
        "broadcastId",
        "attempt",
        "enqueuedAt",
        "parts",
        "connections",
    ];
    (
        any::<String>(),
        any::<u32>(),
        any::<i64>(),
        prop::collection::vec(json_value(), 0..4),
        prop::collection::vec(connection_id(), 0..20),
        prop::collection::vec(
            (
                any::<String>().prop_filter("unknown", move |k| !known.contains(&k.as_str())),
                json_value(),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(broadcast_id, attempt, enqueued_at, parts, connections, unknown)| Fields {
                broadcast_id,
                attempt,
                enqueued_at,
                parts,
                connections,
                unknown,
            },
        )
}

#[test]
fn structurally_valid_bodies_decode_to_their_fields() {
    check(
        "jobs::decode_valid_structures",
        (fields(), any::<prop::sample::Index>()),
        |(f, rotate)| {
            let mut members: Vec<(String, Value)> = vec![
                ("v".into(), json!(VERSION)),
                ("broadcastId".into(), json!(f.broadcast_id)),
                ("attempt".into(), json!(f.attempt)),
                ("enqueuedAt".into(), json!(f.enqueued_at)),
                ("parts".into(), Value::Array(f.parts.clone())),
                ("connections".into(), json!(f.connections)),
            ];
            members.extend(f.unknown.iter().cloned());
            // Member order must not matter: rotate them (serde_json keeps insertion order
            // only with preserve_order, so the body is written by hand).
            let by = rotate.index(members.len());
            members.rotate_left(by);
            let body = format!(
                "{{{}}}",
                members
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let decoded = FanoutJob::decode(&body);
            if f.parts.is_empty() {
                prop_assert_eq!(decoded.unwrap_err(), JobError::Empty("parts"));
                return Ok(());
            }
            if f.connections.is_empty() {
                prop_assert_eq!(decoded.unwrap_err(), JobError::Empty("connections"));
                return Ok(());
            }
            let job = decoded.map_err(|e| TestCaseError::fail(format!("{e}: {body}")))?;
            prop_assert_eq!(job.v, VERSION);
            prop_assert_eq!(&job.broadcast_id, &f.broadcast_id);
            prop_assert_eq!(job.attempt, f.attempt);
            prop_assert_eq!(job.enqueued_at, f.enqueued_at);
            prop_assert_eq!(&job.connections, &f.connections);
            let parts: Vec<String> = job.parts.iter().map(|p| p.get().to_owned()).collect();
            let expected: Vec<String> = f.parts.iter().map(Value::to_string).collect();
            prop_assert_eq!(parts, expected, "parts are kept byte for byte");
            Ok(())
        },
    );
}

/// A version-1 body with every field right.
fn good_body() -> Value {
    json!({
        "v": VERSION, "broadcastId": "b-1", "attempt": 0, "enqueuedAt": 0,
        "parts": [{"type": "METRICS_UPDATE"}], "connections": ["a="]
    })
}

#[test]
fn a_field_of_the_wrong_type_is_malformed() {
    // Each required field replaced by a value its type does not take.
    let values = [
        Value::Null,
        json!(true),
        json!(-1),
        json!(1.5),
        json!("text"),
        json!({}),
        json!([1]),
        json!(u64::MAX),
    ];
    let fields = [
        "broadcastId",
        "attempt",
        "enqueuedAt",
        "parts",
        "connections",
    ];
    let takes = |field: &str, value: &Value| match (field, value) {
        ("broadcastId", Value::String(_)) => true,
        ("attempt", Value::Number(n)) => n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)),
        ("enqueuedAt", Value::Number(n)) => n.as_i64().is_some(),
        ("parts", Value::Array(_)) => true, // any JSON value is a part
        _ => false,
    };
    let mut wrong = Vec::new();
    for field in fields {
        for value in &values {
            if !takes(field, value) {
                wrong.push((field, value.clone()));
            }
        }
    }
    check(
        "jobs::decode_wrong_types",
        prop::sample::select(wrong),
        |(field, value)| {
            let mut body = good_body();
            body[field] = value;
            let decoded = FanoutJob::decode(&body.to_string());
            prop_assert!(
                matches!(decoded, Err(JobError::Malformed(_))),
                "{decoded:?}"
            );
            Ok(())
        },
    );
}

#[test]
fn every_encoded_job_decodes_to_itself() {
    let job = (
        any::<String>(),
        any::<u32>(),
        any::<i64>(),
        prop::collection::vec(json_value(), 1..4),
        prop::collection::vec(connection_id(), 1..20),
    );
    check(
        "jobs::encode_decode_round_trip",
        job,
        |(broadcast_id, attempt, enqueued_at, parts, connections)| {
            let mut job = FanoutJob::new(
                broadcast_id,
                enqueued_at,
                parts.iter().map(raw).collect(),
                connections,
            );
            job.attempt = attempt;
            let body = job.encode(usize::MAX).expect("no limit");
            let back = FanoutJob::decode(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back.broadcast_id, &job.broadcast_id);
            prop_assert_eq!(back.attempt, job.attempt);
            prop_assert_eq!(back.enqueued_at, job.enqueued_at);
            prop_assert_eq!(&back.connections, &job.connections);
            let texts = |j: &FanoutJob| {
                j.parts
                    .iter()
                    .map(|p| p.get().to_owned())
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(texts(&back), texts(&job));
            // Encoding is deterministic, and the size limit is exact.
            prop_assert_eq!(back.encode(usize::MAX).unwrap(), body.clone());
            prop_assert!(job.encode(body.len()).is_ok());
            prop_assert_eq!(
                job.encode(body.len() - 1).unwrap_err(),
                JobError::TooLarge {
                    size: body.len(),
                    max: body.len() - 1
                }
            );
            // A retry is one attempt later and decodes as such.
            if attempt < u32::MAX {
                let retry = job.retry(0, job.connections.clone());
                let again = FanoutJob::decode(&retry.encode(usize::MAX).unwrap())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(again.attempt, attempt + 1);
            }
            Ok(())
        },
    );
}

#[test]
fn id_overhead_is_exact_for_gateway_ids_and_a_lower_bound_otherwise() {
    // The processor packs shards with `id_overhead`: for API Gateway's ids (no JSON escapes)
    // it must be exact; ids that need escaping grow the body by more.
    check(
        "jobs::id_overhead",
        (
            prop::collection::vec(connection_id(), 1..10),
            connection_id(),
        ),
        |(ids, extra)| {
            let part = raw(&json!({"type": "METRICS_UPDATE"}));
            let mut job = FanoutJob::new("b-1", 0, vec![part], ids);
            let before = job.encode(usize::MAX).unwrap().len();
            job.connections.push(extra.clone());
            let growth = job.encode(usize::MAX).unwrap().len() - before;
            let needs_escape = extra.chars().any(|c| c == '"' || c == '\\' || c < ' ');
            if needs_escape {
                prop_assert!(growth > FanoutJob::id_overhead(&extra));
            } else {
                prop_assert_eq!(growth, FanoutJob::id_overhead(&extra));
            }
            Ok(())
        },
    );
}
