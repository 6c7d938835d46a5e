//! Selective subscriptions with real clients: a filter given at connect or with `subscribe`
//! decides what a connection receives, exactly its share and never an empty message; a
//! subscription changed mid-stream misses nothing after it; a bad filter gets ERROR and
//! leaves the filter as it was.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::{Client, eventually, put_typed, settled, start_stack, updates_for};
use serde_json::Value;
use stack::{Stack, StackConfig};

const WAIT: Duration = Duration::from_secs(20);

/// The entity ids a client received updates for (every METRICS_UPDATE, every part).
fn entities(client: &Client) -> BTreeSet<String> {
    client
        .updates()
        .iter()
        .flat_map(|m| m["updates"].as_array().cloned().unwrap_or_default())
        .filter_map(|u| u["data"]["entity_id"].as_str().map(str::to_owned))
        .filter(|id| !id.starts_with("barrier-"))
        .collect()
}

/// The replies of a given type.
fn replies(client: &Client, kind: &str) -> Vec<Value> {
    client
        .received()
        .into_iter()
        .filter(|m| m["type"] == kind)
        .collect()
}

async fn subscribe(client: &mut Client, body: &str) {
    client.send(body).await.expect("send");
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// The stack's clients: one filtering types at connect, one subscribing to ids, one with no
/// filter, and a barrier entity every filter lets through (for `settled`).
async fn three_clients(stack: &Stack) -> (Client, Client, Client) {
    let url = stack.ws_url();
    let by_type = Client::connect(&format!("{url}?entityTypes=disk,barrier"))
        .await
        .unwrap();
    let mut by_id = Client::connect(&url).await.unwrap();
    subscribe(
        &mut by_id,
        r#"{"action":"subscribe","entityIds":["stream-2","cpu-1"],"entityTypes":["barrier"]}"#,
    )
    .await;
    let everything = Client::connect(&url).await.unwrap();
    assert!(eventually(WAIT, || !replies(&by_id, "SUBSCRIBED").is_empty()).await);
    (by_type, by_id, everything)
}

#[tokio::test]
async fn each_client_receives_exactly_what_its_filter_matches_and_no_empty_message() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let (by_type, by_id, everything) = three_clients(&stack).await;
    assert_eq!(
        replies(&by_id, "SUBSCRIBED")[0],
        serde_json::json!({"type": "SUBSCRIBED", "entityTypes": ["barrier"], "entityIds": ["cpu-1", "stream-2"]})
    );
    let mixed = [
        ("stream-1", "stream"),
        ("stream-2", "stream"),
        ("disk-1", "disk"),
        ("disk-2", "disk"),
        ("cpu-1", "cpu"),
    ];
    for (id, kind) in mixed {
        put_typed(&stack, id, kind, 1.0).await;
    }
    let clients = [by_type, by_id, everything];
    settled_typed(&stack, &clients).await;
    let [by_type, by_id, everything] = clients;
    assert_eq!(entities(&by_type), set(&["disk-1", "disk-2"]));
    assert_eq!(entities(&by_id), set(&["cpu-1", "stream-2"]));
    assert_eq!(
        entities(&everything),
        set(&["cpu-1", "disk-1", "disk-2", "stream-1", "stream-2"])
    );
    for client in [&by_type, &by_id, &everything] {
        for message in client.updates() {
            assert!(
                !message["updates"].as_array().unwrap().is_empty(),
                "an empty METRICS_UPDATE: {message}"
            );
        }
    }
    // A change no filter but one matches reaches only that one.
    put_typed(&stack, "cpu-2", "cpu", 2.0).await;
    let clients = [by_type, by_id, everything];
    settled_typed(&stack, &clients).await;
    assert!(!entities(&clients[0]).contains("cpu-2"));
    assert!(!entities(&clients[1]).contains("cpu-2"));
    assert!(entities(&clients[2]).contains("cpu-2"));
    stack.shutdown().await;
}

/// `settled` with a barrier entity of type `barrier`, which every test filter lets through.
async fn settled_typed(stack: &Stack, clients: &[Client]) {
    let barrier = format!("barrier-{:08x}", rand::random::<u32>());
    put_typed(stack, &barrier, "barrier", 0.0).await;
    let reached = eventually(WAIT, || {
        clients.iter().all(|c| !updates_for(c, &barrier).is_empty())
    })
    .await;
    assert!(reached, "the barrier did not reach every client");
    settled(stack, &[]).await;
}

#[tokio::test]
async fn a_subscription_changed_mid_stream_misses_nothing_after_it() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let mut client = Client::connect(&format!("{}?entityTypes=disk", stack.ws_url()))
        .await
        .unwrap();
    put_typed(&stack, "before", "stream", 1.0).await;
    put_typed(&stack, "disk-0", "disk", 1.0).await;
    assert!(eventually(WAIT, || entities(&client).contains("disk-0")).await);
    subscribe(
        &mut client,
        r#"{"action":"subscribe","entityTypes":["stream"]}"#,
    )
    .await;
    assert!(eventually(WAIT, || !replies(&client, "SUBSCRIBED").is_empty()).await);
    let after: Vec<String> = (0..20).map(|i| format!("after-{i:02}")).collect();
    for id in &after {
        put_typed(&stack, id, "stream", 2.0).await;
        put_typed(&stack, "disk-1", "disk", 2.0).await;
    }
    let all_after = eventually(WAIT, || {
        let got = entities(&client);
        after.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(all_after, "missed: {:?}", {
        let got = entities(&client);
        after
            .iter()
            .filter(|id| !got.contains(*id))
            .cloned()
            .collect::<Vec<_>>()
    });
    settled(&stack, &[]).await;
    let got = entities(&client);
    assert!(
        !got.contains("before"),
        "a change from before the subscribe"
    );
    assert!(!got.contains("disk-1"), "a type no longer subscribed");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_bad_filter_gets_error_and_leaves_the_filter_unchanged() {
    let stack = start_stack(StackConfig::for_tests()).await;
    let mut client = Client::connect(&format!("{}?entityTypes=disk", stack.ws_url()))
        .await
        .unwrap();
    let too_many: Vec<String> = (0..101).map(|i| format!("\"e{i}\"")).collect();
    for bad in [
        r#"{"action":"subscribe","entityTypes":"stream"}"#.to_owned(),
        r#"{"action":"subscribe","entityIds":[1,2]}"#.to_owned(),
        format!(
            r#"{{"action":"subscribe","entityIds":[{}]}}"#,
            too_many.join(",")
        ),
    ] {
        subscribe(&mut client, &bad).await;
    }
    assert!(eventually(WAIT, || replies(&client, "ERROR").len() == 3).await);
    for error in replies(&client, "ERROR") {
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("filter is unchanged"),
            "{error}"
        );
    }
    put_typed(&stack, "stream-1", "stream", 1.0).await;
    put_typed(&stack, "disk-1", "disk", 1.0).await;
    assert!(eventually(WAIT, || entities(&client).contains("disk-1")).await);
    settled(&stack, &[]).await;
    assert_eq!(entities(&client), set(&["disk-1"]));
    // A connect with a bad filter is refused.
    let refused = Client::connect(&format!(
        "{}?entityTypes={}",
        stack.ws_url(),
        "x".repeat(200)
    ))
    .await;
    assert!(refused.is_err());
    stack.shutdown().await;
}

#[tokio::test]
async fn a_token_that_limits_types_refuses_other_types_and_limits_what_is_received() {
    let mut config = StackConfig::for_tests();
    config.auth = Some(e2e::auth::config());
    let stack = start_stack(config).await;
    let token = e2e::auth::token("carol", Some(&["disk", "barrier"]));
    let url = format!("{}?token={token}", stack.ws_url());
    // At connect: a type outside the token refuses the handshake.
    assert!(
        Client::connect(&format!("{url}&entityTypes=stream"))
            .await
            .is_err()
    );
    let mut client = Client::connect(&url).await.unwrap();
    subscribe(
        &mut client,
        r#"{"action":"subscribe","entityTypes":["stream"]}"#,
    )
    .await;
    assert!(eventually(WAIT, || !replies(&client, "ERROR").is_empty()).await);
    assert!(
        replies(&client, "ERROR")[0]["message"]
            .as_str()
            .unwrap()
            .contains("may not receive entity types [\"stream\"]")
    );
    // An id filter is accepted, and the token still limits it to its types.
    subscribe(
        &mut client,
        r#"{"action":"subscribe","entityIds":["stream-1","disk-1"],"entityTypes":["barrier"]}"#,
    )
    .await;
    assert!(eventually(WAIT, || !replies(&client, "SUBSCRIBED").is_empty()).await);
    put_typed(&stack, "stream-1", "stream", 1.0).await;
    put_typed(&stack, "disk-1", "disk", 1.0).await;
    put_typed(&stack, "disk-2", "disk", 1.0).await;
    let clients = [client];
    settled_typed(&stack, &clients).await;
    assert_eq!(entities(&clients[0]), set(&["disk-1"]));
    stack.shutdown().await;
}
