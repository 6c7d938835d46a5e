//! Registry pages to shards of connection ids, and shards to `FanoutJob`s that each fit in
//! one SQS message.

use jobs::{FanoutJob, JobError};
use platform::pack::pack;
use serde_json::value::RawValue;

/// Cuts a stream of pages into shards of `size` ids; pages need not align with shards.
#[derive(Debug)]
pub struct Sharder {
    size: usize,
    pending: Vec<String>,
}

impl Sharder {
    pub fn new(size: usize) -> Self {
        Self {
            size: size.max(1),
            pending: Vec::new(),
        }
    }

    /// Adds a page; returns the shards it completed.
    pub fn push(&mut self, ids: Vec<String>) -> Vec<Vec<String>> {
        self.pending.extend(ids);
        let mut full = Vec::new();
        while self.pending.len() >= self.size {
            let rest = self.pending.split_off(self.size);
            full.push(std::mem::replace(&mut self.pending, rest));
        }
        full
    }

    /// The last, partial shard, if any.
    pub fn finish(self) -> Option<Vec<String>> {
        (!self.pending.is_empty()).then_some(self.pending)
    }
}

/// The jobs that carry every part to every id of a shard, each encoded job at most
/// `max_bytes`: the ids are cut so that the largest part fits beside them, and the parts are
/// grouped so that each group fits beside its ids.
pub fn jobs_for_shard(
    broadcast_id: &str,
    enqueued_at: i64,
    parts: &[Box<RawValue>],
    ids: Vec<String>,
    max_bytes: usize,
) -> Result<Vec<FanoutJob>, JobError> {
    let empty = FanoutJob::new(broadcast_id, enqueued_at, Vec::new(), Vec::new());
    let base = empty.encode(usize::MAX)?.len();
    let largest = parts.iter().map(|p| p.get().len() + 1).max().unwrap_or(0);
    let id_room = max_bytes.saturating_sub(base + largest);
    let mut jobs = Vec::new();
    for mut chunk in chunk_by_bytes(ids, id_room) {
        let ids_bytes: usize = chunk.iter().map(|id| FanoutJob::id_overhead(id)).sum();
        let part_room = max_bytes.saturating_sub(base + ids_bytes);
        let mut groups = group_parts(parts, part_room).into_iter().peekable();
        while let Some(group) = groups.next() {
            // The ids are copied only when the parts need more than one job.
            let ids = if groups.peek().is_some() {
                chunk.clone()
            } else {
                std::mem::take(&mut chunk)
            };
            let job = FanoutJob::new(broadcast_id, enqueued_at, group, ids);
            job.encode(max_bytes)?; // a part larger than the queue allows is refused here
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// Ids, in order, in chunks whose encoding takes at most `room` bytes.
fn chunk_by_bytes(ids: Vec<String>, room: usize) -> Vec<Vec<String>> {
    pack(ids, room, usize::MAX, |id| FanoutJob::id_overhead(id))
}

/// Parts, in order, in groups that take at most `room` bytes in a job's `parts` array.
fn group_parts(parts: &[Box<RawValue>], room: usize) -> Vec<Vec<Box<RawValue>>> {
    pack(parts.iter().cloned(), room, usize::MAX, |part| {
        part.get().len() + 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:015}=")).collect()
    }

    fn part(size: usize) -> Box<RawValue> {
        RawValue::from_string(format!(r#"{{"p":"{}"}}"#, "x".repeat(size - 8))).unwrap()
    }

    #[test]
    fn pages_become_shards_of_the_configured_size() {
        let mut sharder = Sharder::new(4);
        assert!(sharder.push(ids(3)).is_empty());
        let full = sharder.push(ids(6));
        assert_eq!(full.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
        assert!(sharder.push(Vec::new()).is_empty());
        assert_eq!(sharder.finish().map(|s| s.len()), Some(1));
        assert_eq!(Sharder::new(4).finish(), None);
    }

    #[test]
    fn a_small_shard_is_one_job() {
        let jobs = jobs_for_shard("b", 1, &[part(100)], ids(1000), 256 * 1024).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].connections.len(), 1000);
    }

    #[test]
    fn every_job_fits_and_every_id_gets_every_part() {
        for (n, sizes, max) in [
            (1000, vec![131_072, 131_072, 5_000], 256 * 1024),
            (5000, vec![131_072], 256 * 1024),
            (20_000, vec![100_000, 100_000, 100_000], 1024 * 1024),
            (3, vec![200, 200, 200, 200], 700),
        ] {
            let parts: Vec<_> = sizes.iter().map(|s| part(*s)).collect();
            let jobs = jobs_for_shard("b", 1, &parts, ids(n), max).unwrap();
            let mut received = std::collections::HashMap::<String, Vec<usize>>::new();
            for job in &jobs {
                assert!(job.encode(max).is_ok(), "a job over {max} bytes");
                for id in &job.connections {
                    received
                        .entry(id.clone())
                        .or_default()
                        .extend(job.parts.iter().map(|p| p.get().len()));
                }
            }
            assert_eq!(received.len(), n);
            assert!(
                received.values().all(|got| *got == sizes),
                "each id gets each part once, in order"
            );
        }
    }

    #[test]
    fn a_part_larger_than_the_queue_allows_is_refused() {
        let err = jobs_for_shard("b", 1, &[part(2000)], ids(1), 1024).unwrap_err();
        assert!(matches!(err, JobError::TooLarge { .. }));
    }
}
