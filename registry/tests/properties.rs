//! Property tests of what clients send on `$default` (`ClientMessage::parse`): whatever arrives,
//! the parser answers with a message or a typed `ClientError` whose reply is valid JSON, never
//! a panic; a ping is always understood.
//!
//! Cases per property: `PROPTEST_CASES` (256 unless set; `make fuzz` sets it high).

use platform::properties::check;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use registry::client_message::{ClientError, ClientMessage, MAX_CLIENT_MESSAGE_BYTES, Reply};
use serde_json::{Map, Value, json};

/// Actions the parser may understand now or soon (DESIGN.md): never generated as "unknown".
const KNOWN_ACTIONS: [&str; 4] = ["ping", "subscribe", "unsubscribe", "snapshot"];

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
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

/// Extra members beside `action` (never an `action` of their own).
fn extra_fields() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(
        any::<String>().prop_filter("not action", |k| k != "action"),
        json_value(),
        0..5,
    )
    .prop_map(|m| m.into_iter().collect())
}

/// The reply a client gets for `body`, when refused, must be JSON with the wire shape.
fn reply_is_well_formed(body: Option<&str>) -> Result<(), TestCaseError> {
    if let Err(error) = ClientMessage::parse(body) {
        let reply: Value = serde_json::from_str(&Reply::from(error).to_json())
            .map_err(|e| TestCaseError::fail(format!("reply is not JSON: {e}")))?;
        prop_assert_eq!(&reply["type"], "ERROR");
        prop_assert!(!reply["message"].as_str().unwrap_or_default().is_empty());
    }
    Ok(())
}

#[test]
fn arbitrary_text_never_panics_and_each_failure_is_typed() {
    let text = prop_oneof![
        any::<String>(),
        // JSON-ish punctuation, so that more inputs get past the first byte.
        "[{}\\[\\]\":,a-z0-9 \\\\tnufl.eE+-]{0,64}",
    ];
    check(
        "registry::parse_arbitrary_text",
        prop::option::of(text),
        |body| {
            let result = ClientMessage::parse(body.as_deref());
            reply_is_well_formed(body.as_deref())?;
            let trimmed = body.as_deref().map(str::trim).unwrap_or_default();
            if trimmed.is_empty() {
                prop_assert_eq!(result, Err(ClientError::Empty));
            } else if trimmed.len() > MAX_CLIENT_MESSAGE_BYTES {
                prop_assert_eq!(result, Err(ClientError::TooLarge(trimmed.len())));
            } else if serde_json::from_str::<Value>(trimmed).is_err() {
                prop_assert!(
                    matches!(result, Err(ClientError::Malformed(_))),
                    "{result:?}"
                );
            }
            Ok(())
        },
    );
}

#[test]
fn arbitrary_json_values_are_answered_by_their_action() {
    check("registry::parse_arbitrary_json", json_value(), |value| {
        let text = value.to_string();
        let result = ClientMessage::parse(Some(&text));
        reply_is_well_formed(Some(&text))?;
        if text.len() > MAX_CLIENT_MESSAGE_BYTES {
            prop_assert_eq!(result, Err(ClientError::TooLarge(text.len())));
            return Ok(());
        }
        match value.get("action") {
            None => prop_assert_eq!(result, Err(ClientError::NoAction)),
            Some(Value::String(action)) if KNOWN_ACTIONS.contains(&action.as_str()) => {}
            Some(Value::String(action)) => {
                prop_assert_eq!(result, Err(ClientError::UnknownAction(action.clone())));
            }
            Some(other) => {
                prop_assert_eq!(result, Err(ClientError::UnknownAction(other.to_string())));
            }
        }
        Ok(())
    });
}

#[test]
fn objects_with_any_action_and_extra_fields_are_parsed_or_refused_by_name() {
    let action = prop_oneof![
        1 => prop::sample::select(KNOWN_ACTIONS.to_vec()).prop_map(str::to_owned),
        4 => any::<String>(),
    ];
    check(
        "registry::parse_any_action",
        (action, extra_fields()),
        |(action, mut fields)| {
            fields.insert("action".to_owned(), Value::String(action.clone()));
            let text = Value::Object(fields).to_string();
            let result = ClientMessage::parse(Some(&text));
            reply_is_well_formed(Some(&text))?;
            if text.len() > MAX_CLIENT_MESSAGE_BYTES {
                prop_assert_eq!(result, Err(ClientError::TooLarge(text.len())));
            } else if action == "ping" {
                prop_assert_eq!(result, Ok(ClientMessage::Ping));
            } else if !KNOWN_ACTIONS.contains(&action.as_str()) {
                prop_assert_eq!(result, Err(ClientError::UnknownAction(action)));
            }
            Ok(())
        },
    );
}

/// A ping written any way JSON allows: members in any order, escapes in the key or the
/// value, whitespace around tokens and around the whole message.
fn ping_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![r#""action""#, r#""\u0061ction""#, r#""act\u0069on""#]);
    let value = prop::sample::select(vec![
        r#""ping""#,
        r#""p\u0069ng""#,
        r#""\u0070\u0069\u006e\u0067""#,
    ]);
    let ws = "[ \t\r\n]{0,3}";
    (ws, key, ws, value, ws, extra_fields(), any::<bool>(), ws).prop_map(
        |(a, key, b, value, c, extra, action_first, d)| {
            let member = format!("{a}{key}{b}:{value}{c}");
            let extra = Value::Object(extra).to_string();
            let extra = &extra[1..extra.len() - 1]; // the members, without braces
            let members = match (extra.is_empty(), action_first) {
                (true, _) => member,
                (false, true) => format!("{member},{extra}"),
                (false, false) => format!("{extra},{member}"),
            };
            format!("{d}{{{members}}}{d}")
        },
    )
}

#[test]
fn a_ping_within_the_limit_is_always_understood() {
    check("registry::valid_ping", ping_text(), |text| {
        let result = ClientMessage::parse(Some(&text));
        if text.trim().len() > MAX_CLIENT_MESSAGE_BYTES {
            prop_assert_eq!(result, Err(ClientError::TooLarge(text.trim().len())));
        } else {
            prop_assert_eq!(result, Ok(ClientMessage::Ping), "{}", text);
        }
        Ok(())
    });
}

#[test]
fn huge_messages_are_refused_by_size_before_parsing() {
    // Up to API Gateway's 128 KB, the most a message can be.
    let filler = prop_oneof![
        Just('x'),
        Just('['),
        Just('{'),
        Just('"'),
        Just('é'),
        any::<char>()
    ];
    let huge = (
        filler,
        MAX_CLIENT_MESSAGE_BYTES + 1..128 * 1024,
        any::<bool>(),
    )
        .prop_map(|(c, len, as_ping)| {
            let pad: String = std::iter::repeat_n(c, len / c.len_utf8() + 1).collect();
            if as_ping {
                json!({"action": "ping", "pad": pad}).to_string()
            } else {
                format!("#{pad}#")
            }
        });
    check("registry::huge_messages", huge, |text| {
        let result = ClientMessage::parse(Some(&text));
        prop_assert_eq!(result, Err(ClientError::TooLarge(text.len())));
        Ok(())
    });
}
