//! The posting budget (`POST_BUDGET_PER_SECOND`), shared by every concurrent invocation.
//!
//! API Gateway throttles posts per account (10,000/s by default). Instead of finding that
//! limit through 429s, which starve the account's other APIs, invocations pace themselves.
//! The budget is cut into lanes of about [`LANE_RATE`] posts per second: a lane is an even
//! stream of post slots, one every `lanes / budget` seconds, so the lanes together never post
//! faster than the budget over any second. The shared store keeps, for each lane, the time up
//! to which its slots are taken. An invocation claims a run of a lane's slots and posts each at
//! its time. It holds as many lanes at once as its posts in flight can keep up with (several
//! when it posts faster than one lane), and claims its next run before the last one ends, so
//! that it does not stop for a claim's round trip. With no slot while every lane is taken, it
//! books the first run free, however far ahead, and sleeps until it: many invocations waiting
//! for the budget then ask the store once each, not over and over. A slot it reaches too late
//! is left: a late post would crowd the next second.

pub mod dynamo;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use platform::clock::now_ms;
use tokio::time::Instant;

use crate::post::{PostOutcome, Poster};

/// Posts per second of one lane: about what an invocation makes with 64 posts in flight at
/// 50 ms each. A run comes at its lane's pace, so no invocation is handed slots denser than it
/// can keep up with; a faster one holds several lanes.
pub const LANE_RATE: u32 = 1000;
/// A claim asks for this much of a lane's time, at least (a run must also outlast two round
/// trips of the next claim).
const RUN: Duration = Duration::from_millis(250);
/// How late a slot may still be used (a busy host's timers fire late). Posts at most this
/// late keep any second within LATE / 1 s (4.5%) of the budget.
const LATE: Duration = Duration::from_millis(45);
/// A post's round trip until one is measured: on the slow side, so that an invocation does
/// not take more lanes than it can keep up with before it knows.
const FIRST_POST: Duration = Duration::from_millis(50);
/// How far ahead an invocation with no slot books a run: while every lane is booked further,
/// it waits.
const QUEUE_AHEAD: Duration = Duration::from_secs(5);

/// Where the lanes live: DynamoDB for functions, memory for tests.
pub enum Lanes {
    Dynamo(dynamo::DynamoLanes),
    Memory(MemoryLanes),
}

impl Lanes {
    /// Claims a run of a lane's slots as [`Claim::grant`] says.
    async fn claim(&self, claim: Claim) -> Result<Granted, String> {
        match self {
            Self::Dynamo(store) => store.claim(claim).await,
            Self::Memory(store) => Ok(store.claim(claim)),
        }
    }
}

/// What an invocation asks of one lane. Times are epoch microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub lane: u32,
    /// Where the lane was last seen taken up to (0: never seen): where the store looks first.
    pub taken: i64,
    pub wanted: u32,
    /// The first slot time not yet past: earlier slots would be posted late.
    pub floor: i64,
    /// The latest time a run may start: later ones are not wanted yet.
    pub ceiling: i64,
    /// Between two slots of a lane.
    pub spacing: i64,
}

impl Claim {
    /// The run granted when the lane's slots are taken up to `taken`.
    pub fn grant(&self, taken: i64) -> Run {
        let start = taken.max(self.floor);
        let count = if start > self.ceiling { 0 } else { self.wanted };
        Run {
            start,
            count,
            spacing: self.spacing,
        }
    }
}

/// Slots of a lane: `count` of them from `start`, `spacing` apart (epoch µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: i64,
    pub count: u32,
    pub spacing: i64,
}

impl Run {
    /// Where the lane is taken up to after this run.
    pub fn end(&self) -> i64 {
        self.start + i64::from(self.count) * self.spacing
    }

    fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..i64::from(self.count)).map(|k| self.start + k * self.spacing)
    }
}

/// A store's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// Empty (`count` 0) when the lane was taken past the claim's ceiling.
    pub run: Run,
    /// Where every lane is taken up to, as the store holds them (lanes never claimed are
    /// absent): the next claim goes to the lane that is free soonest.
    pub taken: HashMap<u32, i64>,
}

/// Lanes in memory, for tests and for a single process.
#[derive(Default)]
pub struct MemoryLanes {
    taken: Mutex<HashMap<u32, i64>>,
}

impl MemoryLanes {
    fn claim(&self, claim: Claim) -> Granted {
        let mut taken = self.taken.lock().expect("not poisoned");
        let lane = taken.entry(claim.lane).or_default();
        let run = claim.grant(*lane);
        if run.count > 0 {
            *lane = run.end();
        }
        Granted {
            run,
            taken: taken.clone(),
        }
    }
}

/// The budget: posts per second over the shared lanes.
pub struct PostBudget {
    pub lanes: Lanes,
    pub per_second: u32,
}

impl PostBudget {
    /// The budget a function's configuration asks for, its lanes in the state table.
    pub fn configured(
        dynamo: &aws_sdk_dynamodb::Client,
        config: &crate::FanoutConfig,
    ) -> Option<Self> {
        let table = config.state_table.clone()?;
        (config.budget_per_second > 0).then(|| Self {
            lanes: Lanes::Dynamo(dynamo::DynamoLanes::new(dynamo.clone(), table)),
            per_second: config.budget_per_second,
        })
    }

    /// Lanes the budget is cut into.
    pub fn lane_count(&self) -> u32 {
        self.per_second.max(1).div_ceil(LANE_RATE)
    }

    /// µs between two slots of a lane, rounded up: the lanes together stay within the budget.
    pub fn spacing(&self) -> i64 {
        let spacing =
            (u64::from(self.lane_count()) * 1_000_000).div_ceil(u64::from(self.per_second.max(1)));
        i64::try_from(spacing).expect("at most a second per lane's slot")
    }
}

/// One invocation's pacing: when each of its posts may go.
pub struct Pacer<'a> {
    budget: &'a PostBudget,
    /// Epoch µs at `origin`: lanes are shared across hosts by the wall clock, while waits use
    /// tokio's clock (which tests can pause).
    origin: (Instant, i64),
    deadline: Instant,
    /// Posts this invocation still expects to make: a claim never takes more.
    expected: Mutex<u64>,
    /// Posts the invocation makes at once: with their round trip, how many lanes it can hold.
    in_flight: usize,
    slots: Mutex<Slots>,
    /// Held by the post waiting for the next slot.
    turn: tokio::sync::Mutex<()>,
    /// One claim at a time; it keeps what the answers said of the lanes.
    claims: tokio::sync::Mutex<Seen>,
    /// ms spent waiting for slots, summed over posts.
    waited_ms: AtomicU64,
    /// Slots left because the invocation reached them too late.
    missed: AtomicU64,
    /// Claims sent to the store.
    claims_sent: AtomicU64,
    /// The last claim's round trip, µs.
    claim_us: AtomicU64,
    /// A post's round trip, µs, smoothed.
    post_us: AtomicU64,
}

/// The slots granted and not yet used.
#[derive(Default)]
struct Slots {
    due: BinaryHeap<Reverse<Instant>>,
    /// When each run held ends (its last slot).
    runs: Vec<Instant>,
}

/// What the store's answers said of the lanes.
struct Seen {
    taken: HashMap<u32, i64>,
    /// Where this invocation starts looking among lanes it knows nothing of, so that
    /// invocations starting together ask different lanes.
    seed: u64,
}

impl<'a> Pacer<'a> {
    pub fn new(
        budget: &'a PostBudget,
        expected_posts: u64,
        in_flight: usize,
        deadline: Instant,
    ) -> Self {
        Self {
            budget,
            origin: (Instant::now(), now_ms() * 1000),
            deadline,
            expected: Mutex::new(expected_posts),
            in_flight: in_flight.max(1),
            slots: Mutex::new(Slots::default()),
            turn: tokio::sync::Mutex::new(()),
            claims: tokio::sync::Mutex::new(Seen {
                taken: HashMap::new(),
                seed: RandomState::new().hash_one(expected_posts),
            }),
            waited_ms: AtomicU64::new(0),
            missed: AtomicU64::new(0),
            claims_sent: AtomicU64::new(0),
            claim_us: AtomicU64::new(0),
            post_us: AtomicU64::new(0),
        }
    }

    /// ms the invocation's posts waited for the budget, summed.
    pub fn waited_ms(&self) -> u64 {
        self.waited_ms.load(Ordering::Relaxed)
    }

    /// Slots left because the invocation reached them too late, and claims sent: a pacer
    /// that keeps up misses few, and asks once per run.
    pub fn missed_and_claims(&self) -> (u64, u64) {
        (
            self.missed.load(Ordering::Relaxed),
            self.claims_sent.load(Ordering::Relaxed),
        )
    }

    /// A post took `took`: how fast the invocation can post tells how many lanes it can hold.
    pub fn observe_post(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .post_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |smoothed| {
                Some(if smoothed == 0 {
                    took
                } else {
                    (smoothed * 7 + took) / 8
                })
            });
    }

    fn epoch_us(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.origin.0);
        self.origin.1 + i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
    }

    fn instant_at(&self, epoch_us: i64) -> Instant {
        let ahead = u64::try_from(epoch_us - self.origin.1).unwrap_or(0);
        self.origin.0 + Duration::from_micros(ahead)
    }

    fn claim_trip(&self) -> Duration {
        Duration::from_micros(self.claim_us.load(Ordering::Relaxed))
    }

    /// How far ahead of a run's end the next claim goes out: two of its round trips.
    fn lead(&self) -> Duration {
        self.claim_trip() * 2 + Duration::from_millis(10)
    }

    /// The length of a run: at least twice the lead, so that a fresh run counts as held.
    fn run(&self) -> Duration {
        RUN.max(self.lead() * 2)
    }

    /// Waits for this invocation's next post slot; false when none comes before the deadline.
    pub async fn acquire(&self) -> bool {
        let asked = Instant::now();
        // Posts take the slots in turn, in time order: the first post free takes the next slot,
        // so that no post sleeps on a far slot while a nearer one goes unused.
        let turn = self.turn.lock().await;
        let (slot, more) = loop {
            let (slot, more) = {
                let mut slots = self.slots.lock().expect("not poisoned");
                let slot = slots.due.pop().map(|Reverse(at)| at);
                (slot, self.wants_more(&mut slots))
            };
            let Some(slot) = slot else {
                if !self.refill(true).await {
                    return false;
                }
                continue;
            };
            if slot > self.deadline {
                return false;
            }
            if slot + LATE < Instant::now() {
                // Reached too late: the slot is left, and its post waits for another.
                *self.expected.lock().expect("not poisoned") += 1;
                self.missed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            break (slot, more);
        };
        let take_slot = async move {
            tokio::time::sleep_until(slot).await;
            drop(turn);
        };
        if more && slot >= Instant::now() {
            // Claim while this post waits for its slot; the next posts take their turns.
            tokio::join!(take_slot, self.refill(false));
        } else {
            take_slot.await;
        }
        let waited = Instant::now().saturating_duration_since(asked).as_millis();
        self.waited_ms
            .fetch_add(u64::try_from(waited).unwrap_or(u64::MAX), Ordering::Relaxed);
        true
    }

    /// Lanes the invocation can keep up with: its posts in flight over a post's round trip,
    /// with a tenth to spare, in whole lanes, at least one.
    fn lanes_held(&self) -> usize {
        let post = match self.post_us.load(Ordering::Relaxed) {
            0 => FIRST_POST,
            us => Duration::from_micros(us),
        };
        let rate = self.in_flight as f64 / post.as_secs_f64().max(1e-6);
        let lane = f64::from(self.budget.per_second.max(1)) / f64::from(self.budget.lane_count());
        ((rate * 0.9 / lane) as usize).max(1)
    }

    /// The invocation should claim another run: fewer of its runs than the lanes it can hold
    /// go on past the lead. Forgets the runs that have ended.
    fn wants_more(&self, slots: &mut Slots) -> bool {
        let now = Instant::now();
        slots.runs.retain(|end| *end > now);
        let lead = now + self.lead();
        slots.runs.iter().filter(|end| **end > lead).count() < self.lanes_held()
    }

    /// Epoch µs from which a new run may post: once fewer of the invocation's runs than the
    /// lanes it can hold are left (a run that follows another must not overlap it), or now.
    fn run_floor(&self, answered_at: i64) -> i64 {
        let now = Instant::now();
        let mut ends: Vec<Instant> = {
            let slots = self.slots.lock().expect("not poisoned");
            slots
                .runs
                .iter()
                .copied()
                .filter(|end| *end > now)
                .collect()
        };
        let held = self.lanes_held();
        if ends.len() < held {
            return answered_at;
        }
        ends.sort_unstable();
        self.epoch_us(ends[ends.len() - held]).max(answered_at)
    }

    /// Claims a run of the lane free soonest. `wait`: the invocation has no slot at all, so
    /// this waits for a claim in progress, or until a lane is free within reach; false past
    /// the deadline. Without it, at most one claim.
    async fn refill(&self, wait: bool) -> bool {
        let mut seen = if wait {
            self.claims.lock().await
        } else {
            match self.claims.try_lock() {
                Ok(seen) => seen,
                Err(_) => return true, // another post is claiming
            }
        };
        loop {
            if wait && !self.slots.lock().expect("not poisoned").due.is_empty() {
                return true; // the claim this one waited for brought slots
            }
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            // Slots that will have passed when the answer is back are not asked for.
            let answered_at = self.epoch_us(now + self.claim_trip());
            let floor = self.run_floor(answered_at);
            // With no slot at all, the invocation books the next run free on any lane, however
            // far ahead, and sleeps until it: asking again and again would only load the
            // store. With slots, it takes only a run that starts within the lead.
            let ahead = if wait { QUEUE_AHEAD } else { self.lead() };
            let claim = match self.next_claim(&seen, answered_at, floor, ahead) {
                Ok(claim) => claim,
                Err(_) if !wait => return true,
                Err(free) => {
                    // Every lane is booked beyond the horizon: ask again when the first one's
                    // bookings end within it.
                    let wake = self.instant_at(free) - QUEUE_AHEAD - self.claim_trip();
                    let wake = wake.max(now + Duration::from_millis(1)).min(self.deadline);
                    tokio::time::sleep_until(wake).await;
                    continue;
                }
            };
            self.claims_sent.fetch_add(1, Ordering::Relaxed);
            let answer = self.budget.lanes.claim(claim).await;
            let answered = Instant::now();
            let trip = answered.saturating_duration_since(now).as_micros();
            self.claim_us
                .store(u64::try_from(trip).unwrap_or(u64::MAX), Ordering::Relaxed);
            let run = match answer {
                Ok(granted) => {
                    seen.taken = granted.taken;
                    granted.run
                }
                Err(error) => {
                    // Fail open: the account throttle and the 429 handling still hold.
                    tracing::warn!(%error, "posting budget unavailable; posting unpaced for a run");
                    claim.grant(claim.floor)
                }
            };
            if self.lay_out(run, answered) > 0 || !wait {
                return true;
            }
        }
    }

    /// The claim on the lane free soonest from `floor`, for a run that starts no more than
    /// `ahead` after the answer. When every lane is taken beyond that: the epoch µs at which
    /// the first frees.
    fn next_claim(
        &self,
        seen: &Seen,
        answered_at: i64,
        floor: i64,
        ahead: Duration,
    ) -> Result<Claim, i64> {
        let run = i64::try_from(self.run().as_micros()).unwrap_or(i64::MAX);
        let spacing = self.budget.spacing();
        let expected = (*self.expected.lock().expect("not poisoned")).max(1);
        let wanted = u64::try_from(run / spacing).unwrap_or(1).clamp(1, expected);
        let lanes = self.budget.lane_count();
        // Lanes in an order of this invocation's own, so that invocations that know nothing
        // of the lanes yet ask different ones.
        let (lane, taken) = (0..lanes)
            .map(|k| u32::try_from((u64::from(k) + seen.seed) % u64::from(lanes)).expect("a lane"))
            .map(|lane| (lane, seen.taken.get(&lane).copied().unwrap_or(0)))
            .min_by_key(|(_, taken)| (*taken).max(floor))
            .expect("at least one lane");
        let ahead = i64::try_from(ahead.as_micros()).unwrap_or(i64::MAX);
        let claim = Claim {
            lane,
            taken,
            wanted: u32::try_from(wanted).unwrap_or(u32::MAX),
            floor,
            ceiling: answered_at + ahead,
            spacing,
        };
        if claim.grant(taken).count > 0 {
            Ok(claim)
        } else {
            Err(taken)
        }
    }

    /// Puts the run's slot times among the slots; those already past when the answer came, or
    /// past the deadline, are left. Returns the slots added.
    fn lay_out(&self, run: Run, answered: Instant) -> u64 {
        let on_time: Vec<Instant> = run
            .times()
            .map(|at| self.instant_at(at))
            .filter(|at| *at + LATE >= answered && *at <= self.deadline)
            .collect();
        let added = on_time.len() as u64;
        if added > 0 {
            let mut expected = self.expected.lock().expect("not poisoned");
            *expected = expected.saturating_sub(added);
            drop(expected);
            let mut slots = self.slots.lock().expect("not poisoned");
            slots.runs.extend(on_time.iter().max().copied());
            slots
                .due
                .extend(on_time.into_iter().map(|at| Reverse(at.max(answered))));
        }
        added
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

    /// See [`Pacer::missed_and_claims`].
    pub fn missed_and_claims(&self) -> (u64, u64) {
        self.pacer.as_ref().map_or((0, 0), Pacer::missed_and_claims)
    }
}

impl<P: Poster> Poster for Paced<'_, P> {
    async fn post(&self, connection_id: &str, data: &[u8]) -> PostOutcome {
        let Some(pacer) = &self.pacer else {
            self.posts.fetch_add(1, Ordering::Relaxed);
            return self.poster.post(connection_id, data).await;
        };
        if !pacer.acquire().await {
            return PostOutcome::OutOfBudget;
        }
        self.posts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = self.poster.post(connection_id, data).await;
        pacer.observe_post(started.elapsed());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn memory_budget(per_second: u32) -> PostBudget {
        PostBudget {
            lanes: Lanes::Memory(MemoryLanes::default()),
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
                let pacer = Pacer::new(&budget, posts, 64, deadline);
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
        // One lane, held in turn: each hand-over may leave it idle for a moment, as the
        // others, refused while its holder went on, wait a little longer each time.
        let span = grants.last().unwrap();
        assert!((5_800..=6_500).contains(span), "took {span} ms");
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

    /// What invocations sharing a budget did: each post's time (ms from the start, in order),
    /// and the slots they missed and the claims they sent, summed.
    struct Posted {
        at: Vec<u64>,
        missed: u64,
        claims: u64,
    }

    /// `invocations` invocations sharing `budget`, each making `posts` posts through `workers`
    /// posts in flight that take `latency` each.
    async fn posted(
        budget: &Arc<PostBudget>,
        invocations: usize,
        workers: u64,
        latency: Duration,
        posts: u64,
    ) -> Posted {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(3600);
        let runs = (0..invocations).map(|_| {
            let budget = budget.clone();
            tokio::spawn(async move {
                let pacer = Pacer::new(&budget, posts, workers as usize, deadline);
                let next = AtomicU64::new(0);
                let worker = || async {
                    let mut at = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < posts {
                        assert!(pacer.acquire().await);
                        at.push(Instant::now().duration_since(start).as_millis() as u64);
                        tokio::time::sleep(latency).await;
                        pacer.observe_post(latency);
                    }
                    at
                };
                let all = futures::future::join_all((0..workers).map(|_| worker())).await;
                (all.concat(), pacer.missed_and_claims())
            })
        });
        let mut total = Posted {
            at: Vec::new(),
            missed: 0,
            claims: 0,
        };
        for run in futures::future::join_all(runs).await {
            let (at, (missed, claims)) = run.unwrap();
            total.at.extend(at);
            total.missed += missed;
            total.claims += claims;
        }
        total.at.sort_unstable();
        total
    }

    /// Invocations of 64 posts in flight at 25 ms (up to 2,560/s each) on a 9,000/s budget (9
    /// lanes of 1,000/s): their rate in the first 4 s, and the busiest second.
    async fn sharing(invocations: usize, posts: u64) -> (u64, usize) {
        let budget = Arc::new(memory_budget(9_000));
        let posted = posted(&budget, invocations, 64, Duration::from_millis(25), posts).await;
        assert_eq!(posted.at.len() as u64, invocations as u64 * posts);
        let before = posted.at.partition_point(|at| *at < 4_000) as u64;
        (before / 4, busiest_second(&posted.at))
    }

    #[tokio::test(start_paused = true)]
    async fn invocations_slower_than_the_budget_each_post_about_as_fast_as_they_can() {
        // With a tenth to spare, each holds two lanes once it has measured its posts.
        let (rate, busiest) = sharing(2, 10_000).await;
        assert!((3_800..=4_100).contains(&rate), "{rate}/s while both post");
        assert!(busiest <= 4_100, "busiest second {busiest}");
    }

    #[tokio::test(start_paused = true)]
    async fn invocations_that_could_post_more_than_the_budget_share_it_and_use_it() {
        // Six ask 15,360/s. The budget is used while they all post (the first is done after
        // 4 s), and no second holds more than the slots' lateness allows (4.5% over).
        let (rate, busiest) = sharing(6, 9_000).await;
        assert!((8_700..=9_100).contains(&rate), "{rate}/s while all post");
        assert!(busiest <= 9_405, "busiest second {busiest}");
    }

    #[tokio::test(start_paused = true)]
    async fn many_waiting_invocations_book_runs_ahead_instead_of_asking_again_and_again() {
        // A round's 50 jobs of 1,000 posts start at once on a 9,000/s budget: each invocation
        // (64 posts in flight at 40 ms: 1,600/s) can keep up with one lane of the 9.
        let budget = Arc::new(memory_budget(9_000));
        let Posted { at, missed, claims } =
            posted(&budget, 50, 64, Duration::from_millis(40), 1_000).await;
        let span = at.last().unwrap();
        // 50,000 posts at 9,000/s: 5.6 s, and the budget is not left idle (but at the very
        // end: a run booked on one lane does not move to another that frees sooner).
        assert!(
            (5_500..=6_400).contains(span),
            "took {span} ms, {claims} claims, {missed} missed"
        );
        // A few claims per job (its runs, and a refusal now and then), not one per lane's turn.
        assert!(claims <= 50 * 15, "{claims} claims");
        assert!(missed <= 500, "{missed} slots missed");
    }

    #[tokio::test(start_paused = true)]
    async fn no_slot_past_the_deadline() {
        let budget = memory_budget(100);
        let pacer = Pacer::new(
            &budget,
            1_000,
            64,
            Instant::now() + Duration::from_millis(500),
        );
        let mut granted = 0;
        while pacer.acquire().await {
            granted += 1;
        }
        assert!((40..=60).contains(&granted), "granted {granted}");
        assert!(pacer.waited_ms() > 0);
    }
}
