//! The round in flight: its state, its lease, when it is complete, and the keys of its jobs.
//!
//! A round is complete when every job it enqueued is done. The processor learns how many jobs
//! there are only when it has paged the whole registry, while fanout may finish the first jobs
//! before that; so `outstanding` starts at 0, each done job subtracts one (or adds the pieces
//! it was requeued as, minus one), the processor adds the total when it has sent them all, and
//! whoever sees `enqueued` with nothing outstanding ends the round. Jobs are told apart by
//! their key (`jobs::RoundRef`), so a job SQS delivers twice is counted once.

use std::time::Duration;

/// The in-flight (or last) round, as the state table's control item holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundState {
    pub round_id: String,
    pub in_flight: bool,
    /// Epoch ms.
    pub started_at: i64,
    /// Epoch ms after which another round may take over.
    pub lease_until: i64,
    /// Whether the processor has sent every job of the round.
    pub enqueued: bool,
    pub outstanding: i64,
    /// Epoch ms of the oldest change the round carries (its staleness at the end).
    pub oldest_change: Option<i64>,
    /// Entities the round carries.
    pub entities: u64,
}

impl RoundState {
    pub fn is_complete(&self) -> bool {
        self.in_flight && self.enqueued && self.outstanding <= 0
    }

    /// Whether a new round may start at `now`: none is in flight, or its lease ran out.
    pub fn may_be_replaced(&self, now: i64) -> bool {
        !self.in_flight || self.lease_until < now
    }

    /// ms the round has been running at `now` (0 when none is in flight).
    pub fn age(&self, now: i64) -> i64 {
        if self.in_flight {
            (now - self.started_at).max(0)
        } else {
            0
        }
    }
}

/// A new round id: unique, and short enough to serve as the broadcast id clients see.
pub fn new_round_id() -> String {
    format!("r-{:016x}", rand::random::<u64>())
}

/// When a round of `posts` posts, sent at `budget` posts/s, may be taken over: the base lease
/// plus twice the time the posts need at the budget (a round that takes twice its expected
/// time is stuck, not slow).
pub fn lease_until(now: i64, base: Duration, posts: u64, budget_per_second: u32) -> i64 {
    let base_ms = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
    let posting_ms = if budget_per_second == 0 {
        0
    } else {
        i64::try_from(posts.saturating_mul(2000) / u64::from(budget_per_second)).unwrap_or(i64::MAX)
    };
    now.saturating_add(base_ms).saturating_add(posting_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RoundState {
        RoundState {
            round_id: "r-1".into(),
            in_flight: true,
            started_at: 1_000,
            lease_until: 61_000,
            ..RoundState::default()
        }
    }

    #[test]
    fn a_round_completes_only_when_enqueued_with_nothing_outstanding() {
        let mut round = state();
        round.outstanding = -3; // fanout finished three jobs before the processor's total
        assert!(!round.is_complete());
        round.enqueued = true;
        round.outstanding += 3;
        assert!(round.is_complete());
        round.outstanding = 1;
        assert!(!round.is_complete());
    }

    #[test]
    fn a_round_is_replaced_only_when_idle_or_past_its_lease() {
        let round = state();
        assert!(!round.may_be_replaced(61_000));
        assert!(round.may_be_replaced(61_001));
        let idle = RoundState {
            in_flight: false,
            ..state()
        };
        assert!(idle.may_be_replaced(0));
        assert_eq!(idle.age(5_000), 0);
        assert_eq!(round.age(5_000), 4_000);
    }

    #[test]
    fn the_lease_grows_with_the_posts_a_round_needs() {
        let base = Duration::from_secs(60);
        assert_eq!(lease_until(0, base, 0, 9_000), 60_000);
        // 100k connections at 9,000/s: 11.1 s of posting, leased for twice that.
        assert_eq!(lease_until(0, base, 100_000, 9_000), 60_000 + 22_222);
        assert_eq!(lease_until(0, base, 100_000, 0), 60_000);
    }
}
