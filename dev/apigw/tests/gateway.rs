//! The API Gateway emulator against real WebSocket clients (tokio-tungstenite) and the real
//! aws-sdk-apigatewaymanagement client.

mod common;

use std::time::{Duration, Instant};

use apigw::{Faults, GatewayConfig, Latency, MAX_PAYLOAD_BYTES, Throttle, ids};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::error::ProvideErrorMetadata;
use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_event_is_built_like_api_gateway() {
    let h = Harness::start(GatewayConfig::default()).await;
    let mut request = format!("{}?token=a%3Db&x=1&x=2", h.gateway.ws_url())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("user-agent", "dashboard-test/1.0".parse().unwrap());
    let before = chrono::Utc::now().timestamp_millis();
    let (_ws, id) = h.connect_with(request).await;

    assert!(ids::is_connection_id(&id), "{id}");
    let event = h.recorder.events("$connect").pop().unwrap();
    let ctx = &event.request_context;
    assert_eq!(ctx.route_key.as_deref(), Some("$connect"));
    assert_eq!(ctx.event_type.as_deref(), Some("CONNECT"));
    assert_eq!(ctx.message_direction.as_deref(), Some("IN"));
    assert_eq!(ctx.stage.as_deref(), Some("local"));
    assert_eq!(ctx.apiid.as_deref(), Some("localwsapi"));
    let addr = h.gateway.local_addr();
    assert_eq!(ctx.domain_name.as_deref(), Some(addr.to_string().as_str()));
    assert!(ctx.connected_at >= before && ctx.request_time_epoch >= ctx.connected_at);
    let request_time = ctx.request_time.as_deref().unwrap();
    let parsed = chrono::DateTime::parse_from_str(request_time, "%d/%b/%Y:%H:%M:%S %z").unwrap();
    assert_eq!(
        parsed.timestamp(),
        ctx.request_time_epoch / 1000,
        "{request_time}"
    );
    assert!(ids::is_connection_id(ctx.request_id.as_deref().unwrap()));
    assert_eq!(ctx.identity.source_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        ctx.identity.user_agent.as_deref(),
        Some("dashboard-test/1.0")
    );

    for name in [
        "host",
        "sec-websocket-key",
        "sec-websocket-version",
        "x-forwarded-for",
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-amzn-trace-id",
    ] {
        assert!(event.headers.contains_key(name), "missing header {name}");
        assert!(
            event.multi_value_headers.contains_key(name),
            "missing {name}"
        );
    }
    assert_eq!(event.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(event.query_string_parameters.first("token"), Some("a=b"));
    assert_eq!(
        event.multi_value_query_string_parameters.all("x"),
        Some(vec!["1", "2"])
    );
    assert!(event.body.is_none() && !event.is_base64_encoded);

    // Every connection gets its own id.
    let (_ws2, id2) = h.connect().await;
    assert_ne!(id, id2);
    assert_eq!(h.gateway.socket_count(), 2);
    assert_eq!(h.gateway.counters().connects, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reaches_the_right_socket() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut a, id_a) = h.connect().await;
    let (mut b, id_b) = h.connect().await;

    h.post(&id_b, r#"{"type":"METRICS_UPDATE","to":"b"}"#)
        .await
        .unwrap();
    h.post(&id_a, r#"{"type":"METRICS_UPDATE","to":"a"}"#)
        .await
        .unwrap();
    // Each socket's first message is its own: nothing crossed over.
    assert_eq!(
        next_text(&mut a).await,
        r#"{"type":"METRICS_UPDATE","to":"a"}"#
    );
    assert_eq!(
        next_text(&mut b).await,
        r#"{"type":"METRICS_UPDATE","to":"b"}"#
    );

    let counters = h.gateway.counters();
    assert_eq!((counters.posts_received, counters.posts_delivered), (2, 2));
    assert_eq!(counters.rejected_total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_to_unknown_or_closed_id_is_gone_exception() {
    let h = Harness::start(GatewayConfig::default()).await;
    let err = h.post("AAAAAAAAAAAAAAA=", "x").await.unwrap_err();
    assert_eq!(status_of(&err), Some(410));
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::GoneException(_)
    ));

    let (mut ws, id) = h.connect().await;
    ws.close(None).await.unwrap();
    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;
    let err = h.post(&id, "x").await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::GoneException(_)
    ));
    assert_eq!(h.gateway.counters().rejected_gone, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_over_128_kb_is_payload_too_large() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;

    let exact = "a".repeat(MAX_PAYLOAD_BYTES);
    h.post(&id, exact.clone()).await.unwrap();
    assert_eq!(next_text(&mut ws).await.len(), MAX_PAYLOAD_BYTES);

    let err = h
        .post(&id, "a".repeat(MAX_PAYLOAD_BYTES + 1))
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), Some(413));
    let service = err.into_service_error();
    assert!(
        matches!(service, PostToConnectionError::PayloadTooLargeException(_)),
        "{service:?}"
    );
    assert_eq!(h.gateway.counters().rejected_payload_too_large, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_over_the_rate_gets_429s_that_the_sdk_treats_as_throttling() {
    let config = GatewayConfig {
        throttle: Some(Throttle::new(100.0, 100)),
        ..GatewayConfig::default()
    };
    let h = Harness::start(config).await;
    let id = h.gateway.add_virtual_connections(1).remove(0);

    let started = Instant::now();
    let results: Vec<PostResult> = futures::stream::iter(0..1000)
        .map(|i| h.post(&id, format!("{i}")))
        .buffer_unordered(32)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();

    let mut ok = 0u64;
    let mut throttled = 0u64;
    for result in results {
        match result {
            Ok(_) => ok += 1,
            Err(err) => {
                assert_eq!(status_of(&err), Some(429));
                let service = err.into_service_error();
                assert_eq!(service.code(), Some("LimitExceededException"));
                assert!(matches!(
                    service,
                    PostToConnectionError::LimitExceededException(_)
                ));
                throttled += 1;
            }
        }
    }
    // The burst, plus what the rate refilled meanwhile.
    let allowed = 100.0 + 100.0 * elapsed;
    assert!(
        ok >= 100 && (ok as f64) <= allowed + 1.0,
        "ok {ok} in {elapsed:.2}s"
    );
    assert_eq!(ok + throttled, 1000);
    let counters = h.gateway.counters();
    assert_eq!(counters.rejected_throttled, throttled);
    assert_eq!(counters.posts_delivered_virtual, ok);

    // The SDK's standard retry strategy retries LimitExceededException: HTTP 429 is not a
    // retryable status to it, so the retries below come from the error code being classified
    // as throttling.
    h.gateway
        .set_throttle(Some(Throttle::new(0.001, 1)))
        .unwrap();
    let retrying = sdk_client(
        h.gateway.management_endpoint(),
        RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1)),
    )
    .await;
    let post = || {
        retrying
            .post_to_connection()
            .connection_id(&id)
            .data(Blob::new("x"))
            .send()
    };
    post().await.unwrap();
    let before = h.gateway.counters().rejected_throttled;
    let err = post().await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::LimitExceededException(_)
    ));
    assert_eq!(h.gateway.counters().rejected_throttled - before, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_connection_returns_identity() {
    let h = Harness::start(GatewayConfig::default()).await;
    let mut request = h.gateway.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("user-agent", "Mozilla/5.0 (test)".parse().unwrap());
    let before = chrono::Utc::now().timestamp();
    let (mut ws, id) = h.connect_with(request).await;
    ws.send(Message::text("activity")).await.unwrap();
    next_text(&mut ws).await;

    let out = h
        .sdk
        .get_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    let identity = out.identity().unwrap();
    assert_eq!(identity.source_ip(), Some("127.0.0.1"));
    assert_eq!(identity.user_agent(), Some("Mozilla/5.0 (test)"));
    let connected_at = out.connected_at().unwrap().secs();
    assert!((before..=before + 2).contains(&connected_at));
    let last_active = out.last_active_at().unwrap();
    assert!(last_active >= out.connected_at().unwrap());

    let err = h
        .sdk
        .get_connection()
        .connection_id("AAAAAAAAAAAAAAA=")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.into_service_error().code(), Some("GoneException"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_closes_the_socket_and_runs_disconnect() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;

    h.sdk
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap();
    // Gone at once, even before the socket has finished closing.
    let err = h.post(&id, "late").await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::GoneException(_)
    ));

    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, CloseCode::Normal);
    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;
    let event = h.recorder.disconnect_of(&id).unwrap();
    assert_eq!(
        event.request_context.event_type.as_deref(),
        Some("DISCONNECT")
    );
    assert_eq!(event.request_context.disconnect_status_code, Some(1000));
    assert!(event.body.is_none());
    assert_eq!(h.gateway.socket_count(), 0);

    let err = h
        .sdk
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        DeleteConnectionError::GoneException(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refused_with_403_rejects_the_handshake() {
    let h = Harness::start(GatewayConfig::default()).await;
    h.recorder.answer_connect(ConnectAnswer::Status(403));
    let err = tokio_tungstenite::connect_async(h.gateway.ws_url())
        .await
        .unwrap_err();
    let tungstenite::Error::Http(response) = err else {
        panic!("expected an HTTP refusal, got {err:?}");
    };
    assert_eq!(response.status(), 403);
    assert_eq!(h.recorder.events("$connect").len(), 1);
    let id = h.recorder.events("$connect")[0]
        .request_context
        .connection_id
        .clone()
        .unwrap();
    assert!(!h.gateway.is_connected(&id));
    assert_eq!(h.gateway.socket_count(), 0);
    let counters = h.gateway.counters();
    assert_eq!((counters.connects, counters.connects_rejected), (0, 1));

    // A failing handler refuses with 500, as a failed Lambda invocation does.
    h.recorder.answer_connect(ConnectAnswer::Fail);
    let err = tokio_tungstenite::connect_async(h.gateway.ws_url())
        .await
        .unwrap_err();
    assert!(matches!(err, tungstenite::Error::Http(r) if r.status() == 500));
    assert!(h.recorder.events("$disconnect").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_route_reply_reaches_the_client() {
    let config = GatewayConfig {
        route_keys: vec!["ping".to_owned()],
        ..GatewayConfig::default()
    };
    let h = Harness::start(config).await;
    let (mut ws, id) = h.connect().await;

    ws.send(Message::text(r#"{"action":"subscribe"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut ws).await,
        r#"$default:{"action":"subscribe"}"#
    );
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_text(&mut ws).await, r#"ping:{"action":"ping"}"#);

    let event = h.recorder.events("$default").pop().unwrap();
    let ctx = &event.request_context;
    assert_eq!(ctx.event_type.as_deref(), Some("MESSAGE"));
    assert_eq!(ctx.connection_id.as_deref(), Some(id.as_str()));
    assert!(ctx.message_id.is_some());
    assert_eq!(event.body.as_deref(), Some(r#"{"action":"subscribe"}"#));

    // A failing integration gets API Gateway's error message, and the socket stays open.
    ws.send(Message::text("fail")).await.unwrap();
    let reply: serde_json::Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
    assert_eq!(reply["message"], "Internal server error");
    assert_eq!(reply["connectionId"], id.as_str());
    assert!(h.gateway.is_connected(&id));
    assert_eq!(h.gateway.counters().messages_received, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_an_idle_socket_but_client_pings_keep_it() {
    let idle = Duration::from_millis(300);
    let config = GatewayConfig {
        idle_timeout: idle,
        ..GatewayConfig::default()
    };
    let h = Harness::start(config).await;
    let (mut ws, id) = h.connect().await;

    // Client pings for twice the timeout keep the socket open.
    let mut last_activity = Instant::now();
    for _ in 0..6 {
        last_activity = Instant::now();
        ws.send(Message::Ping(Vec::new().into())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(h.gateway.is_connected(&id));

    // Server posts are no client activity: the socket still times out.
    let poster = async {
        for i in 0..20 {
            if h.post(&id, format!("tick {i}")).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (_, (code, reason)) = tokio::join!(poster, expect_close(&mut ws));
    let idle_for = last_activity.elapsed();
    assert_eq!(code, CloseCode::Away);
    assert_eq!(reason, "Going away");
    assert!(idle_for >= idle, "{idle_for:?}");
    assert!(h.gateway.counters().posts_delivered >= 2);

    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;
    let event = h.recorder.disconnect_of(&id).unwrap();
    assert_eq!(event.request_context.disconnect_status_code, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_duration_closes_an_active_socket() {
    let config = GatewayConfig {
        max_duration: Duration::from_millis(300),
        ..GatewayConfig::default()
    };
    let h = Harness::start(config).await;
    let (ws, id) = h.connect().await;
    let started = Instant::now();
    let (mut sink, mut stream) = ws.split();
    let pinger = async {
        while sink.send(Message::Ping(Vec::new().into())).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let close = async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let frame = tokio::time::timeout(WAIT, async {
        tokio::select! {
            () = pinger => None,
            frame = close => frame,
        }
    })
    .await
    .unwrap()
    .unwrap();
    finish_close(&mut stream).await;
    assert_eq!(frame.code, CloseCode::Away);
    assert!(started.elapsed() >= Duration::from_millis(250));
    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_and_drop_run_disconnect() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;
    let ctx = h.recorder.disconnect_of(&id).unwrap().request_context;
    assert_eq!(ctx.disconnect_status_code, Some(1000));
    assert_eq!(ctx.disconnect_reason.as_deref(), Some("bye"));
    assert_eq!(ctx.identity.source_ip.as_deref(), Some("127.0.0.1"));

    // A client that vanishes without a close frame.
    let (ws, id) = h.connect().await;
    drop(ws);
    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;
    let ctx = h.recorder.disconnect_of(&id).unwrap().request_context;
    assert_eq!(ctx.disconnect_status_code, Some(1006));
    assert_eq!(h.gateway.counters().disconnects, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_client_message_closes_with_1009() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;
    ws.send(Message::text("a".repeat(MAX_PAYLOAD_BYTES + 1)))
        .await
        .unwrap();
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, CloseCode::Size);
    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;
    assert!(h.recorder.events("$default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_connections_accept_count_and_stamp_posts() {
    let h = Harness::start(GatewayConfig::default()).await;
    let ids = h.gateway.add_virtual_connections(1000);
    assert_eq!(ids.len(), 1000);
    assert!(ids.iter().all(|id| ids::is_connection_id(id)));
    assert_eq!(h.gateway.virtual_delivery_summary().connections, 1000);
    assert_eq!(h.gateway.socket_count(), 0);

    for id in &ids[..10] {
        h.post(id, "update").await.unwrap();
    }
    h.post(&ids[0], "duplicate").await.unwrap();

    let first = h.gateway.virtual_delivery(&ids[0]).unwrap();
    assert_eq!(first.deliveries, 2);
    assert!(first.first.unwrap() < first.last.unwrap());
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!((now_ms - 2_000..=now_ms).contains(&first.first_epoch_ms.unwrap()));
    assert_eq!(h.gateway.virtual_delivery(&ids[500]).unwrap().deliveries, 0);

    let summary = h.gateway.virtual_delivery_summary();
    assert_eq!((summary.reached, summary.deliveries), (10, 11));
    assert_eq!(
        (summary.min_per_connection, summary.max_per_connection),
        (0, 2)
    );
    assert!(summary.span().unwrap() > Duration::ZERO);
    assert_eq!(h.gateway.counters().posts_delivered_virtual, 11);

    h.gateway.reset_virtual_deliveries();
    assert_eq!(h.gateway.virtual_delivery_summary().deliveries, 0);

    // A connection gone without $disconnect: posts get 410, nothing is reported.
    assert!(h.gateway.remove_virtual_connection(&ids[1]));
    let err = h.post(&ids[1], "x").await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::GoneException(_)
    ));
    // DELETE on a virtual connection runs $disconnect like a socket's.
    h.sdk
        .delete_connection()
        .connection_id(&ids[2])
        .send()
        .await
        .unwrap();
    eventually("$disconnect", || {
        h.recorder.disconnect_of(&ids[2]).is_some()
    })
    .await;
    assert!(h.recorder.disconnect_of(&ids[1]).is_none());
    assert!(h.gateway.add_virtual_connection(ids[3].clone()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_surface_as_sdk_errors() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (_ws, id) = h.connect().await;

    h.gateway
        .set_faults(Faults {
            gone_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let err = h.post(&id, "x").await.unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::GoneException(_)
    ));
    assert!(
        h.gateway.is_connected(&id),
        "an injected 410 leaves the socket open"
    );

    h.gateway
        .set_faults(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let err = h.post(&id, "x").await.unwrap_err();
    assert_eq!(status_of(&err), Some(429));
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::LimitExceededException(_)
    ));

    h.gateway
        .set_faults(Faults {
            error_rate: 1.0,
            ..Faults::default()
        })
        .unwrap();
    let err = h.post(&id, "x").await.unwrap_err();
    assert_eq!(status_of(&err), Some(500));
    assert_eq!(
        err.into_service_error().code(),
        Some("InternalServerErrorException")
    );

    assert!(
        h.gateway
            .set_faults(Faults {
                error_rate: 1.5,
                ..Faults::default()
            })
            .is_err()
    );
    h.gateway.set_faults(Faults::default()).unwrap();
    h.post(&id, "x").await.unwrap();
    let counters = h.gateway.counters();
    assert_eq!(
        (
            counters.injected_gone,
            counters.injected_throttle,
            counters.injected_error,
            counters.posts_delivered
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(
        counters.posts_received,
        counters.posts_delivered + counters.rejected_total()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_knob_delays_every_call() {
    let h = Harness::start(GatewayConfig::default()).await;
    let id = h.gateway.add_virtual_connections(1).remove(0);
    h.gateway.set_latency(Latency::new(
        Duration::from_millis(150),
        Duration::from_millis(50),
    ));
    let started = Instant::now();
    h.post(&id, "x").await.unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    h.gateway.set_latency(Latency::default());
    let started = Instant::now();
    h.post(&id, "x").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_gets_limit_exceeded() {
    let config = GatewayConfig {
        client_buffer_messages: 2,
        max_payload_bytes: 1024 * 1024,
        ..GatewayConfig::default()
    };
    let h = Harness::start(config).await;
    let (_ws, id) = h.connect().await;
    let data = vec![b'a'; 1024 * 1024];
    let mut outcome = None;
    // Loopback socket buffers hold a few MB; then the queue fills.
    for _ in 0..64 {
        if let Err(err) = h.post(&id, data.clone()).await {
            outcome = Some(err);
            break;
        }
    }
    let err = outcome.expect("the outbound buffer never filled");
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::LimitExceededException(_)
    ));
    assert_eq!(h.gateway.counters().rejected_buffer_full, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stage_is_forbidden() {
    let h = Harness::start(GatewayConfig::default()).await;
    let id = h.gateway.add_virtual_connections(1).remove(0);
    let other = sdk_client(
        format!("http://{}/prod", h.gateway.local_addr()),
        RetryConfig::disabled(),
    )
    .await;
    let err = other
        .post_to_connection()
        .connection_id(&id)
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        PostToConnectionError::ForbiddenException(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_and_runs_disconnect() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;
    let Harness {
        gateway, recorder, ..
    } = h;
    let (shutdown, (code, _)) = tokio::join!(gateway.shutdown(), expect_close(&mut ws));
    shutdown.unwrap();
    assert_eq!(code, CloseCode::Away);
    // shutdown() waits for the $disconnects.
    assert!(recorder.disconnect_of(&id).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_identity_source_is_401_without_calling_the_authorizer() {
    let (h, auth) =
        Harness::with_authorizer(AuthAnswer::Allow, &["route.request.querystring.token"]).await;

    let (status, body) = h.refused("").await;
    assert_eq!((status, body), (401, json!({"message": "Unauthorized"})));
    // Present but empty is missing too.
    assert_eq!(h.refused("?token=").await.0, 401);
    assert_eq!(h.refused("?other=abc").await.0, 401);
    assert_eq!(auth.calls(), 0);
    assert!(h.recorder.events("$connect").is_empty());

    // With the source present the authorizer is called and lets the client in.
    let request = format!("{}?token=abc", h.gateway.ws_url())
        .into_client_request()
        .unwrap();
    let (_ws, _id) = h.connect_with(request).await;
    assert_eq!(auth.calls(), 1);
    let counters = h.gateway.counters();
    assert_eq!(
        (
            counters.authorizer_calls,
            counters.authorizer_unauthorized,
            counters.authorizer_allowed,
            counters.connects
        ),
        (1, 3, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_is_403_and_connect_never_runs() {
    let (h, auth) = Harness::with_authorizer(AuthAnswer::Deny, &[]).await;
    let (status, body) = h.refused("").await;
    assert_eq!((status, body), (403, json!({"message": "Forbidden"})));
    assert_eq!(auth.calls(), 1, "no identity source: always called");
    assert!(h.recorder.events("$connect").is_empty());
    assert_eq!(h.gateway.socket_count(), 0);
    let counters = h.gateway.counters();
    assert_eq!(
        (
            counters.authorizer_calls,
            counters.authorizer_denied,
            counters.connects,
            counters.connects_rejected
        ),
        (1, 1, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_failure_is_401() {
    let (h, auth) = Harness::with_authorizer(AuthAnswer::Unauthorized, &[]).await;
    let (status, body) = h.refused("?token=expired").await;
    assert_eq!((status, body), (401, json!({"message": "Unauthorized"})));
    assert_eq!(auth.calls(), 1);
    assert!(h.recorder.events("$connect").is_empty());
    let counters = h.gateway.counters();
    assert_eq!(
        (counters.authorizer_calls, counters.authorizer_unauthorized),
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizer_failure_or_malformed_answer_is_500() {
    let (h, auth) = Harness::with_authorizer(AuthAnswer::Fail, &[]).await;
    let (status, body) = h.refused("").await;
    assert_eq!(
        (status, body),
        (500, json!({"message": "Internal server error"}))
    );
    auth.set_answer(AuthAnswer::Malformed);
    assert_eq!(h.refused("").await.0, 500);
    assert_eq!(auth.calls(), 2);
    assert!(h.recorder.events("$connect").is_empty());
    let counters = h.gateway.counters();
    assert_eq!(
        (
            counters.authorizer_calls,
            counters.authorizer_errors,
            counters.authorizer_allowed
        ),
        (2, 2, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_puts_principal_and_context_on_every_event_of_the_connection() {
    // The project's way: the token rides in Sec-WebSocket-Protocol, and `$connect` selects
    // the protocol so that the browser completes the handshake.
    let (h, auth) = Harness::with_authorizer(
        AuthAnswer::Allow,
        &["route.request.header.Sec-WebSocket-Protocol"],
    )
    .await;
    h.recorder.answer_connect(ConnectAnswer::Protocol {
        name: "bearer",
        multi_value: false,
    });
    let mut request = h.gateway.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "bearer, t0ken".parse().unwrap());
    let (mut ws, id) = h.connect_with(request).await;

    // The authorizer's event: the handshake, as API Gateway hands it to a REQUEST authorizer.
    let event = auth.events.lock().unwrap().pop().unwrap();
    let connect = h.recorder.events("$connect").pop().unwrap();
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(
        event["methodArn"],
        "arn:aws:execute-api:us-east-1:123456789012:localwsapi/local/$connect"
    );
    assert_eq!(event["headers"]["sec-websocket-protocol"], "bearer, t0ken");
    let ctx = &event["requestContext"];
    assert_eq!(ctx["connectionId"], id.as_str());
    assert_eq!(ctx["routeKey"], "$connect");
    assert_eq!(ctx["eventType"], "CONNECT");
    assert_eq!(
        ctx["requestId"],
        connect.request_context.request_id.as_deref().unwrap()
    );

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, "$default:hello");
    ws.close(None).await.unwrap();
    eventually("$disconnect", || h.recorder.disconnect_of(&id).is_some()).await;

    let message = h.recorder.events("$default").pop().unwrap();
    let disconnect = h.recorder.disconnect_of(&id).unwrap();
    for event in [connect, message, disconnect] {
        // Through JSON, as a Lambda function receives it.
        let json = serde_json::to_value(&event).unwrap();
        let read: ApiGatewayWebsocketProxyRequest = serde_json::from_value(json).unwrap();
        let route = read.request_context.route_key.clone().unwrap();
        let fields = &read.request_context.authorizer.fields;
        assert_eq!(fields["principalId"], "user-42", "{route}");
        assert_eq!(fields["subject"], "alice", "{route}");
        assert_eq!(fields["entityTypes"], "stream,job", "{route}");
        assert_eq!(fields["admin"], false, "{route}");
        assert!(fields["integrationLatency"].is_u64(), "{route}");
    }
    let counters = h.gateway.counters();
    assert_eq!(
        (
            counters.authorizer_calls,
            counters.authorizer_allowed,
            counters.connects
        ),
        (1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_response_protocol_is_the_handshake_protocol() {
    let h = Harness::start(GatewayConfig::default()).await;
    for multi_value in [false, true] {
        h.recorder.answer_connect(ConnectAnswer::Protocol {
            name: "dashboard.v1",
            multi_value,
        });
        let mut request = h.gateway.ws_url().into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "other, dashboard.v1".parse().unwrap(),
        );
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.status(), 101);
        assert_eq!(
            response.headers()["sec-websocket-protocol"],
            "dashboard.v1",
            "multi_value: {multi_value}"
        );
        drop(ws);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_completes_with_whatever_protocol_connect_names() {
    let h = Harness::start(GatewayConfig::default()).await;
    // Offered, none named: the handshake completes without one, as on AWS.
    let (status, headers) = raw_handshake(&h, "a, b").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    assert_eq!(header(&headers, "sec-websocket-protocol"), None);

    // Named but never offered: passed through unchanged, as on AWS.
    h.recorder.answer_connect(ConnectAnswer::Protocol {
        name: "zzz",
        multi_value: false,
    });
    let (status, headers) = raw_handshake(&h, "a").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    assert_eq!(header(&headers, "sec-websocket-protocol"), Some("zzz"));
    assert_eq!(h.gateway.counters().connects, 2);
}
