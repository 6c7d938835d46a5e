//! The fanout Lambda: SQS batches of `FanoutJob`s, partial batch responses.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use fanout::handler::budget_until;
use fanout::management::ManagementApi;
use fanout::{Fanout, FanoutConfig};
use jobs::JobQueue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use registry::Registry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) = platform::function::start(FanoutConfig::from_env).await?;
    let fanout = Fanout {
        poster: ManagementApi::new(&sdk, &config.endpoint),
        registry: Registry::new(aws_sdk_dynamodb::Client::new(&sdk), config.registry),
        queue: JobQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.queue),
        policy: config.policy,
        concurrency: config.concurrency,
    };
    let fanout = &fanout;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = budget_until(event.context.deadline);
        let (response, report): (SqsBatchResponse, _) =
            fanout.handle(event.payload, deadline).await;
        report.log();
        report.metrics().emit();
        Ok::<_, Error>(response)
    }))
    .await
}
