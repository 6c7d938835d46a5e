//! The Lambda events API Gateway sends to a WebSocket API's route integrations, and to its
//! `$connect` REQUEST authorizer.

use std::collections::HashMap;

use aws_lambda_events::apigw::{
    ApiGatewayRequestIdentity, ApiGatewayWebsocketProxyRequest,
    ApiGatewayWebsocketProxyRequestContext,
};
use aws_lambda_events::query_map::QueryMap;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::{Map, Value, json};

use super::conn_info::ConnInfo;
use super::ids;

fn utc(epoch_ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(epoch_ms).unwrap_or_default()
}

/// `requestTime` as API Gateway writes it: `25/Nov/2025:21:03:23 +0000`.
pub(crate) fn request_time(epoch_ms: i64) -> String {
    utc(epoch_ms).format("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

/// ISO 8601 with milliseconds, as `GET @connections/{id}` returns `connectedAt`.
pub(crate) fn iso8601(epoch_ms: i64) -> String {
    utc(epoch_ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The stage-wide part of every event.
#[derive(Debug, Clone)]
pub(crate) struct ApiContext {
    pub(crate) api_id: String,
    pub(crate) stage: String,
    /// The listener's port, reported as `X-Forwarded-Port`.
    pub(crate) port: u16,
}

/// The route a client message selects with `$request.body.action`: the body's `action` when it
/// names one of `route_keys`, `$default` otherwise (not JSON, no `action`, unknown action).
pub(crate) fn select_route<'a>(body: &str, route_keys: &'a [String]) -> &'a str {
    if route_keys.is_empty() {
        return DEFAULT_ROUTE;
    }
    let action = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("action")?.as_str().map(str::to_owned));
    action
        .and_then(|a| route_keys.iter().find(|k| **k == a))
        .map_or(DEFAULT_ROUTE, String::as_str)
}

pub(crate) const CONNECT_ROUTE: &str = "$connect";
pub(crate) const DISCONNECT_ROUTE: &str = "$disconnect";
pub(crate) const DEFAULT_ROUTE: &str = "$default";

fn base_event(
    api: &ApiContext,
    conn: &ConnInfo,
    route_key: &str,
    event_type: &str,
    now_ms: i64,
) -> ApiGatewayWebsocketProxyRequest {
    let mut identity = ApiGatewayRequestIdentity::default();
    identity.source_ip = Some(conn.source_ip.clone());
    identity.user_agent = conn.user_agent.clone();

    let request_id = ids::random_id();
    let mut context = ApiGatewayWebsocketProxyRequestContext::default();
    context.route_key = Some(route_key.to_owned());
    context.event_type = Some(event_type.to_owned());
    context.extended_request_id = Some(request_id.clone());
    context.request_id = Some(request_id);
    context.request_time = Some(request_time(now_ms));
    context.request_time_epoch = now_ms;
    context.message_direction = Some("IN".to_owned());
    context.stage = Some(api.stage.clone());
    context.connected_at = conn.connected_at_ms;
    context.identity = identity;
    context.domain_name = Some(conn.domain_name.clone());
    context.connection_id = Some(conn.id.clone());
    context.apiid = Some(api.api_id.clone());
    context.authorizer.fields = conn.authorizer.clone();

    let mut event = ApiGatewayWebsocketProxyRequest::default();
    event.request_context = context;
    event.is_base64_encoded = false;
    event
}

/// Headers API Gateway adds to `$connect` and `$disconnect`.
fn forwarding_headers(api: &ApiContext, conn: &ConnInfo, now_ms: i64) -> Vec<(HeaderName, String)> {
    vec![
        (
            HeaderName::from_static("x-amzn-trace-id"),
            ids::trace_id(now_ms),
        ),
        (
            HeaderName::from_static("x-forwarded-for"),
            conn.source_ip.clone(),
        ),
        (
            HeaderName::from_static("x-forwarded-port"),
            api.port.to_string(),
        ),
        (
            HeaderName::from_static("x-forwarded-proto"),
            "http".to_owned(),
        ),
    ]
}

/// Fills `headers` (last value of each name) and `multiValueHeaders` (all values).
fn set_headers(event: &mut ApiGatewayWebsocketProxyRequest, all: &HeaderMap) {
    let mut single = HeaderMap::with_capacity(all.keys_len());
    for (name, value) in all {
        single.insert(name.clone(), value.clone());
    }
    event.headers = single;
    event.multi_value_headers = all.clone();
}

/// Splits a raw query string into the single-value (last wins) and multi-value maps.
fn query_maps(raw: Option<&str>) -> (HashMap<String, String>, HashMap<String, Vec<String>>) {
    let mut single = HashMap::new();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let (key, value) = (decode(key), decode(value));
        single.insert(key.clone(), value.clone());
        multi.entry(key).or_default().push(value);
    }
    (single, multi)
}

/// The `$connect` event for a handshake request.
pub(crate) fn connect_event(
    api: &ApiContext,
    conn: &ConnInfo,
    request_headers: &HeaderMap,
    raw_query: Option<&str>,
    now_ms: i64,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(api, conn, CONNECT_ROUTE, "CONNECT", now_ms);
    let mut headers = request_headers.clone();
    for (name, value) in forwarding_headers(api, conn, now_ms) {
        // A client-supplied X-Forwarded-For is extended, as a proxy does.
        let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
            Some(existing) if name == "x-forwarded-for" => format!("{existing}, {value}"),
            _ => value,
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    set_headers(&mut event, &headers);
    let (single, multi) = query_maps(raw_query);
    if !single.is_empty() {
        event.query_string_parameters = single.into();
        event.multi_value_query_string_parameters = multi.into();
    }
    event
}

/// `methodArn` of the `$connect` authorizer event:
/// `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/$connect`.
pub(crate) fn connect_method_arn(api: &ApiContext, region: &str, account_id: &str) -> String {
    format!(
        "arn:aws:execute-api:{region}:{account_id}:{}/{}/{CONNECT_ROUTE}",
        api.api_id, api.stage
    )
}

/// The `requestContext` keys a WebSocket REQUEST authorizer receives.
const AUTHORIZER_CONTEXT_KEYS: [&str; 12] = [
    "routeKey",
    "eventType",
    "extendedRequestId",
    "requestTime",
    "messageDirection",
    "stage",
    "connectedAt",
    "requestTimeEpoch",
    "requestId",
    "domainName",
    "connectionId",
    "apiId",
];

/// The REQUEST authorizer event for a handshake, taken from its `$connect` event so that both
/// carry the same headers, query string, ids and times. Fails only on a header value that is
/// not UTF-8, which no Lambda event can carry.
pub(crate) fn authorizer_event(
    connect: &ApiGatewayWebsocketProxyRequest,
    method_arn: &str,
) -> serde_json::Result<Value> {
    let mut proxy = serde_json::to_value(connect)?;
    let context = &proxy["requestContext"];
    let mut request_context = pick(context, &AUTHORIZER_CONTEXT_KEYS);
    request_context.insert(
        "identity".to_owned(),
        Value::Object(pick(&context["identity"], &["sourceIp", "userAgent"])),
    );
    Ok(json!({
        "type": "REQUEST",
        "methodArn": method_arn,
        "headers": proxy["headers"].take(),
        "multiValueHeaders": proxy["multiValueHeaders"].take(),
        "queryStringParameters": single_values(&connect.query_string_parameters),
        "multiValueQueryStringParameters": proxy["multiValueQueryStringParameters"].take(),
        "stageVariables": {},
        "requestContext": request_context,
    }))
}

/// A single-value query map as JSON strings (a `QueryMap` serializes every value as a list).
fn single_values(query: &QueryMap) -> Value {
    let map: Map<String, Value> = query
        .iter()
        .map(|(key, value)| (key.to_owned(), Value::String(value.to_owned())))
        .collect();
    Value::Object(map)
}

/// The non-null values of `keys` in `object`.
fn pick(object: &Value, keys: &[&str]) -> Map<String, Value> {
    keys.iter()
        .filter_map(|&key| match object.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some((key.to_owned(), value.clone())),
        })
        .collect()
}

/// A `MESSAGE` event for one client message. Binary frames arrive base64-encoded, as API
/// Gateway passes them.
pub(crate) fn message_event(
    api: &ApiContext,
    conn: &ConnInfo,
    route_key: &str,
    body: String,
    is_base64_encoded: bool,
    now_ms: i64,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(api, conn, route_key, "MESSAGE", now_ms);
    event.request_context.message_id = Some(ids::random_id());
    event.body = Some(body);
    event.is_base64_encoded = is_base64_encoded;
    event
}

/// The `$disconnect` event: no body, the close status and reason.
pub(crate) fn disconnect_event(
    api: &ApiContext,
    conn: &ConnInfo,
    status_code: u16,
    reason: &str,
    now_ms: i64,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = base_event(api, conn, DISCONNECT_ROUTE, "DISCONNECT", now_ms);
    event.request_context.disconnect_status_code = Some(i64::from(status_code));
    event.request_context.disconnect_reason = Some(reason.to_owned());
    let mut headers = HeaderMap::new();
    if let Ok(host) = HeaderValue::from_str(&conn.domain_name) {
        headers.insert(header::HOST, host);
    }
    for (name, value) in forwarding_headers(api, conn, now_ms) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    set_headers(&mut event, &headers);
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> ApiContext {
        ApiContext {
            api_id: "abcdef1234".to_owned(),
            stage: "local".to_owned(),
            port: 4510,
        }
    }

    fn conn() -> ConnInfo {
        ConnInfo {
            id: "L0SM9cOFvHcCIhw=".to_owned(),
            connected_at_ms: 1_764_104_603_000,
            source_ip: "127.0.0.1".to_owned(),
            user_agent: Some("test-agent".to_owned()),
            domain_name: "127.0.0.1:4510".to_owned(),
            authorizer: HashMap::new(),
        }
    }

    #[test]
    fn times_are_formatted_like_aws() {
        assert_eq!(
            request_time(1_764_104_603_123),
            "25/Nov/2025:21:03:23 +0000"
        );
        assert_eq!(iso8601(1_764_104_603_123), "2025-11-25T21:03:23.123Z");
    }

    #[test]
    fn route_selection_falls_back_to_default() {
        let keys = vec!["ping".to_owned(), "subscribe".to_owned()];
        assert_eq!(select_route(r#"{"action":"ping"}"#, &keys), "ping");
        assert_eq!(select_route(r#"{"action":"other"}"#, &keys), "$default");
        assert_eq!(select_route(r#"{"action":1}"#, &keys), "$default");
        assert_eq!(select_route("not json", &keys), "$default");
        assert_eq!(select_route(r#"{"action":"ping"}"#, &[]), "$default");
    }

    #[test]
    fn connect_event_carries_request_and_context() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:4510"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let event = connect_event(&api(), &conn(), &headers, Some("token=a%3Db&x=1&x=2"), 42);
        let ctx = &event.request_context;
        assert_eq!(ctx.route_key.as_deref(), Some("$connect"));
        assert_eq!(ctx.event_type.as_deref(), Some("CONNECT"));
        assert_eq!(ctx.message_direction.as_deref(), Some("IN"));
        assert_eq!(ctx.connection_id.as_deref(), Some("L0SM9cOFvHcCIhw="));
        assert_eq!(ctx.connected_at, 1_764_104_603_000);
        assert_eq!(ctx.request_time_epoch, 42);
        assert_eq!(ctx.apiid.as_deref(), Some("abcdef1234"));
        assert!(ids::is_connection_id(ctx.request_id.as_deref().unwrap()));
        assert_eq!(ctx.extended_request_id, ctx.request_id);
        assert_eq!(event.headers["x-multi"], "b");
        assert_eq!(
            event.multi_value_headers.get_all("x-multi").iter().count(),
            2
        );
        assert_eq!(event.headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(event.headers["x-forwarded-port"], "4510");
        assert_eq!(event.query_string_parameters.first("token"), Some("a=b"));
        assert_eq!(event.query_string_parameters.first("x"), Some("2"));
        assert_eq!(
            event.multi_value_query_string_parameters.all("x"),
            Some(vec!["1", "2"])
        );
        assert!(event.body.is_none());
    }

    #[test]
    fn disconnect_event_has_status_and_no_body() {
        let event = disconnect_event(&api(), &conn(), 1001, "Going away", 42);
        let ctx = &event.request_context;
        assert_eq!(ctx.event_type.as_deref(), Some("DISCONNECT"));
        assert_eq!(ctx.route_key.as_deref(), Some("$disconnect"));
        assert_eq!(ctx.disconnect_status_code, Some(1001));
        assert_eq!(ctx.disconnect_reason.as_deref(), Some("Going away"));
        assert_eq!(event.headers["host"], "127.0.0.1:4510");
        assert!(event.body.is_none());
    }

    #[test]
    fn authorizer_event_is_the_connect_request_as_a_request_authorizer_gets_it() {
        use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;

        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:4510"));
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("bearer, t0k"),
        );
        let connect = connect_event(&api(), &conn(), &headers, Some("token=abc&x=1&x=2"), 42);
        let arn = connect_method_arn(&api(), "eu-west-1", "123456789012");
        assert_eq!(
            arn,
            "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/local/$connect"
        );
        let event = authorizer_event(&connect, &arn).unwrap();

        assert_eq!(event["type"], "REQUEST");
        assert_eq!(event["methodArn"], arn.as_str());
        assert_eq!(event["headers"]["sec-websocket-protocol"], "bearer, t0k");
        assert_eq!(event["multiValueHeaders"]["x-forwarded-port"][0], "4510");
        assert_eq!(event["queryStringParameters"]["token"], "abc");
        assert_eq!(event["multiValueQueryStringParameters"]["x"][1], "2");
        assert_eq!(event["stageVariables"], json!({}));
        let ctx = &event["requestContext"];
        let connect_ctx = &connect.request_context;
        assert_eq!(ctx["routeKey"], "$connect");
        assert_eq!(ctx["eventType"], "CONNECT");
        assert_eq!(ctx["messageDirection"], "IN");
        assert_eq!(ctx["connectionId"], "L0SM9cOFvHcCIhw=");
        assert_eq!(ctx["requestId"], connect_ctx.request_id.as_deref().unwrap());
        assert_eq!(ctx["extendedRequestId"], ctx["requestId"]);
        assert_eq!(ctx["requestTimeEpoch"], 42);
        assert_eq!(ctx["requestTime"], request_time(42).as_str());
        assert_eq!(ctx["connectedAt"], 1_764_104_603_000_i64);
        assert_eq!(ctx["apiId"], "abcdef1234");
        assert_eq!(ctx["stage"], "local");
        assert_eq!(ctx["domainName"], "127.0.0.1:4510");
        assert_eq!(
            ctx["identity"],
            json!({"sourceIp": "127.0.0.1", "userAgent": "test-agent"})
        );
        assert!(ctx.get("authorizer").is_none() && ctx.get("accountId").is_none());

        // What an authorizer written with aws_lambda_events reads from it.
        let typed: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(event).unwrap();
        assert_eq!(typed.method_arn.as_deref(), Some(arn.as_str()));
        assert_eq!(typed.query_string_parameters.first("token"), Some("abc"));
        assert_eq!(typed.headers["sec-websocket-protocol"], "bearer, t0k");
    }

    #[test]
    fn authorizer_context_reaches_every_event_as_lambda_reads_it() {
        let mut conn = conn();
        conn.authorizer = HashMap::from([
            ("principalId".to_owned(), json!("user-1")),
            ("subject".to_owned(), json!("alice")),
            ("level".to_owned(), json!(3)),
        ]);
        let events = [
            connect_event(&api(), &conn, &HeaderMap::new(), None, 42),
            message_event(&api(), &conn, "$default", "hi".to_owned(), false, 42),
            disconnect_event(&api(), &conn, 1000, "bye", 42),
        ];
        for event in events {
            let json = serde_json::to_value(&event).unwrap();
            assert_eq!(json["requestContext"]["authorizer"]["subject"], "alice");
            let read: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json).unwrap();
            let fields = &read.request_context.authorizer.fields;
            assert_eq!(fields["principalId"], "user-1");
            assert_eq!(fields["subject"], "alice");
            assert_eq!(fields["level"], 3);
        }
        // Without an authorizer there is no `authorizer` at all.
        let plain = serde_json::to_value(disconnect_event(
            &api(),
            &super::tests::conn(),
            1000,
            "",
            42,
        ));
        assert!(plain.unwrap()["requestContext"].get("authorizer").is_none());
    }

    #[test]
    fn message_event_has_message_id_and_body() {
        let event = message_event(&api(), &conn(), "$default", "hi".to_owned(), false, 42);
        let ctx = &event.request_context;
        assert_eq!(ctx.event_type.as_deref(), Some("MESSAGE"));
        assert!(ctx.message_id.is_some());
        assert_eq!(event.body.as_deref(), Some("hi"));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["requestContext"]["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(json["isBase64Encoded"], false);
    }
}
