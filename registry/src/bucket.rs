//! Write sharding of the GSI partition key.
//!
//! With one bucket every row has `connected = "true"`, as the seed wrote it. With N buckets a row
//! goes to `"true#k"`, k = stable hash of its connection id mod N, so that neither $connect
//! writes nor the fan-out Query hit one hot GSI partition (1,000 WCU / 3,000 RCU each).

use std::num::NonZeroU16;

use platform::hash::stable_hash;

/// The seed's partition key value.
pub const SEED_PARTITION: &str = "true";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buckets(NonZeroU16);

impl Buckets {
    pub const SEED: Self = Self(NonZeroU16::MIN);
    pub const MAX: u16 = 1000;

    /// `None` for 0 or more than [`Self::MAX`].
    pub fn new(count: u16) -> Option<Self> {
        NonZeroU16::new(count)
            .filter(|n| n.get() <= Self::MAX)
            .map(Self)
    }

    pub fn count(self) -> u16 {
        self.0.get()
    }

    /// The bucket a connection belongs to: stable across processes, releases and platforms.
    pub fn of(self, connection_id: &str) -> u16 {
        let bucket = stable_hash(connection_id.as_bytes()) % u64::from(self.count());
        u16::try_from(bucket).expect("bucket < count <= u16::MAX")
    }

    /// The `connected` attribute value for a connection.
    pub fn partition_key(self, connection_id: &str) -> String {
        self.key_of(self.of(connection_id))
    }

    /// Every partition key value the GSI holds live connections under.
    pub fn partition_keys(self) -> impl Iterator<Item = String> {
        (0..self.count()).map(move |b| self.key_of(b))
    }

    fn key_of(self, bucket: u16) -> String {
        if self.count() == 1 {
            SEED_PARTITION.to_owned()
        } else {
            format!("{SEED_PARTITION}#{bucket}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids shaped like API Gateway's ("L0SM9cOFvHcCIhw="), from a seeded generator.
    fn ids(n: usize) -> Vec<String> {
        use rand::{Rng, SeedableRng};
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        (0..n)
            .map(|_| {
                let mut id: String = (0..15)
                    .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                    .collect();
                id.push('=');
                id
            })
            .collect()
    }

    #[test]
    fn one_bucket_is_the_seed_value() {
        assert_eq!(Buckets::SEED.partition_key("abc="), "true");
        assert_eq!(Buckets::SEED.partition_keys().collect::<Vec<_>>(), ["true"]);
    }

    #[test]
    fn the_bucket_is_stable() {
        let b = Buckets::new(8).unwrap();
        assert_eq!(b.of("L0SM9cOFvHcCIhw="), b.of("L0SM9cOFvHcCIhw="));
        assert_eq!(b.partition_key("x"), format!("true#{}", b.of("x")));
    }

    #[test]
    fn keys_cover_every_bucket_once() {
        let keys: Vec<_> = Buckets::new(4).unwrap().partition_keys().collect();
        assert_eq!(keys, ["true#0", "true#1", "true#2", "true#3"]);
    }

    #[test]
    fn limits_are_enforced() {
        assert!(Buckets::new(0).is_none());
        assert!(Buckets::new(1001).is_none());
        assert_eq!(Buckets::new(1000).unwrap().count(), 1000);
    }

    #[test]
    fn a_hundred_thousand_ids_spread_within_a_few_percent() {
        let ids = ids(100_000);
        // Binomial noise alone is ~1.3% (one sigma) at 16 buckets; 5% leaves room for 3 sigma.
        for n in [2u16, 4, 8, 16] {
            let buckets = Buckets::new(n).unwrap();
            let mut counts = vec![0u32; usize::from(n)];
            for id in &ids {
                counts[usize::from(buckets.of(id))] += 1;
            }
            let mean = 100_000.0 / f64::from(n);
            for (bucket, count) in counts.iter().enumerate() {
                let deviation = (f64::from(*count) - mean).abs() / mean;
                assert!(
                    deviation < 0.05,
                    "{n} buckets: bucket {bucket} has {count}, mean {mean}"
                );
            }
        }
    }
}
