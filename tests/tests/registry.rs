//! The registry and its handlers against a DynamoDB-compatible server (moto, via `make test`).

use std::collections::HashSet;

use aws_lambda_events::encodings::Body;
use e2e::fixtures::{fresh_registry, route_event, sdk_config};
use futures::TryStreamExt;
use registry::connection::MAX_CLIENT_TEXT_BYTES;
use registry::{Buckets, Connection, Touch, handlers};
use serde_json::Value;

fn body_json(body: Option<Body>) -> Value {
    match body {
        Some(Body::Text(text)) => serde_json::from_str(&text).expect("JSON reply"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_writes_exactly_the_expected_row() {
    let registry = fresh_registry(1).await;
    let response = handlers::connect(
        &registry,
        &route_event("$connect", "L0SM9cOFvHcCIhw=", None),
    )
    .await;
    assert_eq!(response.status_code, 200);

    let row = registry
        .get("L0SM9cOFvHcCIhw=")
        .await
        .unwrap()
        .expect("row written");
    assert_eq!(
        row,
        Connection {
            connection_id: "L0SM9cOFvHcCIhw=".into(),
            connected: "true".into(),
            connected_at: 1_764_104_603_000,
            source_ip: Some("198.51.100.23".into()),
            user_agent: Some("e2e-test/1.0".into()),
            ttl: 1_764_104_603 + 86_400,
            last_seen_at: None,
            subject: None,
            allowed_entity_types: None,
            entity_types: None,
            entity_ids: None,
        }
    );
    assert!(
        response.headers.get("sec-websocket-protocol").is_none(),
        "no subprotocol offered, none answered"
    );
}

#[tokio::test]
async fn an_authorized_connect_stores_the_subject_and_answers_the_offered_subprotocol() {
    let registry = fresh_registry(1).await;
    let mut event = route_event("$connect", "AuthAuthAuth01A=", None);
    event.request_context.authorizer.fields = serde_json::from_value(serde_json::json!({
        "principalId": "alice", "subject": "alice", "entityTypes": "stream,disk"
    }))
    .unwrap();
    event.headers.insert(
        "Sec-WebSocket-Protocol",
        "eyJhbGciOiJIUzI1NiJ9.e30.sig, iops".parse().unwrap(),
    );
    let response = handlers::connect(&registry, &event).await;
    assert_eq!(response.status_code, 200);
    assert_eq!(
        response.headers["sec-websocket-protocol"],
        "eyJhbGciOiJIUzI1NiJ9.e30.sig"
    );
    let row = registry.get("AuthAuthAuth01A=").await.unwrap().unwrap();
    assert_eq!(row.subject.as_deref(), Some("alice"));
    assert_eq!(
        row.allowed_entity_types,
        Some(vec!["stream".to_owned(), "disk".to_owned()])
    );
}

#[tokio::test]
async fn connect_uses_the_bucketed_partition_key() {
    let registry = fresh_registry(8).await;
    handlers::connect(&registry, &route_event("$connect", "abc=", None)).await;
    let row = registry.get("abc=").await.unwrap().unwrap();
    assert_eq!(
        row.connected,
        Buckets::new(8).unwrap().partition_key("abc=")
    );
    assert!(row.connected.starts_with("true#"));
}

#[tokio::test]
async fn connect_answers_500_when_the_table_is_missing() {
    let mut config = registry::RegistryConfig::for_table("no-such-table");
    config.ttl_seconds = 60;
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let registry = registry::Registry::new(client, config);
    let response = handlers::connect(&registry, &route_event("$connect", "x=", None)).await;
    assert_eq!(response.status_code, 500);
}

#[tokio::test]
async fn disconnect_removes_the_row_and_unknown_ids_succeed() {
    let registry = fresh_registry(1).await;
    handlers::connect(&registry, &route_event("$connect", "gone=", None)).await;
    assert!(registry.get("gone=").await.unwrap().is_some());

    let response =
        handlers::disconnect(&registry, &route_event("$disconnect", "gone=", None)).await;
    assert_eq!(response.status_code, 200);
    assert!(registry.get("gone=").await.unwrap().is_none());

    let again =
        handlers::disconnect(&registry, &route_event("$disconnect", "never-seen=", None)).await;
    assert_eq!(again.status_code, 200);
}

#[tokio::test]
async fn ping_answers_pong_and_refreshes_the_ttl() {
    let registry = fresh_registry(1).await;
    handlers::connect(&registry, &route_event("$connect", "p=", None)).await;
    let before = registry.get("p=").await.unwrap().unwrap();

    let response = handlers::route(
        &registry,
        &handlers::NoSnapshots,
        &route_event("$default", "p=", Some(r#"{"action":"ping"}"#)),
    )
    .await;
    assert_eq!(response.status_code, 200);
    assert_eq!(
        body_json(response.body),
        serde_json::json!({"type": "PONG"})
    );

    let after = registry.get("p=").await.unwrap().unwrap();
    let seen = after.last_seen_at.expect("lastSeenAt set");
    assert!(
        seen > before.connected_at,
        "the ping is later than the fixture's connect"
    );
    assert_eq!(after.ttl, seen / 1000 + 86_400);
    assert!(after.ttl > before.ttl);
}

#[tokio::test]
async fn ping_does_not_resurrect_a_removed_connection() {
    let registry = fresh_registry(1).await;
    let response = handlers::message(
        &registry,
        &handlers::NoSnapshots,
        &route_event("$default", "ghost=", Some(r#"{"action":"ping"}"#)),
    )
    .await;
    assert_eq!(body_json(response.body)["type"], "PONG");
    assert!(registry.get("ghost=").await.unwrap().is_none());
}

#[tokio::test]
async fn a_second_ping_within_the_touch_interval_writes_nothing() {
    let registry = fresh_registry(1).await;
    handlers::connect(&registry, &route_event("$connect", "twice=", None)).await;
    let ping = route_event("$default", "twice=", Some(r#"{"action":"ping"}"#));
    handlers::message(&registry, &handlers::NoSnapshots, &ping).await;
    let first = registry.get("twice=").await.unwrap().unwrap();
    let seen = first.last_seen_at.expect("the first ping writes");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let response = handlers::message(&registry, &handlers::NoSnapshots, &ping).await;
    assert_eq!(body_json(response.body)["type"], "PONG");
    assert_eq!(registry.get("twice=").await.unwrap().unwrap(), first);

    // Just inside the interval: still nothing written.
    let interval = registry.config().touch_interval_ms();
    let touched = registry.touch("twice=", seen + interval).await.unwrap();
    assert_eq!(touched, Touch::Recent);
    assert_eq!(registry.get("twice=").await.unwrap().unwrap(), first);
}

#[tokio::test]
async fn a_ping_after_the_touch_interval_refreshes_the_row() {
    let registry = fresh_registry(1).await;
    handlers::connect(&registry, &route_event("$connect", "later=", None)).await;
    let t0 = 1_764_104_700_000;
    assert_eq!(
        registry.touch("later=", t0).await.unwrap(),
        Touch::Refreshed
    );

    let later = t0 + registry.config().touch_interval_ms() + 1;
    assert_eq!(
        registry.touch("later=", later).await.unwrap(),
        Touch::Refreshed
    );
    let row = registry.get("later=").await.unwrap().unwrap();
    assert_eq!(row.last_seen_at, Some(later));
    assert_eq!(row.ttl, later / 1000 + 86_400);
}

#[tokio::test]
async fn the_conditional_write_alone_skips_a_recent_row_and_never_creates_one() {
    let registry = fresh_registry(1).await;
    handlers::connect(&registry, &route_event("$connect", "cond=", None)).await;
    let t0 = 1_764_104_700_000;
    assert_eq!(
        registry.refresh("cond=", t0).await.unwrap(),
        Touch::Refreshed
    );
    let row = registry.get("cond=").await.unwrap().unwrap();

    // The condition, not only the read in front of it, refuses a recent row.
    assert_eq!(
        registry.refresh("cond=", t0 + 1_000).await.unwrap(),
        Touch::Recent
    );
    assert_eq!(registry.get("cond=").await.unwrap().unwrap(), row);

    handlers::disconnect(&registry, &route_event("$disconnect", "cond=", None)).await;
    let later = t0 + registry.config().touch_interval_ms() + 1;
    assert_eq!(registry.refresh("cond=", later).await.unwrap(), Touch::Gone);
    assert_eq!(registry.touch("cond=", later).await.unwrap(), Touch::Gone);
    assert_eq!(registry.touch("cond=", t0 + 1).await.unwrap(), Touch::Gone);
    assert!(
        registry.get("cond=").await.unwrap().is_none(),
        "not resurrected"
    );
}

#[tokio::test]
async fn a_huge_user_agent_is_stored_cut_to_the_limit() {
    let registry = fresh_registry(1).await;
    let mut event = route_event("$connect", "ua=", None);
    let huge = "Mozilla/5.0 (X11; Linux x86_64) ".repeat(12_200); // 390,400 bytes
    event.request_context.identity.user_agent = Some(huge.clone());
    let response = handlers::connect(&registry, &event).await;
    assert_eq!(response.status_code, 200);
    let row = registry.get("ua=").await.unwrap().unwrap();
    let stored = row.user_agent.expect("userAgent stored");
    assert!(
        stored.len() <= MAX_CLIENT_TEXT_BYTES,
        "{} bytes",
        stored.len()
    );
    assert!(huge.starts_with(&stored) && !stored.is_empty());
}

#[tokio::test]
async fn malformed_messages_get_error_replies() {
    let registry = fresh_registry(1).await;
    let oversized = format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(10_000));
    for body in [
        Some("not json"),
        Some(r#"{"action":"dance"}"#),
        Some("{}"),
        None,
        Some(oversized.as_str()),
    ] {
        let response = handlers::message(
            &registry,
            &handlers::NoSnapshots,
            &route_event("$default", "m=", body),
        )
        .await;
        assert_eq!(response.status_code, 200, "the connection is never failed");
        let reply = body_json(response.body);
        assert_eq!(reply["type"], "ERROR", "{body:?}");
        assert!(!reply["message"].as_str().unwrap().is_empty());
    }
}

async fn seed(registry: &registry::Registry, n: usize) -> Vec<String> {
    let config = registry.config();
    let connections: Vec<Connection> = (0..n)
        .map(|i| {
            Connection::new(
                format!("conn{i:06}AAAAA="),
                1_764_104_603_000 + i as i64,
                None,
                None,
                config.buckets,
                config.ttl_seconds,
            )
        })
        .collect();
    registry.register_many(&connections).await.unwrap();
    connections.into_iter().map(|c| c.connection_id).collect()
}

async fn assert_pages_name_everyone_once(buckets: u16) {
    let registry = fresh_registry(buckets).await;
    let ids = seed(&registry, 2_500).await;

    let pages: Vec<_> = registry
        .live_connections(Some(100))
        .try_collect()
        .await
        .unwrap();
    let mut seen = HashSet::new();
    for page in &pages {
        assert!(page.connection_ids.len() <= 100);
        for id in &page.connection_ids {
            assert!(seen.insert(id.clone()), "{id} paged twice");
        }
    }
    assert_eq!(seen, ids.into_iter().collect::<HashSet<_>>());
    let partitions: HashSet<_> = pages.iter().map(|p| p.partition.as_str()).collect();
    assert_eq!(
        partitions.len(),
        usize::from(buckets),
        "every bucket was queried"
    );
    assert!(
        pages.len() >= 25,
        "a page size of 100 means at least 25 pages"
    );
}

#[tokio::test]
async fn paging_yields_every_connection_exactly_once_with_one_bucket() {
    assert_pages_name_everyone_once(1).await;
}

#[tokio::test]
async fn paging_yields_every_connection_exactly_once_with_eight_buckets() {
    assert_pages_name_everyone_once(8).await;
}

#[tokio::test]
async fn an_empty_registry_costs_one_query_per_bucket() {
    let registry = fresh_registry(4).await;
    let pages: Vec<_> = registry.live_connections(None).try_collect().await.unwrap();
    assert_eq!(pages.len(), 4);
    assert!(pages.iter().all(|p| p.connection_ids.is_empty()));
}

#[tokio::test]
async fn remove_many_removes_all_sixty() {
    let registry = fresh_registry(2).await;
    let mut ids = seed(&registry, 70).await;
    let keep = ids.split_off(60);
    let mut doomed = ids.clone();
    doomed.push(ids[0].clone()); // a duplicate must not fail the batch
    registry.remove_many(&doomed).await.unwrap();

    for id in &ids {
        assert!(
            registry.get(id).await.unwrap().is_none(),
            "{id} still there"
        );
    }
    let left: Vec<String> = registry
        .live_connections(None)
        .map_ok(|p| p.connection_ids)
        .try_concat()
        .await
        .unwrap();
    assert_eq!(
        left.into_iter().collect::<HashSet<_>>(),
        keep.into_iter().collect()
    );
}

#[tokio::test]
async fn a_bucket_change_still_pages_rows_written_under_the_old_count() {
    let old = fresh_registry(1).await;
    let old_ids = seed(&old, 30).await;
    let mut config = old.config().clone();
    config.buckets = Buckets::new(8).unwrap();
    config.previous_buckets = Some(Buckets::SEED);
    let new = registry::Registry::new(old.client().clone(), config);
    handlers::connect(&new, &route_event("$connect", "fresh=", None)).await;

    let ids: HashSet<String> = new
        .live_connections(Some(7))
        .map_ok(|p| p.connection_ids)
        .try_concat()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(ids.len(), 31);
    assert!(ids.contains("fresh=") && old_ids.iter().all(|id| ids.contains(id)));
}

#[tokio::test]
async fn subjects_are_read_in_batches_for_the_rows_that_have_one() {
    let registry = fresh_registry(1).await;
    let ids: Vec<String> = (0..150).map(|i| format!("Subj{i:011}A=")).collect();
    let rows: Vec<Connection> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let identity = (i % 3 != 0).then(|| registry::identity::Identity {
                subject: format!("user-{i}"),
                entity_types: None,
            });
            Connection::new(id.clone(), 1, None, None, Buckets::SEED, 3600).with_identity(identity)
        })
        .collect();
    registry.register_many(&rows).await.unwrap();
    let mut asked = ids.clone();
    asked.push("NoSuchRow000001=".to_owned());
    asked.push(ids[1].clone()); // a repeated id is read once

    let subjects = registry.subjects(&asked).await.unwrap();
    assert_eq!(
        subjects.len(),
        100,
        "the 100 rows with a subject, over two batches"
    );
    assert_eq!(subjects[&ids[1]], "user-1");
    assert_eq!(subjects[&ids[149]], "user-149");
    assert!(!subjects.contains_key(&ids[0]), "a row without a subject");
    assert!(registry.subjects(&[]).await.unwrap().is_empty());
}
