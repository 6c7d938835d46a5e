//! Knobs on the management API, all off by default: added latency, injected faults and the
//! throttle. They can be changed while the gateway runs, so a benchmark can switch between runs.

use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rand::Rng as _;

use super::settings::FaultSettings;
use super::throttle::{Throttle, TokenBucket};

/// Latency added before each management API call is answered: `fixed` plus a uniformly
/// distributed `0..=jitter`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Latency {
    pub fixed: Duration,
    pub jitter: Duration,
}

impl Latency {
    pub fn new(fixed: Duration, jitter: Duration) -> Self {
        Self { fixed, jitter }
    }

    fn is_zero(&self) -> bool {
        self.fixed.is_zero() && self.jitter.is_zero()
    }

    fn sample(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.fixed;
        }
        let jitter_ns = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        self.fixed + Duration::from_nanos(rand::rng().random_range(0..=jitter_ns))
    }
}

/// Probabilities (0.0..=1.0) of injected failures on `POST @connections/{id}`, drawn
/// independently per call: the failures the fan-out meets in production.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Faults {
    /// 410 GoneException for an id that is in fact connected (a client that vanished
    /// between the registry read and the post).
    pub gone_rate: f64,
    /// 429 LimitExceededException regardless of the throttle.
    pub throttle_rate: f64,
    /// 500 InternalServerErrorException.
    pub error_rate: f64,
}

impl Faults {
    pub(crate) fn is_valid(&self) -> bool {
        [self.gone_rate, self.throttle_rate, self.error_rate]
            .iter()
            .all(|p| (0.0..=1.0).contains(p))
    }

    fn is_off(&self) -> bool {
        self.gone_rate == 0.0 && self.throttle_rate == 0.0 && self.error_rate == 0.0
    }
}

/// A fault drawn for one call, in the order API Gateway would meet them: its own failure
/// first, then throttling, then the connection being gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InjectedFault {
    Error,
    Throttle,
    Gone,
}

/// The live knob values, read on every management call. Uncontended std locks cost tens of
/// nanoseconds, far below the cost of the HTTP exchange around them.
#[derive(Debug)]
pub(crate) struct Knobs {
    latency: RwLock<Latency>,
    faults: RwLock<Faults>,
    bucket: Mutex<Option<TokenBucket>>,
}

impl Knobs {
    pub(crate) fn new(latency: Latency, faults: Faults, throttle: Option<Throttle>) -> Self {
        Self {
            latency: RwLock::new(latency),
            faults: RwLock::new(faults),
            bucket: Mutex::new(throttle.map(|t| TokenBucket::new(t, Instant::now()))),
        }
    }

    pub(crate) fn set_latency(&self, latency: Latency) {
        *self.latency.write().unwrap_or_else(PoisonError::into_inner) = latency;
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.faults.write().unwrap_or_else(PoisonError::into_inner) = faults;
    }

    /// Replaces the throttle; a new bucket starts full.
    pub(crate) fn set_throttle(&self, throttle: Option<Throttle>) {
        *self.bucket.lock().unwrap_or_else(PoisonError::into_inner) =
            throttle.map(|t| TokenBucket::new(t, Instant::now()));
    }

    /// The live values, as `/_admin/faults` shows them.
    pub(crate) fn settings(&self) -> FaultSettings {
        let throttle = self
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(TokenBucket::settings);
        FaultSettings::new(
            throttle,
            *self.latency.read().unwrap_or_else(PoisonError::into_inner),
            *self.faults.read().unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Sets every knob to `settings`; an unchanged throttle keeps its bucket (and tokens).
    pub(crate) fn apply(&self, settings: &FaultSettings) {
        let throttle = settings.throttle();
        if self.settings().throttle() != throttle {
            self.set_throttle(throttle);
        }
        self.set_latency(settings.latency());
        self.set_faults(settings.faults());
    }

    /// Sleeps for the configured latency without blocking the runtime.
    pub(crate) async fn delay(&self) {
        let latency = *self.latency.read().unwrap_or_else(PoisonError::into_inner);
        if !latency.is_zero() {
            tokio::time::sleep(latency.sample()).await;
        }
    }

    /// Whether the throttle lets this call through (always, when it is off).
    pub(crate) fn admit(&self) -> bool {
        match self
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(bucket) => bucket.try_acquire(Instant::now()),
            None => true,
        }
    }

    /// Draws the injected fault for one post, if any. `Gone` is only returned when
    /// `connected`: an unknown id is gone anyway.
    pub(crate) fn draw(&self, connected: bool) -> Option<InjectedFault> {
        let faults = *self.faults.read().unwrap_or_else(PoisonError::into_inner);
        if faults.is_off() {
            return None;
        }
        let mut rng = rand::rng();
        if rng.random::<f64>() < faults.error_rate {
            Some(InjectedFault::Error)
        } else if rng.random::<f64>() < faults.throttle_rate {
            Some(InjectedFault::Throttle)
        } else if connected && rng.random::<f64>() < faults.gone_rate {
            Some(InjectedFault::Gone)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_sample_stays_in_range() {
        let latency = Latency::new(Duration::from_millis(5), Duration::from_millis(10));
        for _ in 0..1000 {
            let d = latency.sample();
            assert!(d >= Duration::from_millis(5) && d <= Duration::from_millis(15));
        }
    }

    #[test]
    fn certain_faults_always_fire_and_off_never_does() {
        let knobs = Knobs::new(Latency::default(), Faults::default(), None);
        assert!((0..1000).all(|_| knobs.draw(true).is_none()));
        knobs.set_faults(Faults {
            gone_rate: 1.0,
            ..Faults::default()
        });
        assert_eq!(knobs.draw(true), Some(InjectedFault::Gone));
        assert_eq!(knobs.draw(false), None);
        knobs.set_faults(Faults {
            gone_rate: 1.0,
            throttle_rate: 1.0,
            error_rate: 1.0,
        });
        assert_eq!(knobs.draw(true), Some(InjectedFault::Error));
    }

    #[test]
    fn fault_rates_are_roughly_honoured() {
        let knobs = Knobs::new(
            Latency::default(),
            Faults {
                throttle_rate: 0.25,
                ..Faults::default()
            },
            None,
        );
        let hits = (0..20_000).filter(|_| knobs.draw(true).is_some()).count();
        assert!((4_000..6_000).contains(&hits), "{hits}");
    }

    #[test]
    fn throttle_can_be_switched_at_runtime() {
        let knobs = Knobs::new(Latency::default(), Faults::default(), None);
        assert!((0..100).all(|_| knobs.admit()));
        knobs.set_throttle(Some(Throttle::new(0.001, 3)));
        assert_eq!((0..100).filter(|_| knobs.admit()).count(), 3);
        knobs.set_throttle(None);
        assert!(knobs.admit());
    }
}
