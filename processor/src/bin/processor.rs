//! The processor Lambda: DynamoDB stream batches of the metrics table, ticks from the tick
//! queue and the schedule (rounds mode).

use aws_lambda_events::streams::DynamoDbEventResponse;
use jobs::JobQueue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use processor::handler::coordinator;
use processor::trigger::Trigger;
use processor::{Processor, ProcessorConfig, ProcessorReport};
use registry::Registry;
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (config, sdk) = platform::function::start(ProcessorConfig::from_env).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let processor = Processor {
        registry: Registry::new(dynamo.clone(), config.registry.clone()),
        queue: JobQueue::new(sqs.clone(), &config.queue),
        rounds: coordinator(&config, &dynamo, &sqs),
        config,
    };
    let processor = &processor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Failing the invocation makes Lambda retry the batch (bisecting a stream batch, and in
        // the end sending it to the on-failure destination) or the tick.
        let result = match Trigger::of(event.payload)? {
            Trigger::Stream(event) => processor.handle(&event).await.map(|report| {
                emit(&report);
                json!(DynamoDbEventResponse::default())
            }),
            Trigger::Ticks(_) => processor.tick().await.map(|report| {
                emit(&report);
                json!({ "batchItemFailures": [] })
            }),
            Trigger::Schedule => scheduled(processor).await,
        };
        result.map_err(|error| {
            tracing::error!(%error, "processor failed; the event will be retried");
            Error::from(error)
        })
    }))
    .await
}

/// The schedule: start a round if one should have started, and report the rounds' state.
async fn scheduled(processor: &Processor) -> Result<Value, processor::ProcessorError> {
    let report = processor.tick().await?;
    emit(&report);
    if let Some(status) = processor.round_status().await? {
        status.metrics().emit();
    }
    Ok(Value::Null)
}

fn emit(report: &ProcessorReport) {
    report.log();
    report.metrics().emit();
    for metrics in report.round_metrics() {
        metrics.emit();
    }
}
