//! What the thin Lambda binaries share: logs, SDK configuration, and the route-handler loop.

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::config::RegistryConfig;
use crate::store::Registry;

/// The SDK configuration from the environment (region, credentials, and `AWS_ENDPOINT_URL`,
/// which points the functions at the local stack).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// The SDK configuration for a local stand-in (moto) at `endpoint`: static credentials and a
/// fixed region, so that nothing can reach a real AWS account by accident.
pub async fn loopback_aws_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local", "local", None, None, "local",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Runs one route handler as a Lambda function: JSON logs, config checked before the first
/// event, one DynamoDB client for the life of the process.
pub async fn serve_route<H, F>(handler: H) -> Result<(), Error>
where
    H: Fn(Registry, ApiGatewayWebsocketProxyRequest) -> F,
    F: Future<Output = ApiGatewayProxyResponse>,
{
    crate::telemetry::init_json_logs();
    let config = RegistryConfig::from_env()
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let registry = Registry::new(aws_sdk_dynamodb::Client::new(&aws_config().await), config);
    let handler = &handler;
    let registry = &registry;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handler(registry.clone(), event.payload).await)
        },
    ))
    .await
}
