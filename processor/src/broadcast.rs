//! The broadcast pipeline: page the registry (buckets concurrently), cut shards, and send
//! their jobs in SendMessageBatch calls while the next pages are read.

use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt, TryStreamExt};
use jobs::queue::BATCH_ENTRIES;
use jobs::{FanoutJob, JobError, JobQueue, QueueError, RoundRef};
use registry::{Page, Registry, RegistryError};

use std::collections::{BTreeMap, HashMap};

use registry::Interest;

use crate::editions::Editions;
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
    /// Connections whose interest matched none of the updates: sent nothing.
    pub not_matching: u64,
    /// Distinct filtered editions encoded (beside the one everyone receives).
    pub editions: u64,
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

/// Sends the broadcast to every live connection as `FanoutJob`s, each connection the edition
/// its interest receives (none when nothing matches). Memory stays bounded by the pipeline
/// whatever the registry's size; an error stops the broadcast and is returned, so the stream
/// batch is retried (jobs already sent are delivered again: clients drop repeats by id and
/// part).
pub async fn broadcast(
    registry: &Registry,
    queue: &JobQueue,
    editions: &mut Editions,
    enqueued_at: i64,
    settings: BroadcastSettings,
) -> Result<BroadcastStats, BroadcastError> {
    let pages = registry.live_connections(settings.page_size);
    enqueue_pages(pages, queue, editions, enqueued_at, settings).await
}

/// The pipeline behind [`broadcast`], over any source of pages (the benchmark feeds it
/// virtual connections): shards are cut and their jobs sent while the next pages are read.
pub async fn enqueue_pages(
    mut pages: impl Stream<Item = Result<Page, RegistryError>> + Unpin,
    queue: &JobQueue,
    editions: &mut Editions,
    enqueued_at: i64,
    settings: BroadcastSettings,
) -> Result<BroadcastStats, BroadcastError> {
    let (mut tx, rx) = mpsc::channel::<FanoutJob>(PIPELINE_DEPTH * BATCH_ENTRIES);
    let mut cutter = JobCutter::new(&editions.everything, queue.max_message_bytes(), enqueued_at);

    let produce = async move {
        let mut stats = BroadcastStats::default();
        let mut sharder = Sharder::new(settings.shard_size);
        // The interests of connections read but not yet in a shard.
        let mut interests: HashMap<String, Interest> = HashMap::new();
        while let Some(page) = pages.try_next().await? {
            stats.pages += 1;
            stats.connections += page.connection_ids.len() as u64;
            interests.extend(page.interests);
            for shard in sharder.push(page.connection_ids) {
                for job in cutter.jobs(editions, &mut interests, shard, &mut stats)? {
                    if tx.send(job).await.is_err() {
                        return Ok(stats); // the sender failed; its error is the one returned
                    }
                }
            }
        }
        if let Some(shard) = sharder.finish() {
            for job in cutter.jobs(editions, &mut interests, shard, &mut stats)? {
                if tx.send(job).await.is_err() {
                    return Ok(stats);
                }
            }
        }
        stats.editions = editions.filtered_count() as u64;
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

/// Cuts a shard's jobs: its connections grouped by interest, each group the parts of its
/// edition, every job of a round numbered in it.
struct JobCutter {
    broadcast_id: String,
    /// The round the jobs belong to, if the broadcast is one.
    round: Option<String>,
    max_bytes: usize,
    enqueued_at: i64,
    index: u64,
}

impl JobCutter {
    fn new(everything: &Parts, queue_max_bytes: usize, enqueued_at: i64) -> Self {
        let round = everything.in_round.then(|| everything.broadcast_id.clone());
        // A round's jobs carry their place in it: room is kept for the widest.
        let reserve = round.as_deref().map_or(0, |id| {
            serde_json::to_string(&RoundRef::job(id, u64::MAX)).map_or(0, |r| r.len() + 10)
        });
        Self {
            broadcast_id: everything.broadcast_id.clone(),
            round,
            max_bytes: queue_max_bytes - reserve,
            enqueued_at,
            index: 0,
        }
    }

    fn jobs(
        &mut self,
        editions: &mut Editions,
        interests: &mut HashMap<String, Interest>,
        shard: Vec<String>,
        stats: &mut BroadcastStats,
    ) -> Result<Vec<FanoutJob>, JobError> {
        let mut groups: BTreeMap<Option<Interest>, Vec<String>> = BTreeMap::new();
        for id in shard {
            groups.entry(interests.remove(&id)).or_default().push(id);
        }
        let mut jobs = Vec::new();
        for (interest, ids) in groups {
            let Some(parts) = editions.for_interest(interest.as_ref()) else {
                stats.not_matching += ids.len() as u64;
                continue;
            };
            for job in jobs_for_shard(
                &self.broadcast_id,
                self.enqueued_at,
                &parts.messages,
                ids,
                self.max_bytes,
            )? {
                jobs.push(match &self.round {
                    None => job,
                    Some(id) => {
                        self.index += 1;
                        job.in_round(RoundRef::job(id, self.index))
                    }
                });
            }
        }
        Ok(jobs)
    }
}
