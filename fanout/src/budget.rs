//! The posting budget (`POST_BUDGET_PER_SECOND`), shared by every concurrent invocation.
//!
//! API Gateway throttles posts per account (10,000/s by default). Instead of finding that
//! limit through 429s, which starve the account's other APIs, invocations pace themselves:
//! time is cut into one-second windows, each holding `budget` positions, and an invocation
//! claims a slice of the current window in the shared store before it posts. A claim is a
//! range of positions in the window, and position i posts at i/capacity of it, so together
//! the invocations post evenly at the budget's rate, whatever their number, and
//! each takes what it can use.

pub mod dynamo;

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use platform::clock::now_ms;
use tokio::time::Instant;

use crate::post::{PostOutcome, Poster};

/// The length of a budget window.
pub const WINDOW_MS: i64 = 1000;
/// Slices per window: an invocation claims a tenth of a window at once, so that several
/// invocations share each window and none holds posts it cannot use; more when its claims
/// take long (a slice must outlast the next claim's round trip).
const SLICES: u32 = 10;
/// How late a granted position may still be posted (timer and scheduling slack).
const LATE: Duration = Duration::from_millis(20);

/// Where the windows' counts live: DynamoDB for functions, memory for tests.
pub enum Windows {
    Dynamo(dynamo::DynamoWindows),
    Memory(MemoryWindows),
}

impl Windows {
    /// Claims up to `wanted` of window `window`'s `capacity`, at positions from `floor` on
    /// (the positions before it have passed: posting them now would be a burst); returns
    /// the claimed positions (empty when the window is full).
    async fn claim(&self, window: i64, claim: Claim) -> Result<Range<u32>, String> {
        match self {
            Self::Dynamo(store) => store.claim(window, claim).await,
            Self::Memory(store) => Ok(store.claim(window, claim)),
        }
    }
}

/// What an invocation asks of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub wanted: u32,
    /// The first position not yet past.
    pub floor: u32,
    pub capacity: u32,
}

impl Claim {
    /// The positions granted when the window's count is `used`, and the count after.
    pub fn grant(&self, used: u32) -> Range<u32> {
        let start = used.max(self.floor);
        start..(start + self.wanted).min(self.capacity).max(start)
    }
}

/// Windows in memory, for tests and for a single process.
#[derive(Default)]
pub struct MemoryWindows {
    used: Mutex<HashMap<i64, u32>>,
}

impl MemoryWindows {
    fn claim(&self, window: i64, claim: Claim) -> Range<u32> {
        let mut used = self.used.lock().expect("not poisoned");
        let used = used.entry(window).or_default();
        let granted = claim.grant(*used);
        *used = (*used).max(granted.end);
        granted
    }
}

/// The budget: posts per second over the shared windows.
pub struct PostBudget {
    pub windows: Windows,
    pub per_second: u32,
}

impl PostBudget {
    /// The budget a function's configuration asks for, its windows in the state table.
    pub fn configured(
        dynamo: &aws_sdk_dynamodb::Client,
        config: &crate::FanoutConfig,
    ) -> Option<Self> {
        let table = config.state_table.clone()?;
        (config.budget_per_second > 0).then(|| Self {
            windows: Windows::Dynamo(dynamo::DynamoWindows::new(dynamo.clone(), table)),
            per_second: config.budget_per_second,
        })
    }

    /// Posts a window holds.
    fn capacity(&self) -> u32 {
        self.per_second.max(1)
    }

    /// The start (epoch ms) of the window `epoch_ms` falls in; it names the window.
    fn window_of(epoch_ms: i64) -> i64 {
        epoch_ms.div_euclid(WINDOW_MS) * WINDOW_MS
    }
}

/// One invocation's pacing: when each of its posts may go.
pub struct Pacer<'a> {
    budget: &'a PostBudget,
    /// Epoch ms at `origin`: windows are shared across hosts by the wall clock, while waits
    /// use tokio's clock (which tests can pause).
    origin: (Instant, i64),
    deadline: Instant,
    /// Posts this invocation still expects to make: a claim never takes more.
    expected: Mutex<u64>,
    slots: tokio::sync::Mutex<VecDeque<Instant>>,
    /// ms spent waiting for slots, summed over posts.
    waited_ms: AtomicU64,
    /// The last claim's round trip, ms.
    claim_ms: AtomicU64,
}

impl<'a> Pacer<'a> {
    pub fn new(budget: &'a PostBudget, expected_posts: u64, deadline: Instant) -> Self {
        Self {
            budget,
            origin: (Instant::now(), now_ms()),
            deadline,
            expected: Mutex::new(expected_posts),
            slots: tokio::sync::Mutex::new(VecDeque::new()),
            waited_ms: AtomicU64::new(0),
            claim_ms: AtomicU64::new(0),
        }
    }

    /// ms the invocation's posts waited for the budget, summed.
    pub fn waited_ms(&self) -> u64 {
        self.waited_ms.load(Ordering::Relaxed)
    }

    fn epoch_ms(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.origin.0);
        self.origin.1 + i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    }

    fn instant_at(&self, epoch_ms: i64) -> Instant {
        let ahead = u64::try_from(epoch_ms - self.origin.1).unwrap_or(0);
        self.origin.0 + Duration::from_millis(ahead)
    }

    /// Waits for this invocation's next post slot; false when none comes before the deadline.
    pub async fn acquire(&self) -> bool {
        let asked = Instant::now();
        let slot = {
            let mut slots = self.slots.lock().await;
            if slots.is_empty() && !self.claim(&mut slots).await {
                return false;
            }
            slots.pop_front().expect("claimed")
        };
        tokio::time::sleep_until(slot).await;
        let waited = Instant::now().saturating_duration_since(asked).as_millis();
        self.waited_ms
            .fetch_add(u64::try_from(waited).unwrap_or(u64::MAX), Ordering::Relaxed);
        true
    }

    /// Claims a slice of the current window, or of a later one, and lays its posts out at
    /// their positions in it.
    async fn claim(&self, slots: &mut VecDeque<Instant>) -> bool {
        let capacity = self.budget.capacity();
        let wanted = {
            let expected = *self.expected.lock().expect("not poisoned");
            // Enough to post through two round trips of the next claim.
            let trip = self.claim_ms.load(Ordering::Relaxed) + 10;
            let during_trips = u64::from(capacity) * trip * 2 / WINDOW_MS.unsigned_abs();
            let slice = u64::from((capacity / SLICES).max(1)).max(during_trips);
            let wanted = slice.min(u64::from(capacity)).min(expected.max(1));
            u32::try_from(wanted).expect("at most a window")
        };
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            let epoch = self.epoch_ms(now);
            let window = PostBudget::window_of(epoch);
            let next = window + WINDOW_MS;
            // The positions that will have passed when the claim's answer is back are not
            // asked for: posting them late would crowd the next second.
            let trip = i64::try_from(self.claim_ms.load(Ordering::Relaxed)).unwrap_or(0);
            let floor = u32::try_from(
                ((epoch + trip - window) * i64::from(capacity) / WINDOW_MS)
                    .min(i64::from(capacity)),
            )
            .unwrap_or(capacity);
            let claim = Claim {
                wanted,
                floor,
                capacity,
            };
            let claimed = self.budget.windows.claim(window, claim).await;
            let answered = Instant::now();
            let trip = answered.saturating_duration_since(now).as_millis();
            self.claim_ms
                .store(u64::try_from(trip).unwrap_or(u64::MAX), Ordering::Relaxed);
            let claimed = match claimed {
                Ok(claimed) => claimed,
                Err(error) => {
                    // Fail open: the account throttle and the 429 handling still hold.
                    tracing::warn!(%error, "posting budget unavailable; posting unpaced for a window");
                    claim.grant(0)
                }
            };
            // Position i of a window goes at its i/capacity: all invocations together post
            // evenly at the budget's rate. A position already past (a slow answer) is
            // dropped, not posted late.
            let granted = claimed.len();
            let on_time: Vec<Instant> = claimed
                .map(|i| self.instant_at(window + WINDOW_MS * i64::from(i) / i64::from(capacity)))
                .filter(|at| *at + LATE >= answered)
                .collect();
            if !on_time.is_empty() {
                let mut expected = self.expected.lock().expect("not poisoned");
                *expected = expected.saturating_sub(on_time.len() as u64);
                drop(expected);
                slots.extend(on_time.into_iter().map(|at| at.max(answered)));
                return true;
            }
            if granted > 0 {
                continue; // granted, but too late: ask again from where time is now
            }
            tokio::time::sleep_until(self.instant_at(next).min(self.deadline)).await;
        }
    }
}

/// A [`Poster`] that waits for the budget (when there is one) before each post, and counts
/// the posts it makes.
pub struct Paced<'a, P> {
    poster: &'a P,
    pacer: Option<Pacer<'a>>,
    posts: AtomicU64,
}

impl<'a, P> Paced<'a, P> {
    pub fn new(poster: &'a P, pacer: Option<Pacer<'a>>) -> Self {
        Self {
            poster,
            pacer,
            posts: AtomicU64::new(0),
        }
    }

    /// Posts made (whatever their answer).
    pub fn posts(&self) -> u64 {
        self.posts.load(Ordering::Relaxed)
    }

    pub fn waited_ms(&self) -> u64 {
        self.pacer.as_ref().map_or(0, Pacer::waited_ms)
    }
}

impl<P: Poster> Poster for Paced<'_, P> {
    async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
        if let Some(pacer) = &self.pacer
            && !pacer.acquire().await
        {
            return PostOutcome::OutOfBudget;
        }
        self.posts.fetch_add(1, Ordering::Relaxed);
        self.poster.post(connection_id, data).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn memory_budget(per_second: u32) -> PostBudget {
        PostBudget {
            windows: Windows::Memory(MemoryWindows::default()),
            per_second,
        }
    }

    /// Every grant of `invocations` pacers sharing `budget`, each making `posts` posts, as ms
    /// from the start.
    async fn grants(budget: &Arc<PostBudget>, invocations: usize, posts: u64) -> Vec<u64> {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(3600);
        let runs = (0..invocations).map(|_| {
            let budget = budget.clone();
            tokio::spawn(async move {
                let pacer = Pacer::new(&budget, posts, deadline);
                let mut at = Vec::new();
                for _ in 0..posts {
                    assert!(pacer.acquire().await);
                    at.push(Instant::now().duration_since(start).as_millis() as u64);
                }
                at
            })
        });
        let mut all: Vec<u64> = futures::future::join_all(runs)
            .await
            .into_iter()
            .flat_map(Result::unwrap)
            .collect();
        all.sort_unstable();
        all
    }

    /// The most grants in any one-second window.
    fn busiest_second(grants: &[u64]) -> usize {
        grants
            .iter()
            .enumerate()
            .map(|(i, t)| grants[i..].partition_point(|u| *u < t + 1000))
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_invocations_share_the_budget_and_use_it_all() {
        let budget = Arc::new(memory_budget(1_000));
        let grants = grants(&budget, 3, 2_000).await;
        assert_eq!(grants.len(), 6_000);
        assert!(
            busiest_second(&grants) <= 1_001,
            "busiest second: {}",
            busiest_second(&grants)
        );
        // 6,000 posts at 1,000/s: six seconds, not much more (the budget is used, not wasted).
        let span = grants.last().unwrap();
        assert!((5_800..=6_300).contains(span), "took {span} ms");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_invocation_gets_the_whole_budget() {
        let budget = Arc::new(memory_budget(500));
        let grants = grants(&budget, 1, 1_000).await;
        let span = grants.last().unwrap();
        assert!((1_850..=2_100).contains(span), "took {span} ms");
        assert!(busiest_second(&grants) <= 501);
    }

    #[tokio::test(start_paused = true)]
    async fn a_small_budget_still_paces() {
        let budget = Arc::new(memory_budget(4));
        let grants = grants(&budget, 2, 4).await;
        // A sliding second may catch one post more at its edges, never more.
        assert!(busiest_second(&grants) <= 5, "{grants:?}");
        assert!(*grants.last().unwrap() >= 1_500, "{grants:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_slot_past_the_deadline() {
        let budget = memory_budget(100);
        let pacer = Pacer::new(&budget, 1_000, Instant::now() + Duration::from_millis(500));
        let mut granted = 0;
        while pacer.acquire().await {
            granted += 1;
        }
        assert!((40..=60).contains(&granted), "granted {granted}");
        assert!(pacer.waited_ms() > 0);
    }
}
