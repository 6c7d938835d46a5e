use serde_json::{Value, json};

use super::*;
use crate::test_support::*;
use crate::token::TokenSource;
use crate::verify::ClaimRules;

const ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/$connect";
const CONNECTION_ID: &str = "SfNSZdsFoAMCJrw=";

/// A `$connect` REQUEST authorizer event as API Gateway sends it for a WebSocket API
/// (identity sources: none, so both maps arrive; header names as the client sent them).
fn connect_event(query: Option<&str>, protocols: Option<&str>) -> Value {
    let mut headers = json!({
        "Host": "abcdef123.execute-api.eu-west-1.amazonaws.com",
        "Origin": "https://dashboards.example",
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "User-Agent": "Mozilla/5.0",
        "X-Amzn-Trace-Id": "Root=1-65c66ea0-0e5d7c7a3c1f2a1b4d6e8f90",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    });
    if let Some(protocols) = protocols {
        headers["Sec-WebSocket-Protocol"] = json!(protocols);
    }
    let multi_headers: serde_json::Map<String, Value> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    let mut params = json!({"entityTypes": "stream"});
    if let Some(token) = query {
        params["token"] = json!(token);
    }
    let multi_params: serde_json::Map<String, Value> = params
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({
        "type": "REQUEST",
        "methodArn": ARN,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": params,
        "multiValueQueryStringParameters": multi_params,
        "stageVariables": {},
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "extendedRequestId": "SfNSZH1xoAMFxCw=",
            "requestTime": "09/Feb/2024:18:23:28 +0000",
            "messageDirection": "IN",
            "stage": "prod",
            "connectedAt": 1707503008381u64,
            "requestTimeEpoch": 1707503008381u64,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "Mozilla/5.0"},
            "requestId": "SfNSZH1xoAMFxCw=",
            "domainName": "abcdef123.execute-api.eu-west-1.amazonaws.com",
            "connectionId": CONNECTION_ID,
            "apiId": "abcdef123"
        }
    })
}

fn event(query: Option<&str>, protocols: Option<&str>) -> ConnectAuthEvent {
    serde_json::from_value(connect_event(query, protocols)).unwrap()
}

fn token_with_types() -> String {
    let mut claims = claims("alice");
    claims["entity_types"] = json!(["stream", "batch"]);
    hs256(&claims)
}

#[test]
fn deserializes_a_websocket_connect_authorizer_event() {
    let text = connect_event(Some("abc"), Some("chat, v1")).to_string();
    let event: ConnectAuthEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(event.request.method_arn.as_deref(), Some(ARN));
    assert_eq!(event.request.type_.as_deref(), Some("REQUEST"));
    assert_eq!(event.request.request_context.stage.as_deref(), Some("prod"));
    assert_eq!(
        event.request.query_string_parameters.first("token"),
        Some("abc")
    );
    assert_eq!(
        event.request.headers.get("sec-websocket-protocol").unwrap(),
        "chat, v1"
    );
    assert_eq!(
        event.connection,
        ConnectionInfo {
            connection_id: Some(CONNECTION_ID.into()),
            route_key: Some("$connect".into()),
            event_type: Some("CONNECT".into()),
        }
    );
}

#[tokio::test]
async fn allow_from_query_string_with_the_exact_response_shape() {
    let verifier = hs256_verifier(ClaimRules::default());
    let answer = authorize(&verifier, &event(Some(&token_with_types()), None))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({
            "principalId": "alice",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": ["execute-api:Invoke"],
                    "Effect": "Allow",
                    "Resource": [ARN],
                }],
            },
            "context": {"subject": "alice", "entityTypes": "stream,batch"},
            "usageIdentifierKey": null,
        })
    );
}

#[tokio::test]
async fn allow_from_subprotocol_among_several_offered() {
    let token = token_with_types();
    let offered = format!("graphql-ws, {token}, metrics.v1");
    let event = event(None, Some(&offered));
    let verifier = hs256_verifier(ClaimRules::default());
    let Decision::Allow {
        identity,
        token: found,
    } = decide(&verifier, &event.request).await
    else {
        panic!("expected an Allow");
    };
    assert_eq!(identity.subject, "alice");
    assert_eq!(found.source(), TokenSource::Subprotocol);
    assert_eq!(found.protocol(), Some(token.as_str()));
    let answer = authorize(&verifier, &event).await.unwrap();
    assert_eq!(answer.principal_id.as_deref(), Some("alice"));
}

#[tokio::test]
async fn missing_token_is_unauthorized() {
    let verifier = hs256_verifier(ClaimRules::default());
    let error = authorize(&verifier, &event(None, Some("chat")))
        .await
        .unwrap_err();
    assert_eq!(error, AuthorizerError::Unauthorized);
    // What the Lambda runtime reports, and API Gateway turns into a 401.
    assert_eq!(
        serde_json::to_value(Diagnostic::from(error)).unwrap(),
        json!({"errorType": "Unauthorized", "errorMessage": "Unauthorized"})
    );
}

#[tokio::test]
async fn invalid_token_is_a_deny() {
    let mut claims = claims("alice");
    claims["exp"] = json!(now() - 3600);
    let verifier = hs256_verifier(ClaimRules::default());
    let answer = authorize(&verifier, &event(Some(&hs256(&claims)), None))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        json!({
            "principalId": "anonymous",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Action": ["execute-api:Invoke"],
                    "Effect": "Deny",
                    "Resource": [ARN],
                }],
            },
            "context": {},
            "usageIdentifierKey": null,
        })
    );
}

#[tokio::test]
async fn unavailable_keys_are_an_error_not_a_deny() {
    let source = MemoryJwks::new(jwks_keys());
    source.set_down(true);
    let verifier = jwks_verifier(&source, false);
    let token = rs256("rsa-1", &claims("alice"));
    let error = authorize(&verifier, &event(Some(&token), None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, AuthorizerError::KeysUnavailable(_)),
        "{error:?}"
    );
    assert_eq!(Diagnostic::from(error).error_type, "KeysUnavailable");
}

#[tokio::test]
async fn missing_method_arn_is_an_error() {
    let mut value = connect_event(Some(&token_with_types()), None);
    value.as_object_mut().unwrap().remove("methodArn");
    let event: ConnectAuthEvent = serde_json::from_value(value).unwrap();
    let verifier = hs256_verifier(ClaimRules::default());
    assert_eq!(
        authorize(&verifier, &event).await.unwrap_err(),
        AuthorizerError::MissingMethodArn
    );
}

#[tokio::test]
async fn each_decision_is_one_log_line_without_the_token() {
    let capture = LogCapture::start();
    let verifier = hs256_verifier(ClaimRules::default());
    let good = token_with_types();
    let bad = hs256(&json!({"sub": "mallory", "exp": now() - 3600}));

    let _ = authorize(&verifier, &event(Some(&good), None)).await;
    let _ = authorize(&verifier, &event(Some(&bad), None)).await;
    let _ = authorize(&verifier, &event(None, None)).await;

    let text = capture.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("decision=\"allow\"") && lines[0].contains("subject=alice"));
    assert!(lines[1].contains("decision=\"deny\"") && lines[1].contains("reason=\"expired\""));
    assert!(
        lines[1].contains("claimed_subject=\"mallory\""),
        "{}",
        lines[1]
    );
    assert!(lines[2].contains("decision=\"unauthorized\""));
    for line in &lines {
        assert!(line.contains(CONNECTION_ID), "{line}");
    }
    for token in [&good, &bad] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !text.contains(signature),
            "a token leaked into the log: {text}"
        );
    }
}

#[tokio::test]
async fn each_decision_counts_in_exactly_one_catalogued_metric() {
    let verifier = hs256_verifier(ClaimRules::default());
    let expired = hs256(&json!({"sub": "mallory", "exp": now() - 3600}));
    let cases = [
        (
            decide(&verifier, &event(Some(&token_with_types()), None).request).await,
            "Allowed",
        ),
        (
            decide(&verifier, &event(Some(&expired), None).request).await,
            "Denied",
        ),
        (
            decide(&verifier, &event(None, None).request).await,
            "Unauthorized",
        ),
    ];
    for (decision, hit) in cases {
        let metrics = decision_metrics(&decision);
        for name in platform::telemetry::catalogued("authorizer") {
            let expected = u64::from(name == hit);
            assert_eq!(
                metrics.value(&name),
                Some(&json!(expected)),
                "{name} for {hit}"
            );
        }
    }
}
