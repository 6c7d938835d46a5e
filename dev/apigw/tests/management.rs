//! The `@connections` management API's details as API Gateway answers them, and the admin
//! endpoint that changes the emulator's fault injection while it runs.

mod common;

use std::net::SocketAddr;

use apigw::{Gateway, GatewayConfig, MAX_PAYLOAD_BYTES, handler_fn, ids, proxy_response};
use aws_sdk_apigatewaymanagement::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_apigatewaymanagement::operation::RequestId as _;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use serde_json::{Value, json};

use common::*;

const UNKNOWN: &str = "AAAAAAAAAAAAAAA=";

/// The status, `x-amzn-ErrorType` and body of a failed SDK call.
fn raw_error<E>(err: &SdkError<E>) -> (u16, String, Vec<u8>) {
    let raw = err.raw_response().expect("a service error");
    let error_type = raw
        .headers()
        .get("x-amzn-errortype")
        .unwrap_or_default()
        .to_owned();
    let body = raw.body().bytes().unwrap_or_default().to_vec();
    (raw.status().as_u16(), error_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_is_410_with_an_empty_body_for_every_method() {
    let h = Harness::start(GatewayConfig::default()).await;
    let post = h.post(UNKNOWN, "x").await.unwrap_err();
    let get = h.sdk.get_connection().connection_id(UNKNOWN).send().await;
    let delete = h
        .sdk
        .delete_connection()
        .connection_id(UNKNOWN)
        .send()
        .await;
    let answers = [
        raw_error(&post),
        raw_error(&get.unwrap_err()),
        raw_error(&delete.unwrap_err()),
    ];
    for (status, error_type, body) in answers {
        assert_eq!((status, error_type.as_str()), (410, "GoneException"));
        assert!(body.is_empty(), "{}", String::from_utf8_lossy(&body));
    }
    assert!(matches!(
        post.into_service_error(),
        PostToConnectionError::GoneException(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_uuids_with_an_extended_id_beside() {
    let h = Harness::start(GatewayConfig::default()).await;
    let id = h.gateway.add_virtual_connections(1).remove(0);
    let ok = h.post(&id, "x").await.unwrap();
    let request_id = ok.request_id().unwrap();
    assert!(ids::is_request_uuid(request_id), "{request_id}");
    let gone = h.post(UNKNOWN, "x").await.unwrap_err();
    let request_id = gone.request_id().unwrap();
    assert!(ids::is_request_uuid(request_id), "{request_id}");

    let path = format!("/local/@connections/{id}");
    let (status, headers, _) = http(h.gateway.local_addr(), "POST", &path, b"x").await;
    assert_eq!(status, 200);
    let request_id = header(&headers, "x-amzn-requestid").unwrap();
    assert!(ids::is_request_uuid(request_id), "{request_id}");
    let extended = header(&headers, "x-amz-apigw-id").unwrap();
    assert!(ids::is_connection_id(extended), "{extended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_413_the_same_sdk_client_keeps_working() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;
    // Just over the limit, and far over it (the server answers before the body is sent).
    for (round, size) in [MAX_PAYLOAD_BYTES + 1, 4 << 20]
        .into_iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let err = h.post(&id, vec![b'a'; size]).await.unwrap_err();
        let raw = err
            .raw_response()
            .unwrap_or_else(|| panic!("round {round}: no answer: {err:?}"));
        assert_eq!(raw.status().as_u16(), 413, "round {round}");
        // The body was not read: the client must not send another request on it.
        assert_eq!(raw.headers().get("connection"), Some("close"));
        assert!(matches!(
            err.into_service_error(),
            PostToConnectionError::PayloadTooLargeException(_)
        ));
        h.post(&id, format!("after {round}"))
            .await
            .unwrap_or_else(|e| panic!("round {round}: the call after the 413 failed: {e:?}"));
        assert_eq!(next_text(&mut ws).await, format!("after {round}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_and_patch_are_missing_authentication_token() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (_ws, id) = h.connect().await;
    let path = format!("/local/@connections/{id}");
    for method in ["PUT", "PATCH"] {
        let (status, headers, body) = http(h.gateway.local_addr(), method, &path, b"x").await;
        assert_eq!(status, 403, "{method}");
        assert_eq!(
            header(&headers, "x-amzn-errortype"),
            Some("MissingAuthenticationTokenException"),
            "{method}"
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body, json!({"message": "Missing Authentication Token"}));
    }
    assert_eq!(h.gateway.counters().posts_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_post_is_delivered_as_an_empty_message() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;
    h.post(&id, Vec::new()).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "");
    let path = format!("/local/@connections/{id}");
    let (status, _, _) = http(h.gateway.local_addr(), "POST", &path, b"").await;
    assert_eq!(status, 200);
    assert_eq!(next_text(&mut ws).await, "");
}

/// `PUT /_admin/faults` with `patch`: the status and the JSON answer.
async fn put_faults(addr: SocketAddr, patch: Value) -> (u16, Value) {
    let body = patch.to_string();
    let (status, _, answer) = http(addr, "PUT", "/_admin/faults", body.as_bytes()).await;
    (status, serde_json::from_slice(&answer).unwrap())
}

async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, _, body) = http(addr, "GET", path, b"").await;
    assert_eq!(status, 200, "{path}");
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_changes_posts_while_the_gateway_runs() {
    let h = Harness::start(GatewayConfig::default()).await;
    let addr = h.gateway.local_addr();
    let (_ws, id) = h.connect().await;
    assert_eq!(get_json(addr, "/_admin/faults").await["fault_429"], 0.0);

    let (status, settings) = put_faults(addr, json!({"fault_429": 1.0})).await;
    assert_eq!((status, &settings["fault_429"]), (200, &json!(1.0)));
    for _ in 0..3 {
        let err = h.post(&id, "x").await.unwrap_err();
        assert_eq!(status_of(&err), Some(429));
        assert_eq!(
            err.into_service_error().code(),
            Some("LimitExceededException")
        );
    }
    assert_eq!(
        get_json(addr, "/_admin/counters").await["injected_throttle"],
        3
    );

    // The throttle: one token, refilled once in 1,000 s.
    let patch = json!({"fault_429": 0, "post_rate": 0.001, "post_burst": 1});
    assert_eq!(put_faults(addr, patch).await.0, 200);
    h.post(&id, "x").await.unwrap();
    assert_eq!(status_of(&h.post(&id, "x").await.unwrap_err()), Some(429));
    assert_eq!(h.gateway.counters().rejected_throttled, 1);
    assert_eq!(put_faults(addr, json!({"post_rate": 0})).await.0, 200);
    h.post(&id, "x").await.unwrap();

    let (status, error) = put_faults(addr, json!({"fault_5xx": 2})).await;
    assert_eq!(status, 400, "{error}");
    let (status, error) = put_faults(addr, json!({"fault_492": 1})).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["message"].as_str().unwrap().contains("fault_492"));
    let shown = get_json(addr, "/_admin/faults").await;
    assert_eq!(
        shown,
        serde_json::to_value(h.gateway.fault_settings()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_is_absent_from_a_listener_beyond_loopback() {
    let routes = handler_fn(|_| async { Ok(proxy_response(200, None)) });
    let gateway = Gateway::bind(
        "0.0.0.0:0".parse().unwrap(),
        GatewayConfig::default(),
        routes,
    )
    .await
    .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], gateway.local_addr().port()));
    let (status, _, _) = http(addr, "GET", "/_admin/faults", b"").await;
    assert_eq!(status, 404);
}
