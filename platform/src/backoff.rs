//! Capped exponential backoff with full jitter: the one backoff of the code base (posts,
//! requeues, SQS batch entries, DynamoDB unprocessed items).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first retry's ceiling; it doubles with each retry.
    pub base: Duration,
    /// No ceiling is higher.
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The ceiling before retry `retry` (1 = the first retry): `base * 2^(retry-1)`, capped.
    pub fn ceiling(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.cap)
    }

    /// Full jitter: `unit_random` in [0, 1] picks a delay in [0, ceiling]. Spreads the retries
    /// of many callers so that they do not hit a throttle again all at once.
    pub fn jittered(&self, retry: u32, unit_random: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit_random.clamp(0.0, 1.0))
    }

    /// [`Self::jittered`] with a fresh random draw.
    pub fn delay(&self, retry: u32) -> Duration {
        self.jittered(retry, rand::random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTS: Backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let ceilings: Vec<u128> = (1..=8).map(|r| POSTS.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(POSTS.ceiling(0), POSTS.base, "retry 0 reads as the first");
        assert_eq!(POSTS.ceiling(u32::MAX), POSTS.cap, "no overflow");
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        assert_eq!(POSTS.jittered(3, 0.0), Duration::ZERO);
        assert_eq!(POSTS.jittered(3, 1.0), Duration::from_millis(200));
        assert_eq!(POSTS.jittered(3, 0.5), Duration::from_millis(100));
        assert_eq!(
            POSTS.jittered(3, 7.0),
            Duration::from_millis(200),
            "clamped"
        );
        let samples: Vec<Duration> = (0..1000).map(|_| POSTS.delay(4)).collect();
        assert!(samples.iter().all(|d| *d <= Duration::from_millis(400)));
        let mean = samples.iter().sum::<Duration>() / 1000;
        assert!(
            mean > Duration::from_millis(150) && mean < Duration::from_millis(250),
            "{mean:?}"
        );
    }
}
