//! The processor Lambda: DynamoDB stream batches of the metrics table.

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use jobs::JobQueue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use processor::{Processor, ProcessorConfig};
use registry::Registry;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) = platform::function::start(ProcessorConfig::from_env).await?;
    let processor = Processor {
        registry: Registry::new(aws_sdk_dynamodb::Client::new(&sdk), config.registry.clone()),
        queue: JobQueue::new(aws_sdk_sqs::Client::new(&sdk), &config.queue),
        config,
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        match processor.handle(&event.payload).await {
            Ok(report) => {
                report.log();
                report.metrics().emit();
                Ok(DynamoDbEventResponse::default())
            }
            Err(error) => {
                // Failing the invocation makes Lambda retry the batch, bisect it, and in the
                // end send it to the on-failure destination.
                tracing::error!(%error, "broadcast failed; the batch will be retried");
                Err(Error::from(error))
            }
        }
    }))
    .await
}
