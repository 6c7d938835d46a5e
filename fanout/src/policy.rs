//! When to try a failed post again: exponential backoff with full jitter inside the
//! invocation's time budget, then requeue with a growing delay, up to a number of attempts.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first backoff's upper bound; it doubles with each retry.
    pub base: Duration,
    /// No single backoff is longer.
    pub cap: Duration,
    /// Posts per connection and part within one invocation (the first included).
    pub tries: u32,
    /// Delay of the first requeue; it doubles with each attempt, up to SQS's 15 minutes.
    pub requeue_base: Duration,
    /// Attempts (invocations) per connection before it is given up, logged and counted.
    pub max_attempts: u32,
}

/// SQS's longest message delay.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
            tries: 6,
            requeue_base: Duration::from_secs(2),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff before try `retry` (1 = the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.cap)
    }

    /// Full jitter: uniform in [0, ceiling]. Spreads the retries of many throttled posts so
    /// they do not hit the account throttle again all at once.
    pub fn backoff(&self, retry: u32, unit_random: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit_random.clamp(0.0, 1.0))
    }

    /// The next backoff, or `None` when tries are used up or it would end past `deadline`.
    pub fn next_delay(&self, retry: u32, now: Instant, deadline: Instant) -> Option<Duration> {
        if retry >= self.tries {
            return None;
        }
        let delay = self.backoff(retry, rand::random());
        (now + delay < deadline).then_some(delay)
    }

    /// The delay of a job requeued as attempt `attempt` (1 = the first requeue).
    pub fn requeue_delay(&self, attempt: u32) -> Duration {
        self.requeue_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(MAX_QUEUE_DELAY)
    }

    /// Whether a job that failed in attempt `attempt` may go back to the queue.
    pub fn may_requeue(&self, attempt: u32) -> bool {
        attempt + 1 < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u128> = (1..=8).map(|r| policy.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(3, 1.0), Duration::from_millis(200));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(100));
        let samples: Vec<Duration> = (0..1000)
            .map(|_| policy.backoff(4, rand::random()))
            .collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        let mean = samples.iter().sum::<Duration>() / 1000;
        assert!(
            mean > Duration::from_millis(150) && mean < Duration::from_millis(250),
            "{mean:?}"
        );
    }

    #[test]
    fn retries_stop_at_the_try_limit_or_the_deadline() {
        let policy = RetryPolicy::default();
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        assert!(policy.next_delay(1, now, far).is_some());
        assert!(policy.next_delay(5, now, far).is_some());
        assert!(policy.next_delay(6, now, far).is_none(), "6 tries in all");
        assert!(policy.next_delay(1, now, now).is_none(), "no time left");
    }

    #[test]
    fn requeues_back_off_and_stop_after_the_last_attempt() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.requeue_delay(1), Duration::from_secs(2));
        assert_eq!(policy.requeue_delay(3), Duration::from_secs(8));
        assert_eq!(policy.requeue_delay(30), MAX_QUEUE_DELAY);
        assert!(policy.may_requeue(0));
        assert!(policy.may_requeue(3));
        assert!(!policy.may_requeue(4), "attempt 4 is the fifth and last");
    }
}
