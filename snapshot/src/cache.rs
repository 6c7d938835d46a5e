//! The snapshots' source, read at most once per `max_age` per process, and once at a time.
//!
//! A reconnect storm must not become one full read of the entities per connection. So a read
//! is kept in memory (`SNAPSHOT_CACHE_MS`, default 1 s) and reads are single-flight: a request
//! that arrives while a read is in flight waits for it, and takes it if it started at most
//! `max_age` before the request and after the connection opened; otherwise it reads again (one
//! read at a time). A read older than the connection could miss a change whose broadcast went
//! out before the connection existed: the client would hold an old value until the entity
//! changed again. A read that started after it has every change the connection got no
//! broadcast of (the processor keeps a change before it pages the registry). With `max_age` 0:
//! a read that started after the request, shared by every request that waited for it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use platform::clock::now_ms;
use rounds::{Change, RoundStore};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::entry::State;

/// Where the entities come from: the state table's `entity` items.
pub trait EntitySource: Send + Sync {
    /// Every entity's latest change, in stream order.
    fn read(&self) -> impl Future<Output = Result<Vec<Change>, String>> + Send;
}

impl EntitySource for RoundStore {
    async fn read(&self) -> Result<Vec<Change>, String> {
        self.entities().await.map_err(|e| e.to_string())
    }
}

/// The entities, read once per `max_age` at most.
pub struct Cached<S> {
    source: S,
    max_age: Duration,
    last: Mutex<Option<Read>>,
}

struct Read {
    started: Instant,
    /// The same, epoch ms: compared with when a connection opened.
    started_ms: i64,
    state: Arc<State>,
}

/// A state, and whether it came from memory.
pub struct Fetched {
    pub state: Arc<State>,
    pub hit: bool,
}

impl<S: EntitySource> Cached<S> {
    pub fn new(source: S, max_age: Duration) -> Self {
        Self {
            source,
            max_age,
            last: Mutex::new(None),
        }
    }

    /// The entities as read at most `max_age` before now, and after `not_before_ms` (epoch
    /// ms: when the connection opened). A failed read is not kept: the next request reads
    /// again.
    pub async fn get(&self, not_before_ms: i64) -> Result<Fetched, String> {
        let requested = Instant::now();
        // Held across the read: whoever comes meanwhile waits for it (single flight).
        let mut last = self.last.lock().await;
        if let Some(read) = last.as_ref()
            && read.started + self.max_age >= requested
            && read.started_ms >= not_before_ms
        {
            return Ok(Fetched {
                state: read.state.clone(),
                hit: true,
            });
        }
        let (started, started_ms) = (Instant::now(), now_ms());
        let changes = self.source.read().await?;
        let state = Arc::new(State::from_changes(&changes));
        *last = Some(Read {
            started,
            started_ms,
            state: state.clone(),
        });
        Ok(Fetched { state, hit: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::change;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A source whose reads take `takes` and are counted; fails while `failing` is set.
    struct Counted {
        reads: AtomicUsize,
        takes: Duration,
        failing: std::sync::atomic::AtomicBool,
    }

    impl Counted {
        fn new(takes: Duration) -> Self {
            Self {
                reads: AtomicUsize::new(0),
                takes,
                failing: false.into(),
            }
        }
    }

    impl EntitySource for Counted {
        async fn read(&self) -> Result<Vec<Change>, String> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst) as u64;
            tokio::time::sleep(self.takes).await;
            if self.failing.load(Ordering::SeqCst) {
                return Err("unavailable".into());
            }
            Ok(vec![change(
                &format!("read-{n}"),
                "stream",
                n + 1,
                "MODIFY",
            )])
        }
    }

    fn read_of(fetched: &Fetched) -> &str {
        fetched.state.entries[0].entity_id.as_deref().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_storm_of_requests_costs_one_read_per_max_age() {
        let cache = Cached::new(
            Counted::new(Duration::from_millis(50)),
            Duration::from_secs(1),
        );
        let fetched: Vec<Fetched> = futures::future::join_all((0..500).map(|_| cache.get(0)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(cache.source.reads.load(Ordering::SeqCst), 1);
        assert_eq!(fetched.iter().filter(|f| !f.hit).count(), 1);
        assert!(fetched.iter().all(|f| read_of(f) == "read-0"));
        // Within max_age of the read's start: memory; past it: a new read.
        tokio::time::advance(Duration::from_millis(900)).await;
        assert!(cache.get(0).await.unwrap().hit);
        tokio::time::advance(Duration::from_millis(100)).await;
        let later = cache.get(0).await.unwrap();
        assert!(!later.hit);
        assert_eq!(read_of(&later), "read-1");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_max_age_requests_share_a_read_that_started_after_them() {
        let cache = Arc::new(Cached::new(
            Counted::new(Duration::from_millis(100)),
            Duration::ZERO,
        ));
        let first = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(0).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Both arrive while read 0 is in flight: it started before them, so they wait for
        // read 1, and share it.
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(0).await.unwrap() })
            })
            .collect();
        assert_eq!(read_of(&first.await.unwrap()), "read-0");
        let mut misses = 0;
        for w in waiting {
            let fetched = w.await.unwrap();
            assert_eq!(read_of(&fetched), "read-1");
            misses += usize::from(!fetched.hit);
        }
        assert_eq!(misses, 1);
        assert_eq!(cache.source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_from_before_the_connection_opened_is_not_served_to_it() {
        let cache = Cached::new(Counted::new(Duration::ZERO), Duration::from_secs(60));
        let before = cache.get(0).await.unwrap();
        assert_eq!(read_of(&before), "read-0");
        // A connection that opened after read 0 started (a millisecond later) gets a read of
        // its own, though read 0 is within the age; an older connection gets memory.
        let opened = now_ms() + 1;
        let fresh = cache.get(opened).await.unwrap();
        assert!(!fresh.hit);
        assert_eq!(read_of(&fresh), "read-1");
        let older = cache.get(opened - 1_000).await.unwrap();
        assert!(older.hit);
        assert_eq!(read_of(&older), "read-1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_is_not_kept() {
        let cache = Cached::new(Counted::new(Duration::ZERO), Duration::from_secs(1));
        cache.source.failing.store(true, Ordering::SeqCst);
        assert_eq!(cache.get(0).await.err().as_deref(), Some("unavailable"));
        cache.source.failing.store(false, Ordering::SeqCst);
        let fetched = cache.get(0).await.unwrap();
        assert!(!fetched.hit);
        assert_eq!(cache.source.reads.load(Ordering::SeqCst), 2);
    }
}
