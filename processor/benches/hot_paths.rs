//! Criterion micro-benchmarks of the hot pure code: record conversion, payload splitting, job
//! encoding, bucket hashing, and one whole broadcast plan (100 records, 100k connections).
//! `cargo bench -p processor --bench hot_paths`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jobs::settings::DEFAULT_QUEUE_MAX_MESSAGE_BYTES;
use processor::message::{MAX_MESSAGE_BYTES, broadcast_id, split, stream_arn, stream_label};
use processor::shard::jobs_for_shard;
use processor::update::convert;
use registry::Buckets;

mod fixtures;

const LABEL: Option<&str> = Some("2026-11-25T21:00:00.000");

/// The pure part of one broadcast: records -> parts -> shards -> encoded jobs.
fn plan(records: &[aws_lambda_events::dynamodb::EventRecord], ids: &[String]) -> (usize, usize) {
    let (updates, _) = convert(records);
    let stream = stream_arn(records);
    let id = broadcast_id(
        stream,
        records
            .iter()
            .filter_map(|r| r.change.sequence_number.as_deref()),
    );
    let parts = split(
        &id,
        stream.and_then(stream_label),
        &updates,
        MAX_MESSAGE_BYTES,
    );
    fixtures::encode_shards(
        &id,
        &parts.messages,
        ids.chunks(3000).map(<[String]>::to_vec).collect(),
    )
}

fn benches(c: &mut Criterion) {
    let records = fixtures::records(100);
    let mut group = c.benchmark_group("conversion");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100 records", |b| b.iter(|| convert(&records)));
    group.finish();

    let (updates, _) = convert(&records);
    let mut group = c.benchmark_group("splitting");
    for limit in [MAX_MESSAGE_BYTES, 4096] {
        group.bench_with_input(
            BenchmarkId::new("100 updates", limit),
            &limit,
            |b, limit| b.iter(|| split("b-0123456789abcdef", LABEL, &updates, *limit)),
        );
    }
    group.finish();

    let parts = split("b-0123456789abcdef", LABEL, &updates, MAX_MESSAGE_BYTES);
    let ids = fixtures::connection_ids(100_000);
    let mut group = c.benchmark_group("job encoding");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000-id shard", |b| {
        b.iter(|| {
            jobs_for_shard(
                "b-0123456789abcdef",
                0,
                &parts.messages,
                ids[..1000].to_vec(),
                DEFAULT_QUEUE_MAX_MESSAGE_BYTES,
            )
            .expect("fits")[0]
                .encode(DEFAULT_QUEUE_MAX_MESSAGE_BYTES)
                .expect("fits")
        })
    });
    group.finish();

    let buckets = Buckets::new(16).expect("valid");
    let mut group = c.benchmark_group("bucket hashing");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("1000 ids, 16 buckets", |b| {
        b.iter(|| {
            ids[..1000]
                .iter()
                .map(|id| u64::from(buckets.of(id)))
                .sum::<u64>()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("broadcast plan");
    group.sample_size(10);
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("100 records, 100k connections", |b| {
        b.iter(|| plan(&records, &ids))
    });
    group.finish();
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
