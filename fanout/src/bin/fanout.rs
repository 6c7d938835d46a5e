//! The fanout Lambda: SQS batches of `FanoutJob`s, partial batch responses.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use fanout::handler::budget_until;
use fanout::management::ManagementApi;
use fanout::{Fanout, FanoutConfig};
use jobs::JobQueue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use registry::Registry;
use rounds::{Coordinator, RoundStore, Ticks};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) = platform::function::start(FanoutConfig::from_env).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let fanout = Fanout {
        poster: ManagementApi::new(&sdk, &config.endpoint),
        registry: Registry::new(dynamo.clone(), config.registry.clone()),
        queue: JobQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.queue),
        policy: config.policy,
        concurrency: config.concurrency,
        budget: fanout::budget::PostBudget::configured(&dynamo, &config),
        rounds: rounds_coordinator(&dynamo, &sdk, &config),
    };
    let fanout = &fanout;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = budget_until(event.context.deadline);
        let (response, report): (SqsBatchResponse, _) =
            fanout.handle(event.payload, deadline).await;
        report.log();
        report.metrics().emit();
        for ended in &report.rounds_ended {
            ended.metrics().emit();
        }
        Ok::<_, Error>(response)
    }))
    .await
}

/// Rounds are counted where the processor keeps them, when both are configured.
fn rounds_coordinator(
    dynamo: &aws_sdk_dynamodb::Client,
    sdk: &aws_config::SdkConfig,
    config: &FanoutConfig,
) -> Option<Coordinator> {
    Some(Coordinator {
        store: RoundStore::new(dynamo.clone(), config.state_table.clone()?),
        ticks: Ticks::new(
            aws_sdk_sqs::Client::new(sdk),
            config.tick_queue_url.clone()?,
        ),
    })
}
