//! Figures of the sustained scenario from its raw samples, without I/O: the staleness of every
//! write at every sampled client, its percentiles overall, per third and per second of the
//! writer, the order in which values arrived, the busiest second of posting, and the rounds
//! seen in the state table.
//!
//! Times are offsets from the writer's start (the scenario's origin).

use std::collections::BTreeMap;
use std::time::Duration;

use rounds::RoundState;
use serde::Serialize;

use super::measure::percentiles;

/// One write of the writer: the entity, its value (values grow per entity), and when its
/// PutItem returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    pub entity: usize,
    pub value: u64,
    pub at: Duration,
}

/// What one client received of one entity, in arrival order: (arrival, value).
pub type Arrivals = Vec<(Duration, u64)>;

/// The staleness of one write at one client: from the write to the moment the client held its
/// value or a newer one; for a write not reached when the run stopped, the run's end (a lower
/// bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub written: Duration,
    pub staleness: Duration,
    pub reached: bool,
}

/// The moments a client's newest value of an entity rose, with that value.
fn holdings(arrivals: &[(Duration, u64)]) -> Vec<(Duration, u64)> {
    let mut held: Vec<(Duration, u64)> = Vec::new();
    for &(at, value) in arrivals {
        if held.last().is_none_or(|&(_, newest)| value > newest) {
            held.push((at, value));
        }
    }
    held
}

/// Every (client, write) pair's staleness; `clients[c][e]` are client c's arrivals of entity e.
pub fn samples(writes: &[Write], clients: &[Vec<Arrivals>], end: Duration) -> Vec<Sample> {
    let mut out = Vec::with_capacity(writes.len() * clients.len());
    for client in clients {
        let held: Vec<Vec<(Duration, u64)>> = client.iter().map(|a| holdings(a)).collect();
        for write in writes {
            let held = held.get(write.entity).map_or(&[][..], Vec::as_slice);
            let first = held.partition_point(|&(_, newest)| newest < write.value);
            out.push(match held.get(first) {
                Some(&(at, _)) => Sample {
                    written: write.at,
                    staleness: at.saturating_sub(write.at),
                    reached: true,
                },
                None => Sample {
                    written: write.at,
                    staleness: end.saturating_sub(write.at),
                    reached: false,
                },
            });
        }
    }
    out
}

/// Staleness of the writes of one second of the writer, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SecondStaleness {
    /// The second's start, s from the writer's start.
    pub second: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Staleness over every (client, write) pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Staleness {
    pub samples: usize,
    /// Pairs whose client held neither the value nor a newer one when the run stopped:
    /// counted at the run's end, so the percentiles are lower bounds when this is not 0.
    pub unreached: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// p99 of the writes of each third of the writer's run.
    pub thirds_p99_ms: [f64; 3],
    pub by_second: Vec<SecondStaleness>,
}

impl Staleness {
    pub fn of(samples: &[Sample], writer: Duration) -> Self {
        let sorted = |filter: &dyn Fn(&Sample) -> bool| {
            let mut v: Vec<Duration> = samples
                .iter()
                .filter(|s| filter(s))
                .map(|s| s.staleness)
                .collect();
            v.sort_unstable();
            v
        };
        let all = percentiles(&sorted(&|_| true)).unwrap_or_default();
        let third = |s: &Sample| {
            let fraction = s.written.as_secs_f64() / writer.as_secs_f64().max(1e-9);
            ((fraction * 3.0) as usize).min(2)
        };
        let thirds_p99_ms =
            [0, 1, 2].map(|i| percentiles(&sorted(&|s| third(s) == i)).map_or(0.0, |p| p.p99_ms));
        let mut seconds: BTreeMap<u64, Vec<Duration>> = BTreeMap::new();
        for s in samples {
            seconds
                .entry(s.written.as_secs())
                .or_default()
                .push(s.staleness);
        }
        let by_second = seconds
            .into_iter()
            .filter_map(|(second, mut v)| {
                v.sort_unstable();
                let p = percentiles(&v)?;
                Some(SecondStaleness {
                    second,
                    p50_ms: p.p50_ms,
                    p99_ms: p.p99_ms,
                    max_ms: p.max_ms,
                })
            })
            .collect();
        Self {
            samples: samples.len(),
            unreached: samples.iter().filter(|s| !s.reached).count(),
            p50_ms: all.p50_ms,
            p99_ms: all.p99_ms,
            max_ms: all.max_ms,
            thirds_p99_ms,
            by_second,
        }
    }
}

/// The staleness clients see at one moment: over every (client, entity) pair, how long a
/// value newer than the one the client holds has been written (0 when it holds the latest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Age {
    /// s from the writer's start.
    pub at_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// [`Age`] every `step` from `step` to `until`. Unlike the staleness of each write, it needs no
/// write to have been received, so it shows a client falling behind while it falls behind.
pub fn ages(
    writes: &[Write],
    clients: &[Vec<Arrivals>],
    until: Duration,
    step: Duration,
) -> Vec<Age> {
    let entities = writes.iter().map(|w| w.entity + 1).max().unwrap_or(0);
    // Each entity's writes by value.
    let mut by_entity: Vec<Vec<(u64, Duration)>> = vec![Vec::new(); entities];
    for w in writes {
        by_entity[w.entity].push((w.value, w.at));
    }
    for writes in &mut by_entity {
        writes.sort_unstable();
    }
    let held: Vec<Vec<Vec<(Duration, u64)>>> = clients
        .iter()
        .map(|c| c.iter().map(|a| holdings(a)).collect())
        .collect();
    let mut out = Vec::new();
    let mut t = step;
    while t <= until && !step.is_zero() {
        let mut pairs: Vec<Duration> = Vec::with_capacity(held.len() * entities);
        for client in &held {
            for (entity, writes) in by_entity.iter().enumerate() {
                let holdings = client.get(entity).map_or(&[][..], Vec::as_slice);
                let count = holdings.partition_point(|&(at, _)| at <= t);
                let value = count.checked_sub(1).map_or(0, |i| holdings[i].1);
                let next = writes.partition_point(|&(v, _)| v <= value);
                pairs.push(match writes.get(next) {
                    Some(&(_, at)) if at <= t => t - at,
                    _ => Duration::ZERO,
                });
            }
        }
        pairs.sort_unstable();
        if let Some(p) = percentiles(&pairs) {
            out.push(Age {
                at_s: t.as_secs_f64(),
                p50_ms: p.p50_ms,
                p99_ms: p.p99_ms,
                max_ms: p.max_ms,
            });
        }
        t += step;
    }
    out
}

/// The highest p99 of the ages in each third of `writer` (0 for a third without samples).
pub fn age_thirds(ages: &[Age], writer: Duration) -> [f64; 3] {
    let writer = writer.as_secs_f64().max(1e-9);
    let mut thirds = [0.0f64; 3];
    for a in ages.iter().filter(|a| a.at_s <= writer) {
        let third = ((a.at_s / writer * 3.0) as usize).min(2);
        thirds[third] = thirds[third].max(a.p99_ms);
    }
    thirds
}

/// In which order the values of each entity reached the clients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Order {
    /// (client, entity) pairs.
    pub pairs: u64,
    /// Arrivals of a value older than one the client already had (a requeued broadcast
    /// arriving after a newer one): a client applying messages in arrival order goes back.
    pub backwards: u64,
    /// Pairs whose last arrival is not the latest value written.
    pub last_not_latest: u64,
    /// Pairs that never received the latest value.
    pub never_latest: u64,
}

/// `latest[e]`: the last value written of entity e.
pub fn order(clients: &[Vec<Arrivals>], latest: &[u64]) -> Order {
    let mut order = Order::default();
    for client in clients {
        for (entity, &latest) in latest.iter().enumerate() {
            let arrivals = client.get(entity).map_or(&[][..], Vec::as_slice);
            order.pairs += 1;
            let mut newest = 0;
            for &(_, value) in arrivals {
                if value < newest {
                    order.backwards += 1;
                }
                newest = newest.max(value);
            }
            if arrivals.last().is_none_or(|&(_, v)| v != latest) {
                order.last_not_latest += 1;
            }
            if newest < latest {
                order.never_latest += 1;
            }
        }
    }
    order
}

/// The busiest second of a cumulative count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Busiest {
    /// The count's increase over the window, per second.
    pub per_second: f64,
    /// The window: at least a second, from one sample to the first at least a second later.
    pub from: Duration,
    pub to: Duration,
}

/// The highest rate of a cumulative count over any window of at least a second, per second:
/// `samples` are (time, count so far), in time order.
pub fn busiest_second(samples: &[(Duration, u64)]) -> Busiest {
    let mut best = Busiest::default();
    let mut j = 0;
    for (i, &(t0, n0)) in samples.iter().enumerate() {
        j = j.max(i);
        while j < samples.len() && samples[j].0 < t0 + Duration::from_secs(1) {
            j += 1;
        }
        let Some(&(t1, n1)) = samples.get(j) else {
            break;
        };
        let rate = n1.saturating_sub(n0) as f64 / (t1 - t0).as_secs_f64().max(1e-9);
        if rate > best.per_second {
            best = Busiest {
                per_second: rate,
                from: t0,
                to: t1,
            };
        }
    }
    best
}

/// The count's increase between consecutive samples from `from` to `to`: (s, increase).
pub fn increases(samples: &[(Duration, u64)], from: Duration, to: Duration) -> Vec<(f64, u64)> {
    samples
        .windows(2)
        .filter(|w| w[0].0 >= from && w[1].0 <= to)
        .map(|w| (w[1].0.as_secs_f64(), w[1].1.saturating_sub(w[0].1)))
        .collect()
}

/// The count's increase in each whole second from the origin: (second's middle, per second).
pub fn per_second(samples: &[(Duration, u64)]) -> Vec<(f64, f64)> {
    let mut counts: Vec<u64> = Vec::new();
    for pair in samples.windows(2) {
        let (t0, n0) = pair[0];
        let second = usize::try_from(t0.as_secs()).unwrap_or(usize::MAX);
        if second >= counts.len() {
            counts.resize(second + 1, 0);
        }
        counts[second] += pair[1].1.saturating_sub(n0);
    }
    counts
        .iter()
        .enumerate()
        .map(|(i, &n)| (i as f64 + 0.5, n as f64))
        .collect()
}

/// One round as the state table showed it (sampled, so its end and the end of its paging
/// are known to the sampling interval).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundSeen {
    pub round_id: String,
    pub entities: u64,
    /// s from the origin.
    pub started_s: f64,
    /// When its jobs were all enqueued (the registry paged): first seen so.
    pub enqueued_s: Option<f64>,
    /// When it was first seen ended (or replaced).
    pub ended_s: Option<f64>,
}

impl RoundSeen {
    pub fn duration_s(&self) -> Option<f64> {
        self.ended_s.map(|e| e - self.started_s)
    }

    pub fn paging_s(&self) -> Option<f64> {
        self.enqueued_s.map(|e| e - self.started_s)
    }
}

/// The rounds in a series of samples of the state table's round item; `origin_ms` is the
/// origin on the wall clock (rounds carry epoch ms).
pub fn rounds_seen(samples: &[(Duration, Option<RoundState>)], origin_ms: i64) -> Vec<RoundSeen> {
    let mut seen: Vec<RoundSeen> = Vec::new();
    for (at, state) in samples {
        let at = at.as_secs_f64();
        let Some(state) = state else { continue };
        if let Some(last) = seen.last_mut()
            && last.round_id != state.round_id
            && last.ended_s.is_none()
        {
            last.ended_s = Some(at);
        }
        if seen.last().is_none_or(|r| r.round_id != state.round_id) {
            seen.push(RoundSeen {
                round_id: state.round_id.clone(),
                entities: state.entities,
                started_s: (state.started_at - origin_ms) as f64 / 1000.0,
                enqueued_s: None,
                ended_s: None,
            });
        }
        let round = seen.last_mut().expect("pushed");
        round.entities = state.entities;
        if state.enqueued && round.enqueued_s.is_none() {
            round.enqueued_s = Some(at);
        }
        if !state.in_flight && round.ended_s.is_none() {
            round.ended_s = Some(at);
        }
    }
    seen
}

/// The rounds' durations and paging times, over the rounds seen from start to end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RoundTimes {
    pub rounds: usize,
    pub mean_s: f64,
    pub max_s: f64,
    /// From the round's start until all its jobs were enqueued: paging the registry.
    pub mean_paging_s: f64,
    pub max_paging_s: f64,
}

impl RoundTimes {
    pub fn of(rounds: &[RoundSeen]) -> Option<Self> {
        let whole: Vec<&RoundSeen> = rounds
            .iter()
            .filter(|r| r.started_s >= 0.0 && r.ended_s.is_some())
            .collect();
        if whole.is_empty() {
            return None;
        }
        let durations: Vec<f64> = whole.iter().filter_map(|r| r.duration_s()).collect();
        let paging: Vec<f64> = whole.iter().filter_map(|r| r.paging_s()).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        Some(Self {
            rounds: whole.len(),
            mean_s: mean(&durations),
            max_s: max(&durations),
            mean_paging_s: mean(&paging),
            max_paging_s: max(&paging),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }

    fn write(entity: usize, value: u64, at: f64) -> Write {
        Write {
            entity,
            value,
            at: s(at),
        }
    }

    #[test]
    fn staleness_runs_to_the_first_arrival_of_the_value_or_a_newer_one() {
        let writes = [
            write(0, 1, 0.0),
            write(0, 2, 1.0),
            write(0, 3, 2.0),
            write(1, 1, 0.0),
        ];
        // Entity 0: 2 arrives at 3 s (covering 1 and 2), 1 late at 4 s, 3 never.
        let client = vec![vec![(s(3.0), 2), (s(4.0), 1)], vec![(s(0.5), 1)]];
        let got = samples(&writes, &[client], s(10.0));
        let staleness: Vec<(f64, bool)> = got
            .iter()
            .map(|x| (x.staleness.as_secs_f64(), x.reached))
            .collect();
        assert_eq!(
            staleness,
            [(3.0, true), (2.0, true), (8.0, false), (0.5, true)]
        );
    }

    #[test]
    fn the_summary_splits_the_writer_into_thirds_and_seconds() {
        // Staleness grows with the write time: 1 s, 2 s, ... 9 s for writes at 0..9 s.
        let samples: Vec<Sample> = (0..9)
            .map(|i| Sample {
                written: s(f64::from(i)),
                staleness: s(f64::from(i + 1)),
                reached: i < 8,
            })
            .collect();
        let summary = Staleness::of(&samples, s(9.0));
        assert_eq!(summary.samples, 9);
        assert_eq!(summary.unreached, 1);
        assert_eq!(summary.max_ms, 9_000.0);
        assert_eq!(summary.thirds_p99_ms, [3_000.0, 6_000.0, 9_000.0]);
        assert_eq!(summary.by_second.len(), 9);
        assert_eq!(summary.by_second[4].p99_ms, 5_000.0);
    }

    #[test]
    fn the_age_grows_while_a_newer_value_waits_and_drops_when_it_arrives() {
        // One entity written at 0, 1, 2 s; the client gets 1 at 0.5 s, 3 at 3.5 s.
        let writes = [write(0, 1, 0.0), write(0, 2, 1.0), write(0, 3, 2.0)];
        let clients = vec![vec![vec![(s(0.5), 1), (s(3.5), 3)]]];
        let got = ages(&writes, &clients, s(4.0), s(1.0));
        let p99: Vec<f64> = got.iter().map(|a| a.p99_ms).collect();
        // At 1 s, 2 is written and waiting: 0 s; at 2 s: 1 s; at 3 s: 2 s; at 4 s: none.
        assert_eq!(p99, [0.0, 1_000.0, 2_000.0, 0.0]);
        assert_eq!(age_thirds(&got, s(3.0)), [0.0, 0.0, 2_000.0]);
    }

    #[test]
    fn order_counts_values_going_back_and_pairs_not_ending_at_the_latest() {
        let clients = vec![
            vec![
                vec![(s(1.0), 1), (s(2.0), 3), (s(3.0), 2)],
                vec![(s(1.0), 5)],
            ],
            vec![vec![(s(1.0), 3)], vec![]],
        ];
        let order = order(&clients, &[3, 5]);
        assert_eq!(
            order,
            Order {
                pairs: 4,
                backwards: 1,
                last_not_latest: 2,
                never_latest: 1,
            }
        );
    }

    #[test]
    fn the_busiest_second_is_the_highest_rate_over_a_second() {
        // 100 per 100 ms, with one second at 200 per 100 ms.
        let mut n = 0;
        let samples: Vec<(Duration, u64)> = (0..50)
            .map(|i| {
                let at = Duration::from_millis(i * 100);
                let sample = (at, n);
                n += if (20..30).contains(&i) { 200 } else { 100 };
                sample
            })
            .collect();
        let busiest = busiest_second(&samples);
        assert_eq!(busiest.per_second, 2_000.0);
        assert_eq!(
            (busiest.from, busiest.to),
            (Duration::from_millis(2_000), Duration::from_millis(3_000))
        );
        let rates = per_second(&samples);
        assert_eq!(rates[0], (0.5, 1_000.0));
        assert_eq!(rates[2], (2.5, 2_000.0));
        assert_eq!(
            busiest_second(&samples[..5]).per_second,
            0.0,
            "less than a second"
        );
        let around = increases(&samples, busiest.from, busiest.from + s(0.3));
        assert_eq!(
            around.iter().map(|a| a.1).collect::<Vec<_>>(),
            [200, 200, 200]
        );
    }

    #[test]
    fn rounds_are_read_from_samples_of_the_round_item() {
        let origin = 1_000_000;
        let state = |id: &str, started: i64, enqueued: bool, in_flight: bool| {
            Some(RoundState {
                round_id: id.into(),
                in_flight,
                started_at: origin + started,
                enqueued,
                entities: 50,
                ..RoundState::default()
            })
        };
        let samples = vec![
            (s(0.0), None),
            (s(1.0), state("r-1", 500, false, true)),
            (s(2.0), state("r-1", 500, true, true)),
            (s(3.0), state("r-1", 500, true, false)),
            (s(4.0), state("r-2", 3_500, false, true)),
            (s(5.0), state("r-3", 4_800, true, true)),
        ];
        let seen = rounds_seen(&samples, origin);
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].paging_s(), Some(1.5));
        assert_eq!(seen[0].duration_s(), Some(2.5));
        assert_eq!(seen[1].ended_s, Some(5.0), "replaced by r-3");
        assert_eq!(seen[2].ended_s, None);
        let times = RoundTimes::of(&seen).unwrap();
        assert_eq!(times.rounds, 2);
        assert_eq!(times.max_s, 2.5);
        assert_eq!(times.max_paging_s, 1.5);
    }
}
