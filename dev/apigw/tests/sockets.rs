//! The socket side against clients that misbehave: frames over API Gateway's limits, invalid
//! UTF-8, protocol violations, and clients that flood the route integration.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apigw::{GatewayConfig, HandlerResult, MAX_FRAME_BYTES, RouteHandler, ids};
use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use futures::SinkExt as _;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};

use common::*;

const MASK: Option<[u8; 4]> = Some([0x12, 0x34, 0x56, 0x78]);

/// Sends `payload` as one text message cut into frames of `size` bytes.
async fn send_fragmented(ws: &mut Ws, payload: &[u8], size: usize) {
    let chunks: Vec<&[u8]> = payload.chunks(size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { Data::Text } else { Data::Continue };
        let last = i + 1 == chunks.len();
        let frame = Frame::message(chunk.to_vec(), OpCode::Data(opcode), last);
        ws.feed(Message::Frame(frame)).await.unwrap();
    }
    ws.flush().await.unwrap();
}

/// The close code `$disconnect` reported for `id`.
async fn disconnect_code(h: &Harness, id: &str) -> Option<u16> {
    eventually("$disconnect", || h.recorder.disconnect_of(id).is_some()).await;
    h.recorder
        .disconnect_of(id)
        .and_then(|e| e.request_context.disconnect_status_code)
        .and_then(|code| u16::try_from(code).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_32_kb_closes_with_1009_but_a_fragmented_message_passes() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;

    // 100 KB in frames of 25 KB: each frame within 32 KB, the message within 128 KB.
    let body = "a".repeat(100 * 1024);
    send_fragmented(&mut ws, body.as_bytes(), 25 * 1024).await;
    assert_eq!(next_text(&mut ws).await, format!("$default:{body}"));

    ws.send(Message::text("b".repeat(MAX_FRAME_BYTES + 1)))
        .await
        .unwrap();
    let (code, reason) = expect_close(&mut ws).await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Size, "Message too big")
    );
    assert_eq!(disconnect_code(&h, &id).await, Some(1009));
    assert_eq!(h.recorder.events("$default").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mb_frame_gets_a_1009_close_not_a_reset() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut ws, id) = h.connect().await;
    ws.send(Message::binary(vec![7u8; 1024 * 1024]))
        .await
        .expect("the server reset the connection while the frame was sent");
    let (code, _) = expect_close(&mut ws).await;
    assert_eq!(code, CloseCode::Size);
    assert_eq!(disconnect_code(&h, &id).await, Some(1009));
    assert!(h.recorder.events("$default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let h = Harness::start(GatewayConfig::default()).await;
    let (mut socket, status, _) = raw_upgrade(&h, "").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let id = h.recorder.events("$connect")[0]
        .request_context
        .connection_id
        .clone()
        .unwrap();
    let frame = client_frame(0x81, &[b'o', b'k', 0xc3, 0x28], MASK);
    socket.get_mut().write_all(&frame).await.unwrap();
    assert_eq!(read_close_code(&mut socket).await, 1007);
    assert_eq!(disconnect_code(&h, &id).await, Some(1007));
    assert!(h.recorder.events("$default").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_with_1002() {
    let h = Harness::start(GatewayConfig::default()).await;
    let unmasked = client_frame(0x81, b"hello", None);
    let reserved_bit = client_frame(0x80 | 0x40 | 0x1, b"hello", MASK);
    let unknown_opcode = client_frame(0x83, b"hello", MASK);
    for (what, frame) in [
        ("unmasked", unmasked),
        ("RSV1", reserved_bit),
        ("opcode 3", unknown_opcode),
    ] {
        let (mut socket, status, _) = raw_upgrade(&h, "").await;
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        socket.get_mut().write_all(&frame).await.unwrap();
        assert_eq!(read_close_code(&mut socket).await, 1002, "{what}");
    }
    assert!(h.recorder.events("$default").is_empty());
}

/// A route integration in front of a backend that serves one call at a time, first come
/// first served (as one hot DynamoDB partition, or moto, does). It counts each connection's
/// calls in flight at once, and how many calls were waiting for the backend when the
/// message `probe` arrived.
struct Backend {
    recorder: Arc<Recorder>,
    slot: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
    arrived: AtomicUsize,
    /// Connection id -> (calls in flight now, most ever).
    in_flight: Mutex<HashMap<String, (usize, usize)>>,
    ahead_of_probe: Mutex<Option<usize>>,
}

impl Backend {
    fn new(recorder: Arc<Recorder>) -> Arc<Self> {
        Arc::new(Self {
            recorder,
            slot: tokio::sync::Mutex::new(()),
            waiting: AtomicUsize::new(0),
            arrived: AtomicUsize::new(0),
            in_flight: Mutex::new(HashMap::new()),
            ahead_of_probe: Mutex::new(None),
        })
    }

    fn track(&self, id: &str, delta: isize) {
        let mut in_flight = self.in_flight.lock().unwrap();
        let (now, most) = in_flight.entry(id.to_owned()).or_default();
        *now = now.checked_add_signed(delta).unwrap();
        *most = (*most).max(*now);
    }

    async fn call(&self, event: &ApiGatewayWebsocketProxyRequest) {
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        self.arrived.fetch_add(1, Ordering::SeqCst);
        if event.body.as_deref() == Some("probe") {
            *self.ahead_of_probe.lock().unwrap() = Some(ahead);
        }
        let slot = self.slot.lock().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(slot);
    }

    fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    fn most_in_flight_per_connection(&self) -> usize {
        let in_flight = self.in_flight.lock().unwrap();
        in_flight.values().map(|(_, most)| *most).max().unwrap_or(0)
    }
}

impl RouteHandler for Backend {
    fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> BoxFuture<'_, HandlerResult> {
        Box::pin(async move {
            if event.request_context.event_type.as_deref() == Some("MESSAGE") {
                let id = event.request_context.connection_id.clone().unwrap();
                self.track(&id, 1);
                self.call(&event).await;
                self.track(&id, -1);
            }
            self.recorder.handle(event).await
        })
    }
}

/// Writes `n` pings without waiting for any answer.
async fn flood(ws: &mut Ws, n: usize) {
    for _ in 0..n {
        ws.feed(Message::text(r#"{"action":"ping"}"#))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_flooding_connections_cannot_delay_another_ones_messages_or_posts() {
    const FLOOD: usize = 1000;
    let recorder = Recorder::new();
    let backend = Backend::new(recorder.clone());
    // A queue that holds the whole flood: every ping waits for its turn, none is refused.
    let config = GatewayConfig {
        message_queue: FLOOD,
        ..GatewayConfig::default()
    };
    let h = Harness::start_with(config, recorder, backend.clone()).await;
    let (mut a, _) = h.connect().await;
    let (mut b, _) = h.connect().await;
    let (mut probe, probe_id) = h.connect().await;
    flood(&mut a, FLOOD).await;
    flood(&mut b, FLOOD).await;
    eventually("the flood to reach the backend", || backend.arrived() >= 10).await;

    probe.send(Message::text("probe")).await.unwrap();
    assert_eq!(next_text(&mut probe).await, "$default:probe");
    let ahead = backend.ahead_of_probe.lock().unwrap().unwrap();
    assert!(ahead <= 2, "{ahead} flood calls were ahead of the probe");

    h.post(&probe_id, "update").await.unwrap();
    assert_eq!(next_text(&mut probe).await, "update");
    assert!(
        backend.arrived() < 2 * FLOOD,
        "the flood was routed before the probe's turn: this test proves nothing"
    );
    assert_eq!(backend.most_in_flight_per_connection(), 1);
}

/// Holds every message's route call until the test opens the gate.
struct Gated {
    recorder: Arc<Recorder>,
    gate: Semaphore,
    started: AtomicUsize,
}

impl RouteHandler for Gated {
    fn handle(&self, event: ApiGatewayWebsocketProxyRequest) -> BoxFuture<'_, HandlerResult> {
        Box::pin(async move {
            if event.request_context.event_type.as_deref() == Some("MESSAGE") {
                self.started.fetch_add(1, Ordering::SeqCst);
                self.gate.acquire().await.unwrap().forget();
            }
            self.recorder.handle(event).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_beyond_the_queue_are_answered_too_many_requests() {
    let recorder = Recorder::new();
    let gated = Arc::new(Gated {
        recorder: recorder.clone(),
        gate: Semaphore::new(0),
        started: AtomicUsize::new(0),
    });
    let config = GatewayConfig {
        message_queue: 4,
        ..GatewayConfig::default()
    };
    let h = Harness::start_with(config, recorder, gated.clone()).await;
    let (mut ws, id) = h.connect().await;
    ws.send(Message::text("m0")).await.unwrap();
    let started = || gated.started.load(Ordering::SeqCst);
    eventually("m0's route call", || started() == 1).await;
    for i in 1..10 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
    }

    // m1..m4 wait behind m0; m5..m9 find the queue full and are answered at once.
    for _ in 5..10 {
        let frame: Value = serde_json::from_str(&next_text(&mut ws).await).unwrap();
        assert_eq!(frame["message"], "Too Many Requests");
        assert_eq!(frame["connectionId"], id.as_str());
        assert!(ids::is_connection_id(frame["requestId"].as_str().unwrap()));
    }
    assert_eq!(started(), 1, "one route call at a time");
    gated.gate.add_permits(100);
    for i in 0..5 {
        assert_eq!(next_text(&mut ws).await, format!("$default:m{i}"));
    }
    let counters = h.gateway.counters();
    assert_eq!(
        (counters.messages_received, counters.messages_throttled),
        (10, 5)
    );
    assert_eq!(started(), 5);
}
