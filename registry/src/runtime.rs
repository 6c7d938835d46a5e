//! What the thin route binaries share (`connect`, `disconnect`; `message` is the `snapshot`
//! crate's, built the same way): configuration checked before the first event,
//! one DynamoDB client for the life of the process, and the Lambda loop.

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::config::RegistryConfig;
use crate::store::Registry;

/// Runs one route handler as a Lambda function: config checked before the first event, one
/// DynamoDB client for the life of the process.
pub async fn serve_route<H, F>(handler: H) -> Result<(), Error>
where
    H: Fn(Registry, ApiGatewayWebsocketProxyRequest) -> F,
    F: Future<Output = ApiGatewayProxyResponse>,
{
    let (config, sdk) = platform::function::start(RegistryConfig::from_env).await?;
    let registry = Registry::new(aws_sdk_dynamodb::Client::new(&sdk), config);
    let handler = &handler;
    let registry = &registry;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, Error>(handler(registry.clone(), event.payload).await)
        },
    ))
    .await
}
