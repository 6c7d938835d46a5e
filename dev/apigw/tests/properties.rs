//! Property tests of what the emulator parses from clients, through real sockets: the
//! handshake's query string (into `$connect`'s and the authorizer's query maps) and message
//! bodies (route selection on `$request.body.action`). Whatever a client sends, the handshake
//! completes with the query decoded as API Gateway decodes it, and each message reaches the
//! route its `action` names, else `$default`.
//!
//! Cases per property: `PROPTEST_CASES` (256 unless set; `make fuzz` sets it high), at most
//! 2,000 here: each case is a real handshake or message.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use apigw::{ConnectAuthorizer, Gateway, GatewayConfig, authorizer_fn, handler_fn, proxy_response};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt as _, StreamExt as _};
use platform::properties::check_at_most;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(5);
/// Each case costs a socket round trip; more would only exhaust ephemeral ports.
const MAX_CASES: u32 = 2_000;
const ROUTE_KEYS: [&str; 2] = ["ping", "subscribe"];

/// A gateway whose `$connect` and authorizer report their events, and whose message routes
/// answer `{route}:{body}`.
struct Harness {
    runtime: tokio::runtime::Runtime,
    gateway: Gateway,
    connects: Mutex<mpsc::UnboundedReceiver<ApiGatewayWebsocketProxyRequest>>,
    authorizations: Mutex<mpsc::UnboundedReceiver<Value>>,
}

/// The query maps of one handshake, as `$connect` and the authorizer received them.
#[derive(Debug)]
struct Seen {
    single: HashMap<String, String>,
    multi: HashMap<String, Vec<String>>,
    authorizer_single: Value,
    authorizer_multi: Value,
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (connect_tx, connects) = mpsc::unbounded_channel();
        let (auth_tx, authorizations) = mpsc::unbounded_channel();
        let routes = handler_fn(move |event: ApiGatewayWebsocketProxyRequest| {
            let connect_tx = connect_tx.clone();
            async move {
                let route = event.request_context.route_key.clone().unwrap_or_default();
                let body = event.body.clone().unwrap_or_default();
                match route.as_str() {
                    "$connect" => {
                        let _ = connect_tx.send(event);
                        Ok(proxy_response(200, None))
                    }
                    "$disconnect" => Ok(proxy_response(200, None)),
                    _ => Ok(proxy_response(200, Some(format!("{route}:{body}")))),
                }
            }
        });
        let authorizer = authorizer_fn(move |event: Value| {
            let auth_tx = auth_tx.clone();
            async move {
                let arn = event["methodArn"].clone();
                let _ = auth_tx.send(event);
                Ok(json!({
                    "principalId": "property",
                    "policyDocument": {"Version": "2012-10-17", "Statement": [{
                        "Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn,
                    }]},
                }))
            }
        });
        let config = GatewayConfig {
            route_keys: ROUTE_KEYS.iter().map(|k| (*k).to_owned()).collect(),
            authorizer: Some(ConnectAuthorizer::new(authorizer)),
            ..GatewayConfig::default()
        };
        let gateway = runtime
            .block_on(Gateway::bind(
                "127.0.0.1:0".parse().unwrap(),
                config,
                routes,
            ))
            .unwrap();
        Self {
            runtime,
            gateway,
            connects: Mutex::new(connects),
            authorizations: Mutex::new(authorizations),
        }
    }

    /// Opens a socket with `?{query}`, returns what `$connect` and the authorizer saw, and
    /// closes it. `None` when the client library refuses the URL itself.
    fn handshake(&self, query: &str) -> Result<Option<Seen>, TestCaseError> {
        let url = format!("{}?{query}", self.gateway.ws_url());
        if url.as_str().into_client_request().is_err() {
            return Ok(None);
        }
        let mut connects = self.connects.lock().unwrap();
        let mut authorizations = self.authorizations.lock().unwrap();
        while connects.try_recv().is_ok() || authorizations.try_recv().is_ok() {}
        self.runtime.block_on(async {
            let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| TestCaseError::fail(format!("handshake with ?{query} failed: {e}")))?;
            let event = tokio::time::timeout(WAIT, connects.recv()).await;
            let auth = tokio::time::timeout(WAIT, authorizations.recv()).await;
            let _ = socket.close(None).await;
            while let Ok(Some(_)) = tokio::time::timeout(WAIT, socket.next()).await {}
            let (Ok(Some(event)), Ok(Some(auth))) = (event, auth) else {
                return Err(TestCaseError::fail("no $connect or authorizer event"));
            };
            // What the Lambda runtime would send the function must serialize.
            serde_json::to_value(&event).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let single = event
                .query_string_parameters
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let mut multi: HashMap<String, Vec<String>> = HashMap::new();
            for (k, v) in event.multi_value_query_string_parameters.iter() {
                multi.entry(k.to_owned()).or_default().push(v.to_owned());
            }
            Ok(Some(Seen {
                single,
                multi,
                authorizer_single: auth["queryStringParameters"].clone(),
                authorizer_multi: auth["multiValueQueryStringParameters"].clone(),
            }))
        })
    }
}

/// The last value of each key (API Gateway's `queryStringParameters`) and all values in order
/// (`multiValueQueryStringParameters`).
fn maps(pairs: &[(String, String)]) -> (HashMap<String, String>, HashMap<String, Vec<String>>) {
    let mut single = HashMap::new();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in pairs {
        single.insert(k.clone(), v.clone());
        multi.entry(k.clone()).or_default().push(v.clone());
    }
    (single, multi)
}

fn seen_matches(seen: &Seen, pairs: &[(String, String)]) -> Result<(), TestCaseError> {
    let (single, multi) = maps(pairs);
    prop_assert_eq!(&seen.single, &single);
    // The order of values within a key is kept.
    prop_assert_eq!(&seen.multi, &multi);
    prop_assert_eq!(&seen.authorizer_single, &json!(single));
    if multi.is_empty() {
        // No query string at all: the maps are empty or absent.
        let empty = seen.authorizer_multi.is_null() || seen.authorizer_multi == json!({});
        prop_assert!(empty, "{}", seen.authorizer_multi);
    } else {
        prop_assert_eq!(&seen.authorizer_multi, &json!(multi));
    }
    Ok(())
}

/// Bytes, mostly printable ASCII, percent-encoded (unreserved ones sometimes left as they are,
/// hex digits in either case): the text a client sends and the bytes it means.
fn component() -> impl Strategy<Value = (Vec<u8>, String)> {
    let byte = prop_oneof![3 => 0x20u8..0x7f, 1 => any::<u8>()];
    prop::collection::vec((byte, any::<bool>(), any::<bool>()), 0..10).prop_map(|bytes| {
        let mut text = String::new();
        for (b, literal, lower) in &bytes {
            if *literal && (b.is_ascii_alphanumeric() || b"-._~".contains(b)) {
                text.push(char::from(*b));
            } else if *lower {
                write!(text, "%{b:02x}").unwrap();
            } else {
                write!(text, "%{b:02X}").unwrap();
            }
        }
        (bytes.into_iter().map(|(b, ..)| b).collect(), text)
    })
}

#[test]
fn encoded_query_parameters_arrive_decoded_in_both_maps() {
    let harness = Harness::start();
    let pair = (component(), component(), any::<bool>(), any::<bool>());
    check_at_most(
        "apigw::query_round_trip",
        MAX_CASES,
        prop::collection::vec(pair, 0..5),
        |pairs| {
            let mut segments = Vec::new();
            let mut expected = Vec::new();
            for ((key, key_text), (value, value_text), equals, doubled) in &pairs {
                let segment = if *equals || !value_text.is_empty() {
                    format!("{key_text}={value_text}")
                } else {
                    key_text.clone()
                };
                if !segment.is_empty() {
                    expected.push((
                        String::from_utf8_lossy(key).into_owned(),
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                }
                segments.push(segment);
                if *doubled {
                    segments.push(String::new()); // `a=1&&b=2`
                }
            }
            let query = segments.join("&");
            let seen = harness
                .handshake(&query)?
                .ok_or_else(|| TestCaseError::fail(format!("the client refused ?{query}")))?;
            seen_matches(&seen, &expected)
        },
    );
}

#[test]
fn any_query_string_completes_the_handshake_with_consistent_maps() {
    let harness = Harness::start();
    let query = prop_oneof![
        "[A-Za-z0-9._~!$&'()*+,;=:@/?%-]{0,60}",
        "(%[0-9a-fA-F]{2}|%[g-z]?|[a-z=&])*",
        "(%[89a-fA-F][0-9a-fA-F]|[&=])*", // bytes that are not UTF-8 on their own
    ];
    check_at_most("apigw::query_any", MAX_CASES, query, |query| {
        let Some(seen) = harness.handshake(&query)? else {
            return Err(TestCaseError::reject("not a URL the client sends"));
        };
        let segments = query.split('&').filter(|s| !s.is_empty()).count();
        prop_assert_eq!(seen.multi.values().map(Vec::len).sum::<usize>(), segments);
        let mut single_keys: Vec<&String> = seen.single.keys().collect();
        let mut multi_keys: Vec<&String> = seen.multi.keys().collect();
        single_keys.sort();
        multi_keys.sort();
        prop_assert_eq!(single_keys, multi_keys);
        for (key, values) in &seen.multi {
            prop_assert_eq!(
                Some(&seen.single[key]),
                values.last(),
                "the last value wins"
            );
        }
        prop_assert_eq!(&seen.authorizer_single, &json!(seen.single));
        Ok(())
    });
}

/// The route API Gateway selects with `$request.body.action`.
fn expected_route(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("action")?.as_str().map(str::to_owned))
        .filter(|action| ROUTE_KEYS.contains(&action.as_str()))
        .unwrap_or_else(|| "$default".to_owned())
}

fn body() -> impl Strategy<Value = String> {
    let action = prop_oneof![
        prop::sample::select(vec!["ping", "subscribe", "snapshot", "Ping", " ping", ""])
            .prop_map(|a| json!(a)),
        any::<String>().prop_map(Value::String),
        Just(json!(1)),
        Just(json!(null)),
        Just(json!(["ping"])),
        Just(json!({"action": "ping"})),
    ];
    let object = (
        action,
        prop::collection::btree_map("[a-z]{1,6}", any::<String>(), 0..3),
        "[ \n]{0,2}",
    )
        .prop_map(|(action, extra, pad)| {
            let mut members: serde_json::Map<String, Value> = extra
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            members.insert("action".to_owned(), action);
            format!("{pad}{}{pad}", Value::Object(members))
        });
    prop_oneof![3 => object, 1 => any::<String>(), 1 => "[{}\":a-z ]{0,24}"]
}

#[test]
fn every_message_reaches_the_route_its_action_names_else_default() {
    let harness = Harness::start();
    let socket: Mutex<Ws> = Mutex::new(
        harness
            .runtime
            .block_on(tokio_tungstenite::connect_async(harness.gateway.ws_url()))
            .unwrap()
            .0,
    );
    let frame = prop_oneof![
        4 => body().prop_map(|b| (b, false)),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| (STANDARD.encode(&b), true)),
    ];
    check_at_most(
        "apigw::route_selection",
        MAX_CASES,
        frame,
        |(body, binary)| {
            let mut socket = socket.lock().unwrap();
            let expected = if binary {
                format!("$default:{body}")
            } else {
                format!("{}:{body}", expected_route(&body))
            };
            let message = if binary {
                Message::binary(STANDARD.decode(&body).unwrap())
            } else {
                Message::text(body.clone())
            };
            let reply = harness.runtime.block_on(async {
                socket
                    .send(message)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                loop {
                    match tokio::time::timeout(WAIT, socket.next()).await {
                        Ok(Some(Ok(Message::Text(text)))) => return Ok(text.as_str().to_owned()),
                        Ok(Some(Ok(_))) => {}
                        other => {
                            return Err(TestCaseError::fail(format!("no reply: {other:?}")));
                        }
                    }
                }
            })?;
            prop_assert_eq!(reply, expected);
            Ok(())
        },
    );
}
