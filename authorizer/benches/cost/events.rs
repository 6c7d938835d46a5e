//! The `$connect` REQUEST authorizer events and the tokens they carry.

use std::sync::Arc;
use std::time::Duration;

use authorizer::mint::{self, MintRequest};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const METHOD_ARN: &str = "arn:aws:execute-api:eu-west-1:123456789012:abcdef123/prod/$connect";
pub const SUBJECT: &str = "bench-user";
/// Test-only keys: they protect nothing (see tests/keys/README.md).
pub const JWKS: &str = include_str!("../../tests/keys/jwks.json");
const RSA_PRIVATE: &str = include_str!("../../tests/keys/rsa-private.pem");
const RSA_OTHER_PRIVATE: &str = include_str!("../../tests/keys/rsa-other-private.pem");
const RSA_KID: &str = "rsa-1";
const TTL: Duration = Duration::from_secs(3600);

fn mint_request() -> MintRequest {
    MintRequest {
        subject: SUBJECT.into(),
        entity_types: vec!["stream".into(), "batch".into()],
        ttl: TTL,
        ..MintRequest::default()
    }
}

/// An HS256 token signed with `secret`, valid for an hour.
pub fn hs256(secret: &str) -> String {
    mint::mint_hs256(secret.as_bytes(), &mint_request(), mint::now_epoch_secs())
        .expect("an HS256 bench token")
}

/// An RS256 token naming the JWKS key `rsa-1`; signed with that key's private half, or with
/// another RSA key when `genuine` is false (a bad signature under a known kid).
pub fn rs256(genuine: bool) -> String {
    let pem = if genuine {
        RSA_PRIVATE
    } else {
        RSA_OTHER_PRIVATE
    };
    let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("a test RSA key");
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(RSA_KID.to_owned());
    let now = mint::now_epoch_secs();
    let claims = json!({
        "sub": SUBJECT,
        "iat": now,
        "exp": now + TTL.as_secs(),
        "entity_types": ["stream", "batch"],
    });
    jsonwebtoken::encode(&header, &claims, &key).expect("an RS256 bench token")
}

/// A `$connect` REQUEST authorizer event as API Gateway sends it for a WebSocket API (as in
/// the handler's tests: no identity sources, so both maps arrive), with `token` in the query
/// string, or without one (the client then offers only an ordinary subprotocol).
pub fn connect_event(token: Option<&str>) -> Arc<[u8]> {
    let mut headers = json!({
        "Host": "abcdef123.execute-api.eu-west-1.amazonaws.com",
        "Origin": "https://dashboards.example",
        "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "X-Amzn-Trace-Id": "Root=1-65c66ea0-0e5d7c7a3c1f2a1b4d6e8f90",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    });
    let mut params = json!({"entityTypes": "stream"});
    match token {
        Some(token) => params["token"] = json!(token),
        None => headers["Sec-WebSocket-Protocol"] = json!("dashboards.v1"),
    }
    let event = json!({
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": headers,
        "multiValueHeaders": multi_valued(&headers),
        "queryStringParameters": params,
        "multiValueQueryStringParameters": multi_valued(&params),
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
            "connectionId": "SfNSZdsFoAMCJrw=",
            "apiId": "abcdef123"
        }
    });
    Arc::from(serde_json::to_vec(&event).expect("JSON"))
}

fn multi_valued(map: &Value) -> Value {
    let map = map.as_object().expect("an object");
    Value::Object(
        map.iter()
            .map(|(name, value)| (name.clone(), json!([value])))
            .collect(),
    )
}
