//! Fresh, uniquely named resources on the moto server that `make test` starts, so that tests
//! share one moto in parallel; and route events as API Gateway sends them.

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use registry::{Buckets, Registry, RegistryConfig};

/// A name no other test (or test run) uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}

/// The SDK configuration for the moto server named by `AWS_ENDPOINT_URL`.
///
/// # Panics
/// When `AWS_ENDPOINT_URL` is not set to a loopback address: these tests must never reach a
/// real AWS account.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "AWS_ENDPOINT_URL must point at a local moto server (got {endpoint:?}); run `make test`"
    );
    stack::moto::sdk_config(&endpoint).await
}

/// A registry over a new, empty connections table with `buckets` GSI partitions.
pub async fn fresh_registry(buckets: u16) -> Registry {
    let mut config = RegistryConfig::for_table(unique_name("connections"));
    config.buckets = Buckets::new(buckets).expect("1..=1000 buckets");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    stack::bootstrap::ensure_connections_table(&dynamo, &config)
        .await
        .expect("create connections table");
    Registry::new(dynamo, config)
}

/// A new, empty SQS queue: the client and the queue's URL.
pub async fn fresh_queue() -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let url = sqs
        .create_queue()
        .queue_name(unique_name("fanout"))
        .send()
        .await
        .expect("CreateQueue on moto")
        .queue_url
        .expect("a queue URL");
    (sqs, url)
}

/// A route event carrying what API Gateway always sets for these routes.
pub fn route_event(
    route_key: &str,
    connection_id: &str,
    body: Option<&str>,
) -> ApiGatewayWebsocketProxyRequest {
    let mut event = ApiGatewayWebsocketProxyRequest::default();
    let context = &mut event.request_context;
    context.route_key = Some(route_key.to_owned());
    context.event_type = Some(
        match route_key {
            "$connect" => "CONNECT",
            "$disconnect" => "DISCONNECT",
            _ => "MESSAGE",
        }
        .to_owned(),
    );
    context.connection_id = Some(connection_id.to_owned());
    context.connected_at = 1_764_104_603_000;
    context.request_time_epoch = context.connected_at;
    context.identity.source_ip = Some("198.51.100.23".to_owned());
    context.identity.user_agent = Some("e2e-test/1.0".to_owned());
    event.body = body.map(str::to_owned);
    event
}
