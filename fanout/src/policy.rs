//! When to try a failed post again: backoff with full jitter inside the invocation's time
//! budget, then requeue with a growing delay, up to a number of attempts.

use std::time::Duration;

use platform::Backoff;
use tokio::time::Instant;

/// SQS's longest message delay.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Between tries of one post within an invocation.
    pub post_backoff: Backoff,
    /// Posts per connection and part within one invocation (the first included).
    pub tries: u32,
    /// The delay of requeued jobs: doubling per attempt, up to SQS's 15 minutes (no jitter:
    /// the ids of one requeued job already go out together).
    pub requeue_backoff: Backoff,
    /// Attempts (invocations) per connection before it is given up, logged and counted.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            post_backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            tries: 6,
            requeue_backoff: Backoff::new(Duration::from_secs(2), MAX_QUEUE_DELAY),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The next backoff before try `retry + 1`, or `None` when tries are used up or it would
    /// end past `deadline`.
    pub fn next_delay(&self, retry: u32, now: Instant, deadline: Instant) -> Option<Duration> {
        if retry >= self.tries {
            return None;
        }
        let delay = self.post_backoff.delay(retry);
        (now + delay < deadline).then_some(delay)
    }

    /// The delay of a job requeued as attempt `attempt` (1 = the first requeue).
    pub fn requeue_delay(&self, attempt: u32) -> Duration {
        self.requeue_backoff.ceiling(attempt)
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
    fn retries_stop_at_the_try_limit_or_the_deadline() {
        let policy = RetryPolicy::default();
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        assert!(policy.next_delay(1, now, far).is_some());
        assert!(policy.next_delay(5, now, far).is_some());
        assert!(policy.next_delay(6, now, far).is_none(), "6 tries in all");
        assert!(policy.next_delay(1, now, now).is_none(), "no time left");
        for _ in 0..100 {
            let delay = policy.next_delay(3, now, far).unwrap();
            assert!(
                delay <= Duration::from_millis(200),
                "jittered under the ceiling"
            );
        }
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
