//! The snapshot service: [`registry::handlers::Snapshots`] over the cached entities and the
//! [`Poster`] port. Each part is posted to the connection in order; 429s and 5xx are tried
//! again a few times with backoff; a 410 (the client left) ends the snapshot quietly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fanout::{PostOutcome, Poster};
use platform::backoff::Backoff;
use platform::telemetry::Metrics;
use registry::Interest;
use registry::handlers::Snapshots;
use tracing::{error, info};

use crate::cache::{Cached, EntitySource};
use crate::entry::Entry;
use crate::message::{MAX_MESSAGE_BYTES, snapshot_id, split};

/// Tries per part (the first included) when the answer is 429 or 5xx.
pub const POST_ATTEMPTS: u32 = 4;
/// Between them: full jitter under 50 ms, 100 ms, 200 ms. The client waits for its snapshot,
/// and the function's timeout bounds the whole request.
pub const POST_BACKOFF: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));

pub struct SnapshotService<P, S> {
    poster: P,
    entities: Cached<S>,
    max_bytes: usize,
    attempts: u32,
    backoff: Backoff,
    stats: Stats,
}

/// What the service did since the last [`Stats::take`].
#[derive(Debug, Default)]
pub struct Stats {
    snapshots: AtomicU64,
    parts: AtomicU64,
    items: AtomicU64,
    failures: AtomicU64,
    gone: AtomicU64,
    reads: AtomicU64,
    cache_hits: AtomicU64,
}

/// A [`Stats`] reading, one EMF document of the `snapshot` service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Snapshots posted whole.
    pub snapshots: u64,
    /// Parts posted.
    pub parts: u64,
    /// Items in the snapshots posted whole.
    pub items: u64,
    /// Snapshots that failed (the client got ERROR).
    pub failures: u64,
    /// Snapshots whose connection had gone (410).
    pub gone: u64,
    /// Reads of the state table's entities.
    pub reads: u64,
    /// Snapshots served from the entities in memory.
    pub cache_hits: u64,
}

impl Stats {
    /// The counts so far, and zero from now on.
    pub fn take(&self) -> Counts {
        let take = |n: &AtomicU64| n.swap(0, Ordering::Relaxed);
        Counts {
            snapshots: take(&self.snapshots),
            parts: take(&self.parts),
            items: take(&self.items),
            failures: take(&self.failures),
            gone: take(&self.gone),
            reads: take(&self.reads),
            cache_hits: take(&self.cache_hits),
        }
    }

    fn add(n: &AtomicU64, by: u64) {
        n.fetch_add(by, Ordering::Relaxed);
    }
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn metrics(&self) -> Metrics {
        let mut metrics = Metrics::new("snapshot");
        metrics
            .add_counts(&[
                ("Snapshots", self.snapshots),
                ("SnapshotParts", self.parts),
                ("SnapshotItems", self.items),
                ("SnapshotFailures", self.failures),
                ("SnapshotsGone", self.gone),
                ("StateReads", self.reads),
                ("StateCacheHits", self.cache_hits),
            ])
            .expect("catalogued snapshot metrics");
        metrics
    }
}

/// How posting one part ended.
enum Posted {
    Delivered,
    Gone,
}

impl<P: Poster, S: EntitySource> SnapshotService<P, S> {
    /// Snapshots of `source`'s entities (kept `cache` in memory) posted through `poster`.
    pub fn new(poster: P, source: S, cache: Duration) -> Self {
        Self {
            poster,
            entities: Cached::new(source, cache),
            max_bytes: MAX_MESSAGE_BYTES,
            attempts: POST_ATTEMPTS,
            backoff: POST_BACKOFF,
            stats: Stats::default(),
        }
    }

    /// Parts of at most `max_bytes` (tests; the default is API Gateway's 128 KB).
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        Self { max_bytes, ..self }
    }

    /// Retries of 429/5xx per part, and their backoff.
    pub fn with_retries(self, attempts: u32, backoff: Backoff) -> Self {
        Self {
            attempts: attempts.max(1),
            backoff,
            ..self
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    async fn post(&self, connection_id: &str, part: &str) -> Result<Posted, PostOutcome> {
        let mut attempt = 1;
        loop {
            match self.poster.post(connection_id, part.as_bytes()).await {
                PostOutcome::Delivered => return Ok(Posted::Delivered),
                PostOutcome::Gone => return Ok(Posted::Gone),
                retryable if retryable.is_retryable() && attempt < self.attempts => {
                    tokio::time::sleep(self.backoff.delay(attempt)).await;
                    attempt += 1;
                }
                failed => return Err(failed),
            }
        }
    }

    async fn send_snapshot(
        &self,
        connection_id: &str,
        interest: &Interest,
        connected_at_ms: i64,
    ) -> Result<(), String> {
        let fetched = self.entities.get(connected_at_ms).await.map_err(|e| {
            error!(connection_id, error = %e, "could not read the entities for a snapshot");
            "the current state could not be read; try again".to_owned()
        })?;
        Stats::add(
            if fetched.hit {
                &self.stats.cache_hits
            } else {
                &self.stats.reads
            },
            1,
        );
        let state = &fetched.state;
        let entries: Vec<&Entry> = state.matching(interest).collect();
        let parts = split(
            &snapshot_id(),
            state.stream.as_deref(),
            &entries,
            self.max_bytes,
        );
        for (i, part) in parts.messages.iter().enumerate() {
            match self.post(connection_id, part).await {
                Ok(Posted::Delivered) => Stats::add(&self.stats.parts, 1),
                Ok(Posted::Gone) => {
                    Stats::add(&self.stats.gone, 1);
                    info!(connection_id, snapshot_id = %parts.id, part = i + 1, "connection gone; snapshot dropped");
                    return Ok(());
                }
                Err(outcome) => {
                    error!(connection_id, snapshot_id = %parts.id, part = i + 1, parts = parts.messages.len(), ?outcome, "snapshot part not posted");
                    return Err(match outcome {
                        PostOutcome::Forbidden => "this stage may not post to connections".into(),
                        _ => "a part could not be posted; try again".into(),
                    });
                }
            }
        }
        Stats::add(&self.stats.snapshots, 1);
        Stats::add(&self.stats.items, parts.items as u64);
        info!(
            connection_id,
            snapshot_id = %parts.id,
            parts = parts.messages.len(),
            items = parts.items,
            truncated = parts.truncated,
            cache_hit = fetched.hit,
            "snapshot sent"
        );
        Ok(())
    }
}

impl<P: Poster, S: EntitySource> Snapshots for SnapshotService<P, S> {
    async fn send(
        &self,
        connection_id: &str,
        interest: &Interest,
        connected_at_ms: i64,
    ) -> Result<(), String> {
        let result = self
            .send_snapshot(connection_id, interest, connected_at_ms)
            .await;
        if result.is_err() {
            Stats::add(&self.stats.failures, 1);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::change;
    use registry::Filter;
    use rounds::Change;
    use serde_json::Value;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    struct Fixed(Vec<Change>);

    impl EntitySource for Fixed {
        async fn read(&self) -> Result<Vec<Change>, String> {
            Ok(self.0.clone())
        }
    }

    /// Answers from a script (then Delivered), recording every post.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<VecDeque<PostOutcome>>,
        posts: Mutex<Vec<(String, String)>>,
    }

    impl Poster for Scripted {
        async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
            self.posts.lock().unwrap().push((
                connection_id.to_owned(),
                String::from_utf8(data.to_vec()).unwrap(),
            ));
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(PostOutcome::Delivered)
        }
    }

    fn service(answers: Vec<PostOutcome>, entities: usize) -> SnapshotService<Scripted, Fixed> {
        let changes = (0..entities)
            .map(|i| {
                let kind = if i % 2 == 0 { "stream" } else { "disk" };
                change(&format!("e{i:04}"), kind, i as u64 + 1, "MODIFY")
            })
            .collect();
        let poster = Scripted {
            answers: Mutex::new(answers.into()),
            ..Scripted::default()
        };
        SnapshotService::new(poster, Fixed(changes), Duration::from_secs(1))
            .with_max_bytes(2048)
            .with_retries(
                3,
                Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
            )
    }

    fn posted(service: &SnapshotService<Scripted, Fixed>) -> Vec<Value> {
        let posts = service.poster.posts.lock().unwrap();
        posts
            .iter()
            .map(|(_, text)| serde_json::from_str(text).unwrap())
            .collect()
    }

    fn item_ids(messages: &[Value]) -> Vec<String> {
        messages
            .iter()
            .flat_map(|m| m["items"].as_array().unwrap().clone())
            .map(|i| i["data"]["entity_id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn every_part_is_posted_in_order_with_what_the_interest_matches() {
        let service = service(vec![], 60);
        let disks = Interest {
            filter: Filter::new(Some(vec!["disk".into()]), None).unwrap(),
            allowed_types: None,
        };
        service.send("conn-1", &disks, 0).await.unwrap();
        let messages = posted(&service);
        assert!(messages.len() > 1, "60 entities in 2 KB parts");
        let expected: Vec<String> = (1..60).step_by(2).map(|i| format!("e{i:04}")).collect();
        assert_eq!(item_ids(&messages), expected);
        let id = messages[0]["id"].as_str().unwrap();
        assert!(messages.iter().all(|m| m["id"] == id));
        let counts = service.stats().take();
        assert_eq!(
            (counts.snapshots, counts.parts, counts.items, counts.reads),
            (1, messages.len() as u64, 30, 1)
        );
        // The next one within the cache's age reads nothing, and has an id of its own.
        service
            .send("conn-2", &Interest::default(), 0)
            .await
            .unwrap();
        let counts = service.stats().take();
        assert_eq!((counts.cache_hits, counts.reads, counts.items), (1, 0, 60));
        let all = posted(&service);
        assert_ne!(all.last().unwrap()["id"], id);
    }

    #[tokio::test]
    async fn nothing_matching_posts_one_part_without_items() {
        let service = service(vec![], 4);
        let gpus = Interest {
            filter: Filter::new(Some(vec!["gpu".into()]), None).unwrap(),
            allowed_types: None,
        };
        service.send("c", &gpus, 0).await.unwrap();
        let messages = posted(&service);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["items"], serde_json::json!([]));
        assert_eq!(messages[0]["parts"], 1);
    }

    #[tokio::test]
    async fn throttles_and_5xx_are_tried_again_and_a_gone_client_ends_it_quietly() {
        let service = service(
            vec![
                PostOutcome::Throttled,
                PostOutcome::Unavailable("HTTP 502".into()),
            ],
            60,
        );
        service.send("c", &Interest::default(), 0).await.unwrap();
        let messages = posted(&service);
        assert_eq!(messages[0], messages[2], "the first part, third try");
        let parts = messages[0]["parts"].as_u64().unwrap() as usize;
        assert_eq!(messages.len(), parts + 2);

        let gone = super::tests::service(vec![PostOutcome::Delivered, PostOutcome::Gone], 60);
        gone.send("c", &Interest::default(), 0).await.unwrap();
        assert_eq!(posted(&gone).len(), 2, "nothing after the 410");
        let counts = gone.stats().take();
        assert_eq!((counts.gone, counts.snapshots, counts.failures), (1, 0, 0));
    }

    #[tokio::test]
    async fn a_part_that_cannot_be_posted_fails_the_snapshot() {
        let throttled = vec![PostOutcome::Throttled; 3];
        let service = service(throttled, 60);
        let error = service
            .send("c", &Interest::default(), 0)
            .await
            .unwrap_err();
        assert!(error.contains("try again"), "{error}");
        assert_eq!(
            posted(&service).len(),
            3,
            "three tries, then no further part"
        );
        let forbidden = super::tests::service(vec![PostOutcome::Forbidden], 60);
        let error = forbidden
            .send("c", &Interest::default(), 0)
            .await
            .unwrap_err();
        assert!(error.contains("may not post"), "{error}");
        assert_eq!(forbidden.stats().take().failures, 1);
    }

    #[test]
    fn every_catalogued_metric_is_emitted() {
        let metrics = Counts::default().metrics();
        for name in platform::telemetry::catalogued("snapshot") {
            assert!(
                metrics.value(&name).is_some(),
                "{name} is catalogued but never emitted"
            );
        }
    }
}
