//! Figures from raw samples: per-connection latency percentiles and CDF, deliveries over time,
//! and the CPU time and peak memory of this process (and of moto, a separate process).

use std::fs;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Linux reports CPU times in clock ticks of 1/100 s (`getconf CLK_TCK` on every x86_64 and
/// aarch64 kernel); reading `sysconf` would take `libc` and `unsafe`, which the workspace forbids.
const TICKS_PER_SECOND: f64 = 100.0;

/// Per-connection latency percentiles, in milliseconds (nearest-rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Percentiles of `sorted` (ascending); `None` when empty.
pub fn percentiles(sorted: &[Duration]) -> Option<Percentiles> {
    let max = *sorted.last()?;
    let rank = |p: f64| {
        // Nearest rank: the smallest value with at least p of the samples at or below it.
        let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        millis(sorted[index])
    };
    Some(Percentiles {
        p50_ms: rank(0.50),
        p90_ms: rank(0.90),
        p99_ms: rank(0.99),
        max_ms: millis(max),
    })
}

pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The latency CDF of `sorted` (ascending) as at most `points` (ms, fraction) pairs: enough to
/// draw it and small enough for the JSON file.
pub fn cdf(sorted: &[Duration], points: usize) -> Vec<(f64, f64)> {
    let n = sorted.len();
    if n == 0 || points == 0 {
        return Vec::new();
    }
    let step = n.div_ceil(points).max(1);
    let mut out: Vec<(f64, f64)> = (step - 1..n)
        .step_by(step)
        .map(|i| (millis(sorted[i]), (i + 1) as f64 / n as f64))
        .collect();
    if out.last().is_none_or(|(_, f)| *f < 1.0) {
        out.push((millis(sorted[n - 1]), 1.0));
    }
    out
}

/// Deliveries counted in consecutive buckets from the scenario's start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RateSeries {
    pub bucket_ms: u64,
    /// First deliveries in each bucket.
    pub counts: Vec<u64>,
}

impl RateSeries {
    /// Buckets `offsets` (time from the start to each delivery) by `bucket`.
    pub fn from_offsets(offsets: &[Duration], bucket: Duration) -> Self {
        let bucket_ns = bucket.as_nanos().max(1);
        let mut counts = Vec::new();
        for offset in offsets {
            let index = usize::try_from(offset.as_nanos() / bucket_ns).unwrap_or(usize::MAX);
            if index >= counts.len() {
                counts.resize(index + 1, 0);
            }
            counts[index] += 1;
        }
        Self {
            bucket_ms: u64::try_from(bucket.as_millis()).unwrap_or(u64::MAX),
            counts,
        }
    }

    /// The same deliveries in buckets `factor` times wider (for a readable chart).
    pub fn coarsen(&self, factor: usize) -> Self {
        let factor = factor.max(1);
        Self {
            bucket_ms: self.bucket_ms * factor as u64,
            counts: self.counts.chunks(factor).map(|c| c.iter().sum()).collect(),
        }
    }

    /// (seconds since the start at the bucket's middle, deliveries per second in it).
    pub fn rates(&self) -> Vec<(f64, f64)> {
        let width = self.bucket_ms as f64 / 1000.0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &n)| ((i as f64 + 0.5) * width, n as f64 / width))
            .collect()
    }

    /// The highest rate over any whole second (a sliding window of buckets).
    pub fn peak_per_second(&self) -> f64 {
        let per_second = (1000 / self.bucket_ms.max(1)).max(1) as usize;
        let window = per_second.min(self.counts.len().max(1));
        self.counts
            .windows(window)
            .map(|w| w.iter().sum::<u64>())
            .max()
            .unwrap_or(0) as f64
            * (per_second as f64 / window as f64)
    }
}

/// What one connection received: its number of messages and the first one's arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub messages: u64,
    pub first: Option<Instant>,
}

/// Deliveries of one broadcast over its expected recipients.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub expected: usize,
    pub reached: usize,
    /// Expected recipients that received nothing.
    pub lost: usize,
    /// Recipients that received more messages than the broadcast has parts.
    pub duplicated: usize,
    /// First-delivery latencies from the start, ascending.
    pub latencies: Vec<Duration>,
}

impl Outcome {
    /// `received` holds one entry per expected recipient.
    pub fn of(start: Instant, parts: u64, received: impl IntoIterator<Item = Received>) -> Self {
        let mut expected = 0;
        let mut duplicated = 0;
        let mut latencies = Vec::new();
        for r in received {
            expected += 1;
            if r.messages > parts {
                duplicated += 1;
            }
            if let Some(first) = r.first.filter(|_| r.messages > 0) {
                latencies.push(first.saturating_duration_since(start));
            }
        }
        latencies.sort_unstable();
        Self {
            expected,
            reached: latencies.len(),
            lost: expected - latencies.len(),
            duplicated,
            latencies,
        }
    }

    /// From the start to the last recipient's first delivery.
    pub fn last(&self) -> Option<Duration> {
        self.latencies.last().copied()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no {field}")]
    Parse { path: String, field: &'static str },
}

fn read(path: &str) -> Result<String, UsageError> {
    fs::read_to_string(path).map_err(|source| UsageError::Read {
        path: path.to_owned(),
        source,
    })
}

/// utime + stime, in ticks, from the text of `/proc/PID/stat`. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14 and stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds used so far by `pid` (this process when `None`), all threads included.
pub fn cpu_seconds(pid: Option<u32>) -> Result<f64, UsageError> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let ticks = parse_stat_ticks(&read(&path)?).ok_or(UsageError::Parse {
        path,
        field: "utime/stime",
    })?;
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// A `kB` field of `/proc/self/status` (`VmHWM`, `VmRSS`), in KiB.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// A memory figure of this process (`VmHWM`: peak, `VmRSS`: now), in MiB.
pub fn rss_mib(field: &'static str) -> Result<f64, UsageError> {
    let path = "/proc/self/status";
    let kib = parse_status_kib(&read(path)?, field).ok_or(UsageError::Parse {
        path: path.to_owned(),
        field,
    })?;
    Ok(kib as f64 / 1024.0)
}

/// Resets VmHWM to the current RSS, so that each scenario's peak is its own. Returns false
/// where the kernel refuses (then the peak is the process's so far).
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Busy CPU seconds of the whole machine (every core, every process) from the text of
/// `/proc/stat`: its first line's jiffies except idle and iowait.
pub fn parse_machine_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let total: u64 = fields.iter().take(8).sum();
    Some(total - fields.get(3)? - fields.get(4).copied().unwrap_or(0))
}

pub fn machine_busy_seconds() -> Result<f64, UsageError> {
    let path = "/proc/stat";
    let ticks = parse_machine_busy_ticks(&read(path)?).ok_or(UsageError::Parse {
        path: path.to_owned(),
        field: "cpu",
    })?;
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// CPU and memory of one scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    pub wall_s: f64,
    /// This process: the emulator, the pollers, the functions and the clients.
    pub cpu_s: f64,
    /// `cpu_s / wall_s`: cores kept busy (the machine has `available_parallelism` of them).
    pub cores: f64,
    /// Resident memory when the scenario started (what earlier ones left in the allocator).
    pub start_rss_mib: f64,
    /// Peak resident memory during the scenario (or since the start, see `peak_is_own`).
    pub peak_rss_mib: f64,
    pub peak_is_own: bool,
    /// moto's process, when its pid is known.
    pub moto_cpu_s: Option<f64>,
    pub moto_cores: Option<f64>,
    /// Cores kept busy by everything else on the machine (e.g. a compiler): what this run
    /// could not use.
    pub other_cores: f64,
}

impl Usage {
    /// CPU seconds per 100,000 deliveries.
    pub fn cpu_s_per_100k(&self, deliveries: u64) -> Option<f64> {
        (deliveries > 0).then(|| self.cpu_s * 100_000.0 / deliveries as f64)
    }
}

/// Started before a scenario, finished after it.
#[derive(Debug)]
pub struct UsageMeter {
    started: Instant,
    cpu: f64,
    machine: f64,
    rss: f64,
    moto_pid: Option<u32>,
    moto_cpu: Option<f64>,
    peak_is_own: bool,
}

impl UsageMeter {
    pub fn start(moto_pid: Option<u32>) -> Result<Self, UsageError> {
        let peak_is_own = reset_peak_rss();
        Ok(Self {
            started: Instant::now(),
            cpu: cpu_seconds(None)?,
            machine: machine_busy_seconds()?,
            rss: rss_mib("VmRSS")?,
            moto_pid,
            moto_cpu: moto_pid.and_then(|pid| cpu_seconds(Some(pid)).ok()),
            peak_is_own,
        })
    }

    pub fn finish(&self) -> Result<Usage, UsageError> {
        let wall_s = self.started.elapsed().as_secs_f64();
        let cpu_s = cpu_seconds(None)? - self.cpu;
        let moto_cpu_s = match (self.moto_pid, self.moto_cpu) {
            (Some(pid), Some(before)) => cpu_seconds(Some(pid)).ok().map(|now| now - before),
            _ => None,
        };
        let machine_s = machine_busy_seconds()? - self.machine;
        let per_wall = |cpu: f64| if wall_s > 0.0 { cpu / wall_s } else { 0.0 };
        Ok(Usage {
            wall_s,
            cpu_s,
            cores: per_wall(cpu_s),
            start_rss_mib: self.rss,
            peak_rss_mib: rss_mib("VmHWM")?,
            peak_is_own: self.peak_is_own,
            moto_cpu_s,
            moto_cores: moto_cpu_s.map(per_wall),
            other_cores: per_wall((machine_s - cpu_s - moto_cpu_s.unwrap_or(0.0)).max(0.0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        let p = percentiles(&sorted).unwrap();
        assert_eq!(
            (p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        let one = percentiles(&[ms(7)]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms, one.max_ms), (7.0, 7.0, 7.0));
        assert_eq!(percentiles(&[]), None);
    }

    #[test]
    fn the_cdf_ends_at_one_and_is_bounded() {
        let sorted: Vec<Duration> = (1..=1000).map(ms).collect();
        let cdf = cdf(&sorted, 50);
        assert!(cdf.len() <= 51);
        assert_eq!(*cdf.last().unwrap(), (1000.0, 1.0));
        assert!(cdf.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
        assert!(super::cdf(&[], 10).is_empty());
    }

    #[test]
    fn the_rate_series_buckets_deliveries_and_converts_to_per_second() {
        let offsets = [ms(10), ms(50), ms(120), ms(350), ms(399)];
        let series = RateSeries::from_offsets(&offsets, ms(100));
        assert_eq!(series.counts, [2, 1, 0, 2]);
        assert_eq!(series.rates()[0], (0.05, 20.0));
        assert_eq!(series.coarsen(2).counts, [3, 2]);
        assert_eq!(series.coarsen(2).bucket_ms, 200);
        assert_eq!(series.peak_per_second(), 5.0 * 10.0 / 4.0);
        let steady = RateSeries::from_offsets(&(0..3000).map(ms).collect::<Vec<_>>(), ms(100));
        assert_eq!(steady.peak_per_second(), 1000.0);
        assert_eq!(
            RateSeries::from_offsets(&[], ms(100)).peak_per_second(),
            0.0
        );
    }

    #[test]
    fn outcome_counts_lost_and_duplicated() {
        let start = Instant::now();
        let at = |v| Some(start + ms(v));
        let outcome = Outcome::of(
            start,
            1,
            [
                Received {
                    messages: 1,
                    first: at(30),
                },
                Received {
                    messages: 2,
                    first: at(10),
                },
                Received {
                    messages: 0,
                    first: None,
                },
            ],
        );
        assert_eq!(
            (
                outcome.expected,
                outcome.reached,
                outcome.lost,
                outcome.duplicated
            ),
            (3, 2, 1, 1)
        );
        assert_eq!(outcome.latencies, [ms(10), ms(30)]);
        assert_eq!(outcome.last(), Some(ms(30)));
    }

    #[test]
    fn proc_files_parse() {
        let stat = "1234 (tokio (worker) x) S 1 2 3 4 5 6 7 8 9 10 250 31 0 0 20 0 9 0";
        assert_eq!(parse_stat_ticks(stat), Some(281));
        let status = "Name:\tlocal\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(204_800));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(102_400));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        let machine = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\n";
        assert_eq!(parse_machine_busy_ticks(machine), Some(161));
        assert!(machine_busy_seconds().unwrap() > 0.0);
        assert!(rss_mib("VmHWM").unwrap() >= rss_mib("VmRSS").unwrap() * 0.5);
    }

    #[test]
    fn cpu_seconds_grow_with_work_and_read_the_same_by_pid() {
        let before = cpu_seconds(None).unwrap();
        // Reading /proc is itself CPU work: spin on it until a tick (10 ms) is counted.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = before;
        while after <= before && Instant::now() < deadline {
            after = cpu_seconds(None).unwrap();
        }
        assert!(after > before, "no CPU time counted in 10 s: {before} s");
        let by_pid = cpu_seconds(Some(std::process::id())).unwrap();
        assert!(by_pid >= after, "{by_pid} s by pid, {after} s by self");
    }
}
