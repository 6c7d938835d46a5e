//! Authentication end to end: real WebSocket clients against a local stack with
//! `AUTH_MODE=jwt`, the authorizer running before `$connect` as API Gateway runs it; and the
//! HS256 secret read from Secrets Manager (moto).

use std::time::Duration;

use e2e::auth::{expired_token, forged_token, subjects, token};
use e2e::fixtures::{sdk_config, unique_name};
use e2e::{Client, eventually, put_metric, start_stack, updates_for};
use stack::{Stack, StackConfig};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, http};

const WAIT: Duration = Duration::from_secs(20);

async fn auth_stack() -> Stack {
    let mut config = StackConfig::for_tests();
    config.auth = Some(e2e::auth::config());
    start_stack(config).await
}

/// The HTTP status a refused handshake got.
async fn refused_with(request: http::Request<()>) -> u16 {
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the handshake was accepted"),
    }
}

fn request(url: &str) -> http::Request<()> {
    url.into_client_request().expect("a WebSocket request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_the_handshake_is_refused_and_no_row_is_written() {
    let stack = auth_stack().await;
    let url = stack.ws_url();
    assert_eq!(refused_with(request(&url)).await, 401, "no token");
    let forged = format!("{url}?token={}", forged_token("mallory"));
    assert_eq!(refused_with(request(&forged)).await, 403, "forged");
    let expired = format!("{url}?token={}", expired_token("alice"));
    assert_eq!(refused_with(request(&expired)).await, 403, "expired");
    let mut garbage = request(&url);
    garbage
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "not.a.jwt".parse().unwrap());
    assert_eq!(
        refused_with(garbage).await,
        403,
        "a malformed token offered as subprotocol"
    );

    assert!(
        subjects(&stack).await.is_empty(),
        "no row for a refused client"
    );
    assert_eq!(stack.gateway.socket_count(), 0);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_connects_stores_the_subject_and_receives_updates() {
    let stack = auth_stack().await;
    let url = format!("{}?token={}", stack.ws_url(), token("alice", None));
    let by_query = Client::connect(&url).await.expect("a valid token connects");

    let bearer = token("bob", Some(&["stream"]));
    let mut offered = request(&stack.ws_url());
    offered.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("{bearer}, iops-dashboard").parse().unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async(offered)
        .await
        .expect("a token offered as subprotocol connects");
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        bearer.as_str(),
        "$connect answers the offered protocol, as browsers require"
    );
    let by_protocol = Client::from_socket(socket);

    assert!(eventually(WAIT, || stack.gateway.socket_count() == 2).await);
    assert_eq!(subjects(&stack).await, ["alice", "bob"]);

    put_metric(&stack, "stream-auth", 5.0).await;
    let arrived = eventually(WAIT, || {
        [&by_query, &by_protocol]
            .iter()
            .all(|c| !updates_for(c, "stream-auth").is_empty())
    })
    .await;
    assert!(arrived, "both authenticated clients get the update");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_secret_is_read_from_secrets_manager() {
    let sdk = sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let created = client
        .create_secret()
        .name(unique_name("jwt-secret"))
        .secret_string("from-secrets-manager-0123456789abcdef")
        .send()
        .await
        .expect("CreateSecret on moto");
    let arn = created.arn().expect("an ARN");
    let fetched = authorizer::secret::fetch_both(&client, arn).await.unwrap();
    assert_eq!(
        fetched,
        ("from-secrets-manager-0123456789abcdef".to_owned(), None)
    );

    // A rotation: the new value is current, the old one previous (still accepted).
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string("rotated-value-0123456789abcdef012345")
        .send()
        .await
        .expect("PutSecretValue on moto");
    let fetched = authorizer::secret::fetch_both(&client, arn).await.unwrap();
    assert_eq!(
        fetched,
        (
            "rotated-value-0123456789abcdef012345".to_owned(),
            Some("from-secrets-manager-0123456789abcdef".to_owned())
        )
    );

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope";
    let error = authorizer::secret::fetch_both(&client, missing)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("GetSecretValue"), "{error}");
}
