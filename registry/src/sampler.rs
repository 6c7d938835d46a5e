//! Log sampling for what clients control: a flood of bad messages must not become a flood of
//! log lines (200k junk frames were 100k lines). A Lambda instance serves one request at a
//! time, so one window per process is enough, and it bounds the lines of each instance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Lets the first `limit` events of each `window_ms` through, and counts the rest.
#[derive(Debug)]
pub struct LogSampler {
    limit: u32,
    window_ms: i64,
    window: Mutex<Window>,
    total: AtomicU64,
}

#[derive(Debug)]
struct Window {
    started_ms: i64,
    logged: u32,
    /// Events not logged since the last one that was.
    suppressed: u64,
}

impl LogSampler {
    pub const fn new(limit: u32, window_ms: i64) -> Self {
        Self {
            limit,
            window_ms,
            window: Mutex::new(Window {
                started_ms: i64::MIN,
                logged: 0,
                suppressed: 0,
            }),
            total: AtomicU64::new(0),
        }
    }

    /// Counts one event at `now_ms`. `Some(suppressed)` when it is to be logged, with the
    /// number of events left unlogged since the last logged one; `None` when it is not.
    pub fn admit(&self, now_ms: i64) -> Option<u64> {
        self.total.fetch_add(1, Ordering::Relaxed);
        // A panic elsewhere cannot leave the counts inconsistent: keep using them.
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now_ms.saturating_sub(window.started_ms);
        if !(0..self.window_ms).contains(&elapsed) {
            window.started_ms = now_ms;
            window.logged = 0;
        }
        if window.logged < self.limit {
            window.logged += 1;
            Some(std::mem::take(&mut window.suppressed))
        } else {
            window.suppressed += 1;
            None
        }
    }

    /// Every event counted since the process started, logged or not (for a metric).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_the_first_few_per_window_and_counts_the_rest() {
        let sampler = LogSampler::new(3, 60_000);
        let admitted: Vec<Option<u64>> = (0..10_000).map(|i| sampler.admit(1_000 + i)).collect();
        assert_eq!(admitted.iter().flatten().count(), 3);
        assert_eq!(&admitted[..4], [Some(0), Some(0), Some(0), None]);
        assert_eq!(sampler.total(), 10_000);

        // The next window's first line says how many went unlogged.
        assert_eq!(sampler.admit(61_000), Some(9_997));
        assert_eq!(sampler.admit(61_001), Some(0));
        assert_eq!(sampler.admit(61_002), Some(0));
        assert_eq!(sampler.admit(61_003), None);
        assert_eq!(sampler.total(), 10_004);
    }

    #[test]
    fn a_clock_that_steps_back_starts_a_new_window() {
        let sampler = LogSampler::new(1, 60_000);
        assert_eq!(sampler.admit(100_000), Some(0));
        assert_eq!(sampler.admit(100_001), None);
        assert_eq!(sampler.admit(50_000), Some(1));
    }
}
