//! The whole pipeline with real WebSocket clients: metrics-table writes -> stream poller ->
//! processor -> SQS -> fanout -> the local API Gateway -> sockets.

use std::collections::HashMap;
use std::time::Duration;

use e2e::{
    Client, connect_many, delete_metric, eventually, put_metric, settled, start_stack,
    update_metric, updates_for,
};
use registry::Connection;
use serde_json::{Value, json};
use stack::StackConfig;

const WAIT: Duration = Duration::from_secs(20);

/// Every (broadcast id, part) a client received, with how often.
fn parts_seen(client: &Client) -> HashMap<(String, u64), usize> {
    let mut seen = HashMap::new();
    for m in client.updates() {
        let key = (
            m["id"].as_str().unwrap_or_default().to_owned(),
            m["part"].as_u64().unwrap_or(0),
        );
        *seen.entry(key).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reaches_two_hundred_clients_exactly_once_with_the_right_event_type() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let clients = connect_many(&stack.ws_url(), 200).await;
    assert!(eventually(WAIT, || stack.gateway.socket_count() == 200).await);

    let steps: [(&str, f64); 3] = [("INSERT", 1234.0), ("MODIFY", 1500.5), ("REMOVE", 0.0)];
    for (event_type, value) in steps {
        match event_type {
            "INSERT" => put_metric(&stack, "stream-001", value).await,
            "MODIFY" => update_metric(&stack, "stream-001", value).await,
            _ => delete_metric(&stack, "stream-001").await,
        }
        let arrived = eventually(WAIT, || {
            clients.iter().all(|c| {
                updates_for(c, "stream-001")
                    .iter()
                    .any(|u| u["eventType"] == event_type)
            })
        })
        .await;
        assert!(arrived, "{event_type} did not reach every client");
    }
    settled(&stack, &clients).await;
    let label = processor::message::stream_label(&stack.resources.metrics_stream_arn)
        .expect("the stack's stream ARN ends in its label")
        .to_owned();

    for client in &clients {
        let updates = updates_for(client, "stream-001");
        let types: Vec<&str> = updates
            .iter()
            .map(|u| u["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["INSERT", "MODIFY", "REMOVE"],
            "each change exactly once, in order"
        );
        assert_eq!(
            updates[0]["data"],
            json!({"entity_id": "stream-001", "entity_type": "stream", "metric_value": 1234, "timestamp": "2024-11-04T12:34:56Z"})
        );
        assert_eq!(updates[1]["data"]["metric_value"], 1500.5);
        assert_eq!(
            updates[2]["data"]["metric_value"], 1500.5,
            "REMOVE carries the old image"
        );
        for update in &updates {
            assert!(update["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
            assert!(update["sequence"].is_string());
        }
        for message in client.updates() {
            assert_eq!(message["type"], "METRICS_UPDATE");
            assert!(
                message["id"].is_string() && message["part"].is_u64() && message["parts"].is_u64()
            );
            assert_eq!(
                message["stream"],
                label.as_str(),
                "the stack's stream label"
            );
        }
        assert!(
            parts_seen(client).values().all(|n| *n == 1),
            "a part arrived twice"
        );
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_whose_connection_is_gone_is_deleted_after_the_next_broadcast() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let live = Client::connect(&stack.ws_url()).await.unwrap();
    let config = stack.registry.config().clone();
    // A row $disconnect never removed: the socket is long gone.
    let stale = Connection::new("GoneGoneGone01A=", 1, None, None, config.buckets, 3600);
    stack.registry.register(&stale).await.unwrap();

    put_metric(&stack, "stream-002", 7.0).await;
    assert!(eventually(WAIT, || !updates_for(&live, "stream-002").is_empty()).await);
    let removed = async {
        for _ in 0..100 {
            if stack
                .registry
                .get("GoneGoneGone01A=")
                .await
                .unwrap()
                .is_none()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    assert!(removed.await, "the stale row is removed on 410 Gone");
    assert!(stack.gateway.counters().rejected_gone >= 1);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_128_kb_arrives_in_parts_with_no_update_lost() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let clients = connect_many(&stack.ws_url(), 3).await;
    // 40 entities of ~5 KB each, written together: one stream batch of ~200 KB.
    let pad = "x".repeat(5_000);
    let writes = (0..40).map(|i| {
        let dynamo = stack.dynamo.clone();
        let table = stack.resources.names.metrics_table.clone();
        let pad = pad.clone();
        async move {
            dynamo
                .put_item()
                .table_name(table)
                .item(
                    "entity_id",
                    aws_sdk_dynamodb::types::AttributeValue::S(format!("big-{i:02}")),
                )
                .item(
                    "metric_value",
                    aws_sdk_dynamodb::types::AttributeValue::N(i.to_string()),
                )
                .item("notes", aws_sdk_dynamodb::types::AttributeValue::S(pad))
                .send()
                .await
                .unwrap();
        }
    });
    futures::future::join_all(writes).await;

    let all_arrived =
        |c: &Client| (0..40).all(|i| !updates_for(c, &format!("big-{i:02}")).is_empty());
    assert!(eventually(WAIT, || clients.iter().all(all_arrived)).await);
    settled(&stack, &clients).await;
    for client in &clients {
        let messages = client.updates();
        assert!(messages.len() >= 2, "~200 KB needs at least two parts");
        for message in &messages {
            let size = serde_json::to_string(message).unwrap().len();
            assert!(size <= 128 * 1024, "a part of {size} bytes");
            assert!(message["part"].as_u64().unwrap() <= message["parts"].as_u64().unwrap());
        }
        for i in 0..40 {
            let got = updates_for(client, &format!("big-{i:02}"));
            assert_eq!(got.len(), 1, "big-{i:02} exactly once");
            assert_eq!(got[0]["data"]["notes"].as_str().unwrap().len(), 5_000);
        }
        assert!(parts_seen(client).values().all(|n| *n == 1));
    }
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_lands_in_the_dlq_while_broadcasts_go_on() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let client = Client::connect(&stack.ws_url()).await.unwrap();
    stack
        .sqs
        .send_message()
        .queue_url(&stack.resources.fanout_queue_url)
        .message_body(r#"{"v":1,"this is":"not a job"}"#)
        .send()
        .await
        .unwrap();

    put_metric(&stack, "stream-003", 1.0).await;
    assert!(
        eventually(WAIT, || !updates_for(&client, "stream-003").is_empty()).await,
        "broadcasts go on"
    );

    let dlq = &stack.resources.fanout_dlq_url;
    let mut in_dlq = None;
    for _ in 0..60 {
        let out = stack
            .sqs
            .receive_message()
            .queue_url(dlq)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(message) = out.messages.unwrap_or_default().pop() {
            in_dlq = message.body;
            break;
        }
    }
    assert_eq!(in_dlq.as_deref(), Some(r#"{"v":1,"this is":"not a job"}"#));
    put_metric(&stack, "stream-004", 2.0).await;
    assert!(eventually(WAIT, || !updates_for(&client, "stream-004").is_empty()).await);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_gets_pong_and_a_malformed_message_gets_error_with_the_socket_open() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let mut client = Client::connect(&stack.ws_url()).await.unwrap();
    client.send(r#"{"action":"ping"}"#).await.unwrap();
    assert!(
        eventually(WAIT, || client
            .received()
            .contains(&json!({"type": "PONG"})))
        .await
    );

    client.send("this is not json").await.unwrap();
    assert!(
        eventually(WAIT, || client
            .received()
            .iter()
            .any(|m| m["type"] == "ERROR"))
        .await
    );
    let error: Value = client
        .received()
        .into_iter()
        .find(|m| m["type"] == "ERROR")
        .unwrap();
    assert!(error["message"].as_str().unwrap().contains("not JSON"));

    client.send(r#"{"action":"ping"}"#).await.unwrap();
    assert!(
        eventually(WAIT, || client
            .received()
            .iter()
            .filter(|m| m["type"] == "PONG")
            .count()
            == 2)
        .await
    );
    assert!(!client.is_closed(), "the socket stays open");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connect_writes_the_row_and_its_close_removes_it() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let client = Client::connect(&stack.ws_url()).await.unwrap();
    assert!(eventually(WAIT, || stack.gateway.socket_count() == 1).await);
    let id = stack.gateway.socket_ids().pop().unwrap();
    let row = stack
        .registry
        .get(&id)
        .await
        .unwrap()
        .expect("a row for the new connection");
    assert_eq!(row.connected, "true");
    assert_eq!(row.source_ip.as_deref(), Some("127.0.0.1"));

    client.close().await;
    let mut removed = false;
    for _ in 0..100 {
        if stack.registry.get(&id).await.unwrap().is_none() {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(removed, "$disconnect removed the row");
    stack.shutdown().await;
}
