//! Snapshots on open, with real WebSocket clients against the local stack: the current state
//! of every entity a connection's interest matches, in complete parts of at most 128 KB; the
//! newer-of rule leaves a client with the newest values whatever the race between a snapshot
//! and a broadcast; a filter, and a token's entity types, decide what a snapshot holds; batch
//! mode keeps the source too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt};
use rounds::{BroadcastMode, RoundStore};
use serde_json::Value;
use stack::{Stack, StackConfig};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use e2e::{delete_metric, eventually, start_stack};

const WAIT: Duration = Duration::from_secs(30);
/// API Gateway's limit on one message.
const MAX_MESSAGE_BYTES: usize = 128 * 1024;

type Sink = futures::stream::SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;

/// A WebSocket client that keeps every text frame as it arrived (its size is what the
/// 128 KB limit is about), in arrival order.
struct Socket {
    sink: Sink,
    frames: Arc<Mutex<Vec<String>>>,
}

impl Socket {
    async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the client connects");
        let (sink, mut stream) = socket.split();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let kept = frames.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Text(text) = message {
                    kept.lock().unwrap().push(text.to_string());
                }
            }
        });
        Self { sink, frames }
    }

    async fn send(&mut self, text: &str) {
        self.sink.send(Message::text(text)).await.expect("send");
    }

    /// Every message so far, parsed, in arrival order.
    fn messages(&self) -> Vec<Value> {
        let frames = self.frames.lock().unwrap();
        frames
            .iter()
            .map(|f| serde_json::from_str(f).expect("JSON frames"))
            .collect()
    }

    /// The sizes of the SNAPSHOT frames so far.
    fn snapshot_frame_sizes(&self) -> Vec<usize> {
        let frames = self.frames.lock().unwrap();
        frames
            .iter()
            .filter(|f| f.starts_with(r#"{"type":"SNAPSHOT""#))
            .map(String::len)
            .collect()
    }

    /// The snapshots whose every part arrived, in the order they completed: each its parts
    /// by number.
    fn complete_snapshots(&self) -> Vec<Vec<Value>> {
        let mut assembling: HashMap<String, BTreeMap<u64, Value>> = HashMap::new();
        let mut complete = Vec::new();
        for m in self
            .messages()
            .into_iter()
            .filter(|m| m["type"] == "SNAPSHOT")
        {
            let id = m["id"].as_str().expect("an id").to_owned();
            let parts = m["parts"].as_u64().expect("parts");
            let of_id = assembling.entry(id.clone()).or_default();
            let part = m["part"].as_u64().expect("part");
            assert!(of_id.insert(part, m).is_none(), "part {part} of {id} twice");
            if of_id.len() as u64 == parts {
                complete.push(assembling.remove(&id).unwrap().into_values().collect());
            }
        }
        complete
    }

    fn replies(&self, kind: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| m["type"] == kind)
            .collect()
    }

    /// Asks for a snapshot and waits for it to be complete; its items in order.
    async fn snapshot(&mut self, request: &str) -> Vec<Value> {
        let before = self.complete_snapshots().len();
        self.send(request).await;
        let done = eventually(WAIT, || self.complete_snapshots().len() > before).await;
        assert!(
            done,
            "no complete snapshot for {request}: {:?}",
            self.replies("ERROR")
        );
        let parts = self.complete_snapshots().swap_remove(before);
        parts
            .iter()
            .flat_map(|p| p["items"].as_array().expect("items").clone())
            .collect()
    }
}

/// Writes one entity of `entity_type` with `value` and `pad` bytes of padding.
async fn put(stack: &Stack, id: &str, entity_type: &str, value: u64, pad: usize) {
    stack
        .dynamo
        .put_item()
        .table_name(&stack.resources.names.metrics_table)
        .item("entity_id", AttributeValue::S(id.to_owned()))
        .item("entity_type", AttributeValue::S(entity_type.to_owned()))
        .item("metric_value", AttributeValue::N(value.to_string()))
        .item("note", AttributeValue::S("n".repeat(pad.max(1))))
        .send()
        .await
        .expect("PutItem on the metrics table");
}

/// Writes `(id, type)` entities, 32 at a time.
async fn put_all(stack: &Stack, entities: &[(String, &str)], value: u64, pad: usize) {
    futures::stream::iter(entities)
        .map(|(id, kind)| put(stack, id, kind, value, pad))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// Waits until the state table holds `n` entities whose latest change is not a REMOVE and
/// whose value is `value` (the processor records each before it broadcasts it).
async fn stored(stack: &Stack, n: usize, value: u64) {
    let store = RoundStore::new(stack.dynamo.clone(), &stack.resources.names.state_table);
    let deadline = Instant::now() + WAIT;
    loop {
        let changes = store.entities().await.expect("Query the entities");
        let current = changes
            .iter()
            .map(|c| serde_json::from_str::<Value>(&c.update).expect("an update"))
            .filter(|u| u["eventType"] != "REMOVE" && u["data"]["metric_value"] == value)
            .count();
        if current == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{current} of {n} entities stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|i| {
            i["data"]["entity_id"]
                .as_str()
                .expect("an entity_id")
                .to_owned()
        })
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// A sequence's sort key: decimal digits compare by length, then text.
fn order(sequence: &str) -> (usize, String) {
    let digits = sequence.trim_start_matches('0');
    (digits.len(), digits.to_owned())
}

/// Writes the entity items of the state table as the processor records them
/// (`RoundStore::record`, rounds/src/store.rs), 25 to a BatchWriteItem: 2,000 entities through
/// the whole pipeline would take moto minutes to record, and what is tested here is the
/// snapshot of what the table holds. Read back through `RoundStore::entities`, so a change of
/// the item format fails here first.
async fn seed_entities(stack: &Stack, entities: &[(String, &str)], pad: usize) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let label = processor::message::stream_label(&stack.resources.metrics_stream_arn).unwrap();
    let requests: Vec<WriteRequest> = entities
        .iter()
        .enumerate()
        .map(|(i, (id, kind))| {
            let sequence = format!("{}", 4_000_000_000_000_000_000_u64 + i as u64 * 7);
            let update = serde_json::json!({
                "eventType": "INSERT", "timestamp": 1_764_104_603_000_u64, "sequence": sequence,
                "data": {"entity_id": id, "entity_type": kind, "metric_value": 7,
                         "note": "n".repeat(pad)},
            });
            let s = |v: &str| AttributeValue::S(v.to_owned());
            let item = HashMap::from([
                ("pk".to_owned(), s("entity")),
                (
                    "sk".to_owned(),
                    s(&serde_json::json!({"entity_id": id}).to_string()),
                ),
                ("ord".to_owned(), s(&rounds::Change::order_of(&sequence))),
                (
                    "changedAt".to_owned(),
                    AttributeValue::N("1764104603000".into()),
                ),
                ("update".to_owned(), s(&update.to_string())),
                ("stream".to_owned(), s(label)),
            ]);
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        })
        .collect();
    let table = &stack.resources.names.state_table;
    futures::stream::iter(requests.chunks(25))
        .map(|chunk| async move {
            let mut pending = chunk.to_vec();
            while !pending.is_empty() {
                let output = stack
                    .dynamo
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .expect("BatchWriteItem on the state table");
                pending = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table))
                    .unwrap_or_default();
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    stored(stack, entities.len(), 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_2000_entities_arrives_in_parts_of_at_most_128_kb_complete() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let entities: Vec<(String, &str)> = (0..2_000)
        .map(|i| (format!("entity-{i:04}"), "stream"))
        .collect();
    // ~2,000 x 300 bytes: several parts.
    seed_entities(&stack, &entities, 150).await;

    let mut client = Socket::connect(&stack.ws_url()).await;
    let started = Instant::now();
    let items = client.snapshot(r#"{"action":"snapshot"}"#).await;
    eprintln!("2,000 entities arrived in {:?}", started.elapsed());

    let sizes = client.snapshot_frame_sizes();
    assert!(sizes.len() >= 3, "{} parts for ~500 KB", sizes.len());
    assert!(
        sizes.iter().all(|s| *s <= MAX_MESSAGE_BYTES),
        "part sizes {sizes:?}"
    );
    let parts = &client.complete_snapshots()[0];
    let label = processor::message::stream_label(&stack.resources.metrics_stream_arn).unwrap();
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part["part"], i + 1);
        assert_eq!(part["parts"], parts.len());
        assert_eq!(part["id"], parts[0]["id"]);
        assert_eq!(part["stream"], label);
    }
    assert!(parts[0]["id"].as_str().unwrap().starts_with("s-"));
    // Complete: every entity once, with its data and a sequence, in stream order.
    assert_eq!(items.len(), 2_000);
    let expected: BTreeSet<String> = entities.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids(&items), expected);
    for item in &items {
        assert_eq!(item["data"]["metric_value"], 7);
        assert_eq!(item["data"]["entity_type"], "stream");
        assert!(item["timestamp"].is_i64(), "{item}");
        assert!(item.get("eventType").is_none(), "{item}");
    }
    let sequences: Vec<(usize, String)> = items
        .iter()
        .map(|i| order(i["sequence"].as_str().expect("a sequence")))
        .collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "stream order");
    stack.shutdown().await;
}

/// What a client shows after applying `messages` in arrival order under the newer-of rule:
/// an update or a snapshot item is applied only when its sequence is newer than the last one
/// applied to its entity (a REMOVE leaves its sequence behind). Also how many were ignored
/// as older than what the entity had.
fn newer_of(messages: &[Value]) -> (BTreeMap<String, u64>, usize) {
    let mut last: HashMap<String, (usize, String)> = HashMap::new();
    let mut shown = BTreeMap::new();
    let mut ignored = 0;
    let mut apply = |change: &Value, remove: bool| {
        let id = change["data"]["entity_id"].as_str().unwrap().to_owned();
        let sequence = order(change["sequence"].as_str().expect("a sequence"));
        if last.get(&id).is_some_and(|seen| *seen >= sequence) {
            ignored += 1;
            return;
        }
        last.insert(id.clone(), sequence);
        if remove {
            shown.remove(&id);
        } else {
            shown.insert(id, change["data"]["metric_value"].as_u64().unwrap());
        }
    };
    for m in messages {
        match m["type"].as_str() {
            Some("METRICS_UPDATE") => {
                for u in m["updates"].as_array().unwrap() {
                    apply(u, u["eventType"] == "REMOVE");
                }
            }
            Some("SNAPSHOT") => {
                for item in m["items"].as_array().unwrap() {
                    apply(item, false);
                }
            }
            _ => {}
        }
    }
    (shown, ignored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_racing_a_broadcast_leaves_the_client_with_the_newest_values() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let entities: Vec<(String, &str)> = (0..40)
        .map(|i| (format!("racing-{i:02}"), "stream"))
        .collect();
    put_all(&stack, &entities, 0, 1).await;
    stored(&stack, 40, 0).await;
    let mut client = Socket::connect(&stack.ws_url()).await;

    // Every entity written 25 times, 100 ms apart, while the client asks for a snapshot every
    // 60 ms: snapshot items (some read up to SNAPSHOT_CACHE_MS before they were asked for) and
    // updates arrive interleaved, each sometimes older than what the other brought.
    let last = 25;
    let writer = async {
        for value in 1..=last {
            put_all(&stack, &entities, value, 1).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let requests = async {
        let until = Instant::now() + Duration::from_millis(100 * last);
        while Instant::now() < until {
            client.send(r#"{"action":"snapshot"}"#).await;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    };
    tokio::join!(writer, requests);
    // One more snapshot after the last write has been stored: its items race the last
    // round's updates too.
    stored(&stack, 40, last).await;
    client.send(r#"{"action":"snapshot"}"#).await;

    let newest: BTreeMap<String, u64> = entities.iter().map(|(id, _)| (id.clone(), last)).collect();
    let reached = eventually(WAIT, || newer_of(&client.messages()).0 == newest).await;
    let (shown, ignored) = newer_of(&client.messages());
    assert!(reached, "the client shows {shown:?}");
    let snapshots = client.complete_snapshots().len();
    eprintln!("{snapshots} snapshots; {ignored} updates or items ignored as older");
    assert!(snapshots >= 10, "{snapshots} snapshots completed");
    assert!(
        ignored > 0,
        "no snapshot item or update ever arrived after a newer one: the race did not happen"
    );
    // Every snapshot asked for was sent.
    assert!(
        client.replies("ERROR").is_empty(),
        "{:?}",
        client.replies("ERROR")
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_connects_after_a_broadcast_it_missed_gets_the_change_in_its_snapshot() {
    // Reads of the entities kept a minute: without the rule that a connection only gets a read
    // that started after it opened, the second client would get the first one's old read.
    let stack = start_stack(StackConfig {
        snapshot_cache: Duration::from_secs(60),
        ..StackConfig::for_tests()
    })
    .await;
    put(&stack, "missed-1", "stream", 1, 1).await;
    stored(&stack, 1, 1).await;
    let mut early = Socket::connect(&stack.ws_url()).await;
    let items = early.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(items[0]["data"]["metric_value"], 1);

    // The change's round goes out (the early client gets it) before the late client exists.
    put(&stack, "missed-1", "stream", 2, 1).await;
    let broadcast = eventually(WAIT, || {
        early
            .replies("METRICS_UPDATE")
            .iter()
            .any(|m| m["updates"][0]["data"]["metric_value"] == 2)
    })
    .await;
    assert!(broadcast, "the early client got the change");
    let mut late = Socket::connect(&stack.ws_url()).await;
    let items = late.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(
        items[0]["data"]["metric_value"], 2,
        "the late client's snapshot has the change it got no broadcast of: {items:?}"
    );
    // And the early client, opened before the read it was served, still shares it.
    let again = early.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(again[0]["data"]["metric_value"], 2);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_a_filter_has_exactly_the_matching_entities() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let entities: Vec<(String, &str)> = [
        ("stream-1", "stream"),
        ("stream-2", "stream"),
        ("disk-1", "disk"),
        ("disk-2", "disk"),
        ("disk-3", "disk"),
        ("cpu-1", "cpu"),
        ("cpu-2", "cpu"),
    ]
    .iter()
    .map(|(id, kind)| ((*id).to_owned(), *kind))
    .collect();
    put_all(&stack, &entities, 1, 1).await;
    stored(&stack, 7, 1).await;
    // A removed entity is in no snapshot.
    delete_metric(&stack, "disk-3").await;
    stored(&stack, 6, 1).await;

    // The connection's own filter, given at connect.
    let mut client = Socket::connect(&format!("{}?entityTypes=disk", stack.ws_url())).await;
    let items = client.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(ids(&items), set(&["disk-1", "disk-2"]));
    assert_eq!(items.len(), 2);
    // A filter sent with the request.
    let items = client
        .snapshot(r#"{"action":"snapshot","entityTypes":["stream"],"entityIds":["cpu-2"]}"#)
        .await;
    assert_eq!(ids(&items), set(&["cpu-2", "stream-1", "stream-2"]));
    // After a subscribe, the new filter is the connection's.
    client
        .send(r#"{"action":"subscribe","entityIds":["cpu-1"]}"#)
        .await;
    assert!(eventually(WAIT, || !client.replies("SUBSCRIBED").is_empty()).await);
    let items = client.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(ids(&items), set(&["cpu-1"]));
    // Nothing matching: one complete part without items.
    let items = client
        .snapshot(r#"{"action":"snapshot","entityTypes":["gpu"]}"#)
        .await;
    assert!(items.is_empty());
    let last = client.complete_snapshots().pop().unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0]["parts"], 1);
    // An invalid filter gets ERROR, and no snapshot.
    let before = client.complete_snapshots().len();
    client
        .send(r#"{"action":"snapshot","entityTypes":"disk"}"#)
        .await;
    assert!(eventually(WAIT, || !client.replies("ERROR").is_empty()).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.complete_snapshots().len(), before);
    // Without a filter anywhere: everything.
    let mut everything = Socket::connect(&stack.ws_url()).await;
    let items = everything.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(
        ids(&items),
        set(&["cpu-1", "cpu-2", "disk-1", "disk-2", "stream-1", "stream-2"])
    );
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_token_limits_entity_types_gets_only_those() {
    let mut config = StackConfig::for_tests();
    config.auth = Some(e2e::auth::config());
    let stack = start_stack(config).await;
    let entities: Vec<(String, &str)> = [
        ("stream-1", "stream"),
        ("stream-2", "stream"),
        ("disk-1", "disk"),
        ("cpu-1", "cpu"),
    ]
    .iter()
    .map(|(id, kind)| ((*id).to_owned(), *kind))
    .collect();
    put_all(&stack, &entities, 1, 1).await;
    stored(&stack, 4, 1).await;

    let token = e2e::auth::token("dana", Some(&["stream", "cpu"]));
    let mut limited = Socket::connect(&format!("{}?token={token}", stack.ws_url())).await;
    let items = limited.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(ids(&items), set(&["cpu-1", "stream-1", "stream-2"]));
    // Ids beyond the token's types match nothing of those types.
    let items = limited
        .snapshot(r#"{"action":"snapshot","entityIds":["disk-1","stream-2"]}"#)
        .await;
    assert_eq!(ids(&items), set(&["stream-2"]));
    // A type outside the token is refused.
    limited
        .send(r#"{"action":"snapshot","entityTypes":["disk"]}"#)
        .await;
    assert!(eventually(WAIT, || !limited.replies("ERROR").is_empty()).await);
    let error = &limited.replies("ERROR")[0];
    assert!(
        error["message"].as_str().unwrap().contains("disk"),
        "{error}"
    );
    // A token without a limit gets every type.
    let open = e2e::auth::token("erin", None);
    let mut unlimited = Socket::connect(&format!("{}?token={open}", stack.ws_url())).await;
    let items = unlimited.snapshot(r#"{"action":"snapshot"}"#).await;
    assert_eq!(ids(&items).len(), 4);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_batch_mode_the_entities_are_kept_and_snapshots_work_too() {
    let mut config = StackConfig::for_tests();
    config.mode = BroadcastMode::Batch;
    let stack = start_stack(config).await;
    let entities: Vec<(String, &str)> = (0..30)
        .map(|i| {
            (
                format!("batch-{i:02}"),
                if i % 3 == 0 { "disk" } else { "stream" },
            )
        })
        .collect();
    put_all(&stack, &entities, 1, 1).await;
    put_all(&stack, &entities[..10], 2, 1).await;
    stored(&stack, 10, 2).await;
    stored(&stack, 20, 1).await;
    let mut client = Socket::connect(&format!("{}?entityTypes=disk", stack.ws_url())).await;
    let items = client.snapshot(r#"{"action":"snapshot"}"#).await;
    let expected: BTreeSet<String> = entities
        .iter()
        .filter(|(_, kind)| *kind == "disk")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(ids(&items), expected);
    for item in &items {
        let id = item["data"]["entity_id"].as_str().unwrap();
        let latest = if entities[..10].iter().any(|(e, _)| e == id) {
            2
        } else {
            1
        };
        assert_eq!(item["data"]["metric_value"], latest, "{item}");
    }
    stack.shutdown().await;
}
