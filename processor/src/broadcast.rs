//! The broadcast pipeline: page the registry (buckets concurrently), cut shards, and send
//! their jobs in SendMessageBatch calls while the next pages are read.

use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt, TryStreamExt};
use jobs::queue::BATCH_ENTRIES;
use jobs::{FanoutJob, JobError, JobQueue, QueueError, RoundRef};
use registry::{Page, Registry, RegistryError};

use crate::message::Parts;
use crate::shard::{Sharder, jobs_for_shard};

/// Batches of jobs waiting for a send; bounds the memory of a broadcast.
const PIPELINE_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum BroadcastError {
    #[error("paging the registry failed: {0}")]
    Registry(#[from] RegistryError),
    #[error("a fanout job could not be built: {0}")]
    Job(#[from] JobError),
    #[error("sending fanout jobs failed: {0}")]
    Queue(#[from] QueueError),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastStats {
    pub pages: u64,
    pub connections: u64,
    pub jobs_sent: u64,
}

/// How a broadcast pages the registry and sends its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastSettings {
    pub shard_size: usize,
    /// Items per GSI Query; `None` lets DynamoDB fill 1 MB pages.
    pub page_size: Option<i32>,
    /// SendMessageBatch calls in flight.
    pub send_concurrency: usize,
}

/// Sends `parts` to every live connection as `FanoutJob`s. Memory stays bounded by the
/// pipeline whatever the registry's size; an error stops the broadcast and is returned, so
/// the stream batch is retried (jobs already sent are delivered again: clients drop repeats
/// by id and part).
pub async fn broadcast(
    registry: &Registry,
    queue: &JobQueue,
    parts: &Parts,
    enqueued_at: i64,
    settings: BroadcastSettings,
) -> Result<BroadcastStats, BroadcastError> {
    let pages = registry.live_connections(settings.page_size);
    enqueue_pages(pages, queue, parts, enqueued_at, settings).await
}

/// The pipeline behind [`broadcast`], over any source of pages (the benchmark feeds it
/// virtual connections): shards are cut and their jobs sent while the next pages are read.
pub async fn enqueue_pages(
    mut pages: impl Stream<Item = Result<Page, RegistryError>> + Unpin,
    queue: &JobQueue,
    parts: &Parts,
    enqueued_at: i64,
    settings: BroadcastSettings,
) -> Result<BroadcastStats, BroadcastError> {
    let (mut tx, rx) = mpsc::channel::<FanoutJob>(PIPELINE_DEPTH * BATCH_ENTRIES);
    let round = parts.in_round.then_some(parts.broadcast_id.as_str());
    // A round's jobs carry their place in it: room is kept for the widest.
    let reserve = round.map_or(0, |id| {
        serde_json::to_string(&RoundRef::job(id, u64::MAX)).map_or(0, |r| r.len() + 10)
    });
    let max_bytes = queue.max_message_bytes() - reserve;
    let mut index = 0u64;
    let mut jobs = |ids| {
        let jobs = jobs_for_shard(
            &parts.broadcast_id,
            enqueued_at,
            &parts.messages,
            ids,
            max_bytes,
        )?;
        Ok::<_, JobError>(match round {
            None => jobs,
            Some(id) => jobs
                .into_iter()
                .map(|job| {
                    index += 1;
                    job.in_round(RoundRef::job(id, index))
                })
                .collect(),
        })
    };

    let produce = async move {
        let mut stats = BroadcastStats::default();
        let mut sharder = Sharder::new(settings.shard_size);
        while let Some(page) = pages.try_next().await? {
            stats.pages += 1;
            stats.connections += page.connection_ids.len() as u64;
            for shard in sharder.push(page.connection_ids) {
                for job in jobs(shard)? {
                    if tx.send(job).await.is_err() {
                        return Ok(stats); // the sender failed; its error is the one returned
                    }
                }
            }
        }
        if let Some(shard) = sharder.finish() {
            for job in jobs(shard)? {
                if tx.send(job).await.is_err() {
                    return Ok(stats);
                }
            }
        }
        Ok::<_, BroadcastError>(stats)
    };
    let consume = rx
        .ready_chunks(BATCH_ENTRIES)
        .map(|batch| async move { queue.send_all(&batch, 1).await })
        .buffer_unordered(settings.send_concurrency.max(1))
        .map_err(BroadcastError::from)
        .try_fold(0u64, |sent, n| async move { Ok(sent + n as u64) });

    let (mut stats, sent) = futures::try_join!(produce, consume)?;
    stats.jobs_sent = sent;
    Ok(stats)
}
