//! The processor against moto (`make test` starts it): a stream batch in, fanout jobs on a real (moto) SQS queue out.

use std::collections::HashMap;

use aws_lambda_events::dynamodb::Event;
use e2e::fixtures::{fresh_queue, fresh_registry, sdk_config};
use jobs::{FanoutJob, JobQueue, QueueSettings};
use processor::broadcast::BroadcastSettings;
use processor::{Processor, ProcessorConfig};
use registry::Connection;
use serde_json::{Value, json};

const QUEUE_MAX: usize = 256 * 1024;

async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(m.body.unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

fn stream_event(n: usize) -> Event {
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "eventID": format!("e{i}"), "eventName": "MODIFY", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_764_104_603,
                    "Keys": {"entity_id": {"S": format!("stream-{i:03}")}},
                    "NewImage": {"entity_id": {"S": format!("stream-{i:03}")}, "metric_value": {"N": format!("{i}")}},
                    "SequenceNumber": format!("{:021}", 1000 + i),
                    "SizeBytes": 60, "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

async fn processor(buckets: u16, shard_size: usize) -> (Processor, aws_sdk_sqs::Client, String) {
    let registry = fresh_registry(buckets).await;
    let (sqs, url) = fresh_queue().await;
    let config = ProcessorConfig {
        registry: registry.config().clone(),
        queue: QueueSettings {
            url: url.clone(),
            max_message_bytes: QUEUE_MAX,
        },
        max_message_bytes: processor::message::MAX_MESSAGE_BYTES,
        broadcast: BroadcastSettings {
            shard_size,
            page_size: Some(300),
            send_concurrency: 4,
        },
        rounds: None,
        batch_state_table: None,
    };
    let queue = JobQueue::new(sqs.clone(), &config.queue);
    (
        Processor {
            registry,
            queue,
            config,
            rounds: None,
        },
        sqs,
        url,
    )
}

#[tokio::test]
async fn every_connection_is_named_exactly_once_across_the_jobs() {
    let (processor, sqs, url) = processor(8, 200).await;
    let config = processor.registry.config().clone();
    let connections: Vec<Connection> = (0..2_500)
        .map(|i| {
            Connection::new(
                format!("c{i:014}="),
                1_764_104_603_000 + i,
                None,
                None,
                config.buckets,
                3600,
            )
        })
        .collect();
    processor
        .registry
        .register_many(&connections)
        .await
        .unwrap();

    let report = processor.handle(&stream_event(3)).await.unwrap();
    assert_eq!(report.stats.connections, 2_500);
    assert_eq!(report.parts, 1);
    assert!(report.stats.pages >= 8);

    let bodies = drain(&sqs, &url).await;
    assert_eq!(bodies.len() as u64, report.stats.jobs_sent);
    let mut named: HashMap<String, usize> = HashMap::new();
    for body in &bodies {
        assert!(body.len() <= QUEUE_MAX, "a message of {} bytes", body.len());
        let job = FanoutJob::decode(body).unwrap();
        assert!(job.connections.len() <= 200, "shard size respected");
        assert_eq!(Some(&job.broadcast_id), report.broadcast_id.as_ref());
        let message: Value = serde_json::from_str(job.parts[0].get()).unwrap();
        assert_eq!(message["type"], "METRICS_UPDATE");
        assert_eq!(message["updates"].as_array().unwrap().len(), 3);
        for id in job.connections {
            *named.entry(id).or_default() += 1;
        }
    }
    assert_eq!(named.len(), 2_500);
    assert!(named.values().all(|n| *n == 1), "nobody named twice");
}

#[tokio::test]
async fn an_empty_registry_sends_nothing() {
    let (processor, sqs, url) = processor(8, 1000).await;
    let report = processor.handle(&stream_event(2)).await.unwrap();
    assert_eq!(report.stats.connections, 0);
    assert_eq!(report.stats.pages, 8, "one Query per bucket");
    assert_eq!(report.stats.jobs_sent, 0);
    assert!(drain(&sqs, &url).await.is_empty());
}

#[tokio::test]
async fn a_large_batch_goes_out_in_parts_that_fit() {
    let (processor, sqs, url) = processor(1, 1000).await;
    let config = processor.registry.config().clone();
    processor
        .registry
        .register(&Connection::new(
            "only=",
            1,
            None,
            None,
            config.buckets,
            3600,
        ))
        .await
        .unwrap();
    let mut event = stream_event(60);
    for record in &mut event.records {
        record.change.new_image.insert(
            "blob".into(),
            serde_dynamo::AttributeValue::S("x".repeat(5_000)),
        );
    }
    let report = processor.handle(&event).await.unwrap();
    assert_eq!(report.parts, 3, "300 KB of updates in 128 KB parts");
    let jobs: Vec<FanoutJob> = drain(&sqs, &url)
        .await
        .iter()
        .map(|b| FanoutJob::decode(b).unwrap())
        .collect();
    let parts: Vec<_> = jobs.iter().flat_map(|j| j.parts.iter()).collect();
    assert_eq!(parts.len(), 3, "each part once for the one connection");
    assert!(parts.iter().all(|p| p.get().len() <= 131_072));
}

#[tokio::test]
async fn numbers_and_the_stream_label_reach_the_jobs_exactly() {
    let (processor, sqs, url) = processor(1, 1000).await;
    let config = processor.registry.config().clone();
    processor
        .registry
        .register(&Connection::new("n=", 1, None, None, config.buckets, 3600))
        .await
        .unwrap();
    let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/m/stream/2026-11-30T16:00:00.000";
    let mut event = stream_event(1);
    let record = &mut event.records[0];
    record.event_source_arn = Some(arn.to_owned());
    record.change.new_image.insert(
        "big".into(),
        serde_dynamo::AttributeValue::N("-1234567890123456789.0123456789012345678".into()),
    );
    let report = processor.handle(&event).await.unwrap();

    let bodies = drain(&sqs, &url).await;
    assert_eq!(bodies.len(), 1);
    let job = FanoutJob::decode(&bodies[0]).unwrap();
    assert_eq!(Some(&job.broadcast_id), report.broadcast_id.as_ref());
    let part = job.parts[0].get();
    assert!(
        part.contains(r#""big":-1234567890123456789.0123456789012345678,"#),
        "{part}"
    );
    let message: Value = serde_json::from_str(part).unwrap();
    assert_eq!(message["stream"], "2026-11-30T16:00:00.000");

    // The same records from a fresh stream are another broadcast.
    event.records[0].event_source_arn = Some(arn.replace("16:00:00", "17:00:00"));
    let again = processor.handle(&event).await.unwrap();
    assert_ne!(again.broadcast_id, report.broadcast_id);
    drain(&sqs, &url).await;
}

#[tokio::test]
async fn a_missing_queue_fails_the_invocation() {
    let (mut processor, _, _) = processor(1, 1000).await;
    let config = processor.registry.config().clone();
    processor
        .registry
        .register(&Connection::new("x=", 1, None, None, config.buckets, 3600))
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    processor.queue = JobQueue::new(
        sqs,
        &QueueSettings {
            url: "http://127.0.0.1:1/000000000000/missing".to_owned(),
            max_message_bytes: QUEUE_MAX,
        },
    );
    let error = processor.handle(&stream_event(1)).await.unwrap_err();
    assert!(error.to_string().contains("broadcast b-"), "{error}");
}
