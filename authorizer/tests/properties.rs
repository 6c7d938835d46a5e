//! Property tests of what the authorizer reads from a `$connect` request: token extraction
//! from arbitrary query strings and `Sec-WebSocket-Protocol` lists, and HS256 verification of
//! arbitrary text. Whatever the client sends: a token or none, an identity or a typed
//! rejection, never a panic.
//!
//! Cases per property: `PROPTEST_CASES` (256 unless set; `make fuzz` sets it high).

use std::collections::HashMap;

use authorizer::token::{extract, looks_like_jwt, offered_protocols};
use authorizer::verify::{ClaimRules, Rejection, VerifyError, VerifyingKey, claimed_subject};
use authorizer::{Identity, TokenSource, Verifier};
use aws_lambda_events::query_map::QueryMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use platform::properties::check;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};

const SECRET: &[u8] = b"property-test-secret-0123456789abcdef";

fn now() -> i64 {
    i64::try_from(authorizer::mint::now_epoch_secs()).unwrap()
}

// ---- extraction ----

fn base64url_segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,24}"
}

fn jwt_shaped() -> impl Strategy<Value = String> {
    (
        base64url_segment(),
        base64url_segment(),
        base64url_segment(),
    )
        .prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

/// One offered subprotocol: JWT-shaped, almost JWT-shaped, or anything a header may carry.
fn protocol() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => jwt_shaped(),
        1 => "[a-z0-9.]{1,12}",
        1 => "[A-Za-z0-9_.=+/ -]{0,40}",
        1 => prop::sample::select(vec!["a..c", ".b.c", "a.b.", "a.b.c.d", "a.b", "a+b.c/d.e="]).prop_map(str::to_owned),
    ]
}

/// A `Sec-WebSocket-Protocol` value: a comma-separated list, with odd spacing and empty items,
/// or raw bytes a header may hold (including obs-text, which `to_str` refuses).
fn protocol_header_value() -> impl Strategy<Value = HeaderValue> {
    let list =
        prop::collection::vec((protocol(), "[ \t]{0,2}", "[ \t]{0,2}"), 0..5).prop_map(|items| {
            let text = items
                .iter()
                .map(|(p, before, after)| format!("{before}{p}{after}"))
                .collect::<Vec<_>>()
                .join(",");
            HeaderValue::from_str(&text).expect("visible ASCII and tabs")
        });
    let bytes = prop::collection::vec(
        any::<u8>().prop_filter("a header value byte", |b| {
            *b == b'\t' || (*b >= 0x20 && *b != 0x7f)
        }),
        0..40,
    )
    .prop_map(|b| HeaderValue::from_bytes(&b).expect("no control bytes"));
    prop_oneof![4 => list, 1 => bytes]
}

fn header_name() -> impl Strategy<Value = HeaderName> {
    prop_oneof![
        4 => prop::sample::select(vec!["sec-websocket-protocol", "Sec-WebSocket-Protocol", "SEC-WEBSOCKET-PROTOCOL"]),
        1 => prop::sample::select(vec!["authorization", "x-token", "cookie", "host"]),
    ]
    .prop_map(|name| HeaderName::from_bytes(name.as_bytes()).unwrap())
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec((header_name(), protocol_header_value()), 0..4).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, value);
        }
        map
    })
}

fn query() -> impl Strategy<Value = HashMap<String, Vec<String>>> {
    let key = prop_oneof![
        3 => Just("token".to_owned()),
        1 => prop::sample::select(vec!["Token", "TOKEN", "token ", "tok", "x"]).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let value = prop_oneof![
        jwt_shaped(),
        Just(String::new()),
        "[ \t\n]{1,3}",
        any::<String>(),
    ];
    prop::collection::hash_map(key, prop::collection::vec(value, 0..3), 0..3)
}

#[test]
fn the_token_is_the_query_token_else_the_first_jwt_shaped_subprotocol() {
    check(
        "authorizer::extract",
        (headers(), query()),
        |(headers, query)| {
            let from_query = query
                .get("token")
                .and_then(|values| values.first())
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            let offered: Vec<String> = offered_protocols(&headers).map(str::to_owned).collect();
            let first_jwt = offered.iter().find(|p| looks_like_jwt(p)).cloned();
            let found = extract(&headers, &QueryMap::from(query));
            match (&from_query, &first_jwt, &found) {
                (Some(token), _, Some(found)) => {
                    prop_assert_eq!(found.token(), token.as_str());
                    prop_assert_eq!(found.source(), TokenSource::QueryString);
                    prop_assert_eq!(found.protocol(), None);
                }
                (None, Some(protocol), Some(found)) => {
                    prop_assert_eq!(found.token(), protocol.as_str());
                    prop_assert_eq!(found.source(), TokenSource::Subprotocol);
                    prop_assert_eq!(found.protocol(), Some(protocol.as_str()));
                }
                (None, None, None) => {}
                _ => {
                    return Err(TestCaseError::fail(format!(
                        "query {from_query:?}, first JWT-shaped protocol {first_jwt:?}, extracted {found:?}"
                    )));
                }
            }
            if let Some(found) = &found {
                prop_assert!(!found.token().is_empty());
                prop_assert_eq!(found.token().trim(), found.token());
                if found.token().len() > 64 {
                    prop_assert!(
                        !format!("{found:?}").contains(found.token()),
                        "Debug shows the token"
                    );
                }
            }
            Ok(())
        },
    );
}

#[test]
fn offered_protocols_are_every_non_empty_trimmed_item_in_order() {
    check("authorizer::offered_protocols", headers(), |headers| {
        let expected: Vec<String> = headers
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        let got: Vec<String> = offered_protocols(&headers).map(str::to_owned).collect();
        prop_assert_eq!(got, expected);
        Ok(())
    });
}

#[test]
fn jwt_shape_is_three_non_empty_base64url_segments() {
    let text = prop_oneof![
        jwt_shaped(),
        protocol(),
        any::<String>(),
        "[A-Za-z0-9_.=-]{0,12}"
    ];
    check("authorizer::looks_like_jwt", text, |text| {
        let segments: Vec<&str> = text.split('.').collect();
        let expected = segments.len() == 3
            && segments.iter().all(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        prop_assert_eq!(looks_like_jwt(&text), expected);
        Ok(())
    });
}

// ---- verification ----

struct Harness {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
}

impl Harness {
    /// An HS256-only verifier, as a deployment with `AUTH_JWT_SECRET` and no JWKS has.
    fn new() -> Self {
        Self {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            verifier: Verifier::new(
                Some(VerifyingKey::hs256(SECRET).unwrap()),
                None,
                ClaimRules::default(),
            ),
        }
    }

    fn verify(&self, token: &str) -> Result<Identity, VerifyError> {
        self.runtime.block_on(self.verifier.verify(token))
    }

    /// A refusal, and (with no JWKS) never "keys unavailable".
    fn rejection(&self, token: &str) -> Result<Rejection, TestCaseError> {
        match self.verify(token) {
            Err(VerifyError::Rejected(rejection)) => {
                prop_assert!(!rejection.code().is_empty());
                Ok(rejection)
            }
            other => Err(TestCaseError::fail(format!("{token:?} gave {other:?}"))),
        }
    }
}

fn sign(header: &Header, claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn arbitrary_text_is_refused_with_a_typed_rejection() {
    let harness = Harness::new();
    let text = prop_oneof![any::<String>(), "[A-Za-z0-9_.=+/ -]{0,80}", jwt_shaped()];
    check("authorizer::verify_arbitrary_text", text, |token| {
        harness.rejection(&token)?;
        let _ = claimed_subject(&token);
        Ok(())
    });
}

#[test]
fn three_part_tokens_with_any_header_are_refused_by_kind() {
    let harness = Harness::new();
    let alg = prop_oneof![
        prop::sample::select(vec![
            "HS256", "HS384", "HS512", "RS256", "ES256", "none", "hs256", ""
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    let header = prop_oneof![
        3 => (alg, prop::option::of(any::<String>()))
            .prop_map(|(alg, kid)| b64(&json!({"alg": alg, "kid": kid, "typ": "JWT"}))),
        1 => any::<Vec<u8>>().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        1 => base64url_segment(),
        1 => any::<String>().prop_map(|s| s.replace('.', "")),
    ];
    let payload = prop_oneof![
        json_object().prop_map(|o| b64(&Value::Object(o))),
        base64url_segment(),
        any::<String>().prop_map(|s| s.replace('.', "")),
    ];
    let signature = prop_oneof![
        base64url_segment(),
        Just(String::new()),
        any::<Vec<u8>>().prop_map(|b| URL_SAFE_NO_PAD.encode(b))
    ];
    check(
        "authorizer::verify_three_part_tokens",
        (header, payload, signature),
        |(header, payload, signature)| {
            let token = format!("{header}.{payload}.{signature}");
            let rejection = harness.rejection(&token)?;
            // The algorithm is the configuration's: a header naming another one is refused
            // before any key is used.
            let named = URL_SAFE_NO_PAD
                .decode(&header)
                .ok()
                .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
                .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned));
            if let Some(alg) = named
                && alg != "HS256"
            {
                prop_assert!(
                    matches!(rejection, Rejection::AlgorithmNotAllowed(_)),
                    "{rejection:?}"
                );
            }
            Ok(())
        },
    );
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
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

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

/// Claims a signed token may carry: the ones the verifier reads, each well-formed or not,
/// and others it ignores.
fn claims() -> impl Strategy<Value = Map<String, Value>> {
    let sub = prop_oneof![
        "[a-z]{1,12}".prop_map(Value::String),
        Just(json!(" ")),
        Just(json!("")),
        any::<String>().prop_map(Value::String),
        json_value(),
    ];
    let exp = prop_oneof![
        (60i64..86_400).prop_map(|d| json!(now() + d)),
        (120i64..86_400).prop_map(|d| json!(now() - d)),
        json_value(),
    ];
    let entity_types = prop_oneof![
        prop::collection::vec("[a-z]{1,8}", 1..4).prop_map(|t| json!(t)),
        "[a-z, ]{0,20}".prop_map(Value::String),
        prop::collection::vec(any::<String>(), 0..3).prop_map(|t| json!(t)),
        json_value(),
    ];
    (
        prop::option::of(sub),
        prop::option::of(exp),
        prop::option::of(entity_types),
        json_object(),
    )
        .prop_map(|(sub, exp, entity_types, mut claims)| {
            for (name, value) in [("sub", sub), ("exp", exp), ("entity_types", entity_types)] {
                match value {
                    Some(value) => claims.insert(name.to_owned(), value),
                    None => claims.remove(name),
                };
            }
            claims.remove("nbf");
            claims
        })
}

/// What the verifier must make of `claims` when the signature is good.
fn expected_identity(claims: &Map<String, Value>) -> Option<Identity> {
    let subject = claims.get("sub")?.as_str()?.trim().to_owned();
    let exp = claims.get("exp")?.as_i64()?;
    if subject.is_empty() || exp <= now() {
        return None;
    }
    let entity_types = match claims.get("entity_types") {
        None | Some(Value::Null) => None,
        Some(Value::String(csv)) => Some(csv.split(',').map(str::to_owned).collect::<Vec<_>>()),
        Some(Value::Array(items)) => {
            let items: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            let items = items?;
            if items.iter().any(|i| i.contains(',')) {
                return None;
            }
            Some(items)
        }
        Some(_) => return None,
    };
    let entity_types = match entity_types {
        None => None,
        Some(items) => {
            let types: Vec<String> = items
                .iter()
                .map(|i| i.trim())
                .filter(|i| !i.is_empty())
                .map(str::to_owned)
                .collect();
            if types.is_empty() {
                return None;
            }
            Some(types)
        }
    };
    Some(Identity {
        subject,
        entity_types,
    })
}

#[test]
fn signed_tokens_with_any_claims_give_their_identity_or_a_rejection() {
    let harness = Harness::new();
    check("authorizer::verify_signed_claims", claims(), |claims| {
        let token = sign(
            &Header::new(Algorithm::HS256),
            &Value::Object(claims.clone()),
            SECRET,
        );
        match (harness.verify(&token), expected_identity(&claims)) {
            (Ok(identity), Some(expected)) => prop_assert_eq!(identity, expected),
            (Err(VerifyError::Rejected(_)), None) => {}
            (got, expected) => {
                return Err(TestCaseError::fail(format!(
                    "got {got:?}, expected {expected:?}"
                )));
            }
        }
        Ok(())
    });
}

#[test]
fn a_good_token_altered_anywhere_or_signed_with_another_key_is_refused() {
    let harness = Harness::new();
    let good = || json!({"sub": "alice", "exp": now() + 3600});
    let alteration = (any::<prop::sample::Index>(), "[A-Za-z0-9_-]", any::<bool>());
    check(
        "authorizer::verify_altered_tokens",
        alteration,
        |(at, replacement, other_key)| {
            let token = if other_key {
                sign(
                    &Header::new(Algorithm::HS256),
                    &good(),
                    b"another-secret-0123456789abcdefgh",
                )
            } else {
                let token = sign(&Header::new(Algorithm::HS256), &good(), SECRET);
                let i = at.index(token.len());
                let original = &token[i..=i];
                // Only a real change: the same text is the same valid token.
                prop_assume!(original != replacement && original != ".");
                format!("{}{replacement}{}", &token[..i], &token[i + 1..])
            };
            let rejection = harness.rejection(&token)?;
            if other_key {
                prop_assert_eq!(rejection, Rejection::BadSignature);
            }
            Ok(())
        },
    );
}

#[test]
fn ttl_text_never_panics() {
    check(
        "authorizer::parse_ttl",
        prop_oneof![any::<String>(), "[0-9]{0,25}[smhdw]?"],
        |text| {
            if authorizer::mint::parse_ttl(&text).is_ok() {
                prop_assert!(text.trim().starts_with(|c: char| c.is_ascii_digit()));
            }
            Ok(())
        },
    );
}
