//! Inputs shared by the benchmarks: a stream batch like the simulator's and API Gateway-shaped
//! connection ids.

use aws_lambda_events::dynamodb::EventRecord;
use jobs::settings::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;
use processor::shard::{Sharder, jobs_for_shard};
use serde_json::json;
use serde_json::value::RawValue;

/// The stream the fixture's records come from.
pub const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/metrics/stream/2026-11-25T21:00:00.000";

/// `n` MODIFY records of a metrics entity (six attributes, as the simulator writes them).
pub fn records(n: usize) -> Vec<EventRecord> {
    (0..n)
        .map(|i| {
            serde_json::from_value(json!({
                "eventID": format!("e{i}"), "eventName": "MODIFY", "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1", "eventSourceARN": STREAM_ARN,
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_764_104_603,
                    "Keys": {"entity_id": {"S": format!("stream-{i:03}")}},
                    "NewImage": {
                        "entity_id": {"S": format!("stream-{i:03}")},
                        "entity_type": {"S": "stream"},
                        "metric_value": {"N": format!("{}.5", 1000 + i)},
                        "throughput": {"N": "412.7"},
                        "latency_ms": {"N": "21.38"},
                        "error_rate": {"N": "0.0112"},
                        "timestamp": {"S": "2026-11-25T21:03:23Z"}
                    },
                    "SequenceNumber": format!("{:021}", 4_000_000 + i),
                    "SizeBytes": 180, "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            }))
            .expect("a valid stream record")
        })
        .collect()
}

/// `n` ids shaped like API Gateway's (16 characters ending in `=`).
pub fn connection_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{:015x}=",
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 4
            )
        })
        .collect()
}

/// Pages of ids -> shards of 1000 -> encoded jobs, as the processor's pipeline cuts them.
/// Returns the number of jobs and their encoded bytes.
pub fn encode_shards(
    broadcast_id: &str,
    parts: &[Box<RawValue>],
    pages: Vec<Vec<String>>,
) -> (usize, usize) {
    let mut sharder = Sharder::new(1000);
    let (mut jobs, mut bytes) = (0, 0);
    let mut encode = |shard: Vec<String>| {
        for job in jobs_for_shard(
            broadcast_id,
            0,
            parts,
            shard,
            DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
        )
        .expect("fits")
        {
            bytes += job
                .encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES)
                .expect("fits")
                .len();
            jobs += 1;
        }
    };
    for page in pages {
        for shard in sharder.push(page) {
            encode(shard);
        }
    }
    if let Some(shard) = sharder.finish() {
        encode(shard);
    }
    (jobs, bytes)
}
