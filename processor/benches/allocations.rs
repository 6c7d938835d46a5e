//! Heap allocations of one broadcast plan (100 records -> parts -> 100k connections in shards
//! of 1000 -> encoded jobs), counted with dhat. Separate from the criterion timings because a
//! counting allocator slows everything down. `cargo bench -p processor --bench allocations`

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

use processor::message::{MAX_MESSAGE_BYTES, broadcast_id, split, stream_arn, stream_label};
use processor::update::convert;

mod fixtures;

fn main() {
    let records = fixtures::records(100);
    let ids = fixtures::connection_ids(100_000);
    let pages: Vec<Vec<String>> = ids.chunks(3000).map(<[String]>::to_vec).collect();

    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let (updates, _) = convert(&records);
    let after_convert = dhat::HeapStats::get();
    let stream = stream_arn(&records);
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
    let after_split = dhat::HeapStats::get();
    let (jobs, bytes) = fixtures::encode_shards(&id, &parts.messages, pages);
    let end = dhat::HeapStats::get();
    let stage = |name: &str, from: &dhat::HeapStats, to: &dhat::HeapStats| {
        println!(
            "{name:<28} {:>9} allocations {:>12} bytes",
            to.total_blocks - from.total_blocks,
            to.total_bytes - from.total_bytes
        );
    };
    println!(
        "one broadcast plan: 100 records, 100,000 connections, {jobs} jobs, {bytes} bytes encoded"
    );
    stage("records -> updates", &before, &after_convert);
    stage("updates -> parts", &after_convert, &after_split);
    stage("shards -> encoded jobs", &after_split, &end);
    stage("total", &before, &end);
    println!("peak heap during the plan: {} bytes", end.max_bytes);
}
