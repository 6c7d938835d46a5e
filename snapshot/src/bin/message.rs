//! The `$default` route Lambda: see [`registry::handlers::message`]; snapshots from the state
//! table when `STATE_TABLE_NAME` is set (`snapshot::MessageConfig`).

use aws_lambda_events::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use registry::Registry;
use registry::handlers::{NoSnapshots, Snapshots};
use snapshot::service::Stats;
use snapshot::{MessageConfig, state_snapshots};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) = platform::function::start(MessageConfig::from_env).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let registry = Registry::new(dynamo.clone(), config.registry.clone());
    match &config.snapshots {
        Some(snapshots) => {
            let snapshots = state_snapshots(&sdk, &dynamo, snapshots);
            serve(&registry, &snapshots, Some(snapshots.stats())).await
        }
        None => serve(&registry, &NoSnapshots, None).await,
    }
}

/// One client message per invocation; the snapshots' counts emitted after each that had any.
async fn serve(
    registry: &Registry,
    snapshots: &impl Snapshots,
    stats: Option<&Stats>,
) -> Result<(), Error> {
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let response = registry::handlers::message(registry, snapshots, &event.payload).await;
            if let Some(counts) = stats.map(Stats::take).filter(|c| !c.is_empty()) {
                counts.metrics().emit();
            }
            Ok::<_, Error>(response)
        },
    ))
    .await
}
