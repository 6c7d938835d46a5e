//! The account-level throttle in front of the management API: a token bucket.

use std::time::Instant;

/// Token-bucket settings: `rate_per_sec` tokens are added per second, up to `burst` tokens.
/// API Gateway's account default is 10,000 requests/s with a burst of 5,000.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Throttle {
    pub rate_per_sec: f64,
    pub burst: u32,
}

impl Throttle {
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        Self {
            rate_per_sec,
            burst,
        }
    }

    pub(crate) fn is_valid(&self) -> bool {
        self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0 && self.burst >= 1
    }
}

/// A token bucket that starts full, so a fresh gateway accepts one burst at once.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    settings: Throttle,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub(crate) fn new(settings: Throttle, now: Instant) -> Self {
        Self {
            settings,
            tokens: f64::from(settings.burst),
            refilled_at: now,
        }
    }

    pub(crate) fn settings(&self) -> Throttle {
        self.settings
    }

    /// Takes one token if there is one.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.settings.rate_per_sec)
            .min(f64::from(self.settings.burst));
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(Throttle::new(100.0, 10), start);
        let granted = (0..50).filter(|_| bucket.try_acquire(start)).count();
        assert_eq!(granted, 10);
        // 100/s refills one token every 10 ms.
        assert!(!bucket.try_acquire(start + Duration::from_millis(9)));
        assert!(bucket.try_acquire(start + Duration::from_millis(11)));
        assert!(!bucket.try_acquire(start + Duration::from_millis(12)));
        // A long pause refills to the burst, not beyond.
        let later = start + Duration::from_secs(60);
        let granted = (0..50).filter(|_| bucket.try_acquire(later)).count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn validity() {
        assert!(Throttle::new(0.5, 1).is_valid());
        assert!(!Throttle::new(0.0, 1).is_valid());
        assert!(!Throttle::new(f64::NAN, 1).is_valid());
        assert!(!Throttle::new(10.0, 0).is_valid());
    }
}
