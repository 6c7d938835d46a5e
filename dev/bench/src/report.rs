//! What a run found and how it is shown: the terminal table, `bench.json` (every figure) and
//! `bench.svg` (deliveries over time and the latency CDF, ours against the seed's design).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use apigw::CountersSnapshot;
use serde::Serialize;

use super::Settings;
use super::fixture::Registration;
use super::measure::{Outcome, Percentiles, RateSeries, Usage, cdf, percentiles};
use super::svg::{self, Chart, PALETTE, Reference, Series};

/// Points kept of each latency CDF.
const CDF_POINTS: usize = 200;
/// Width of the chart's rate buckets: 100 ms ones are too noisy to read.
const CHART_BUCKET_MS: u64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    Ours,
    Seed,
}

/// What the gateway saw of the posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PostCounts {
    pub received: u64,
    pub delivered: u64,
    /// 429s: the throttle's, injected ones and full client buffers.
    pub throttled_429: u64,
    /// Injected 500s.
    pub errors_5xx: u64,
    pub gone_410: u64,
    /// Posts beyond one per connection and part: in-invocation retries, re-posts after a
    /// requeue, duplicates.
    pub retried: u64,
}

impl PostCounts {
    pub fn from_gateway(c: &CountersSnapshot, first_posts: u64) -> Self {
        Self {
            received: c.posts_received,
            delivered: c.posts_delivered,
            throttled_429: c.rejected_throttled + c.injected_throttle + c.rejected_buffer_full,
            errors_5xx: c.injected_error,
            gone_410: c.rejected_gone + c.injected_gone,
            retried: c.posts_received.saturating_sub(first_posts),
        }
    }
}

/// How a scenario is named and what its clock starts at.
#[derive(Debug, Clone)]
pub struct Meta {
    pub key: String,
    pub title: String,
    pub design: Design,
    pub measured_from: &'static str,
    pub setup_s: f64,
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub key: String,
    pub title: String,
    pub design: Design,
    /// What the clock starts at; it stops at the last connection's first delivery.
    pub measured_from: &'static str,
    /// Setup before the clock started (not timed): stack start, sockets connecting.
    pub setup_s: f64,
    pub connections: usize,
    pub parts: u64,
    pub elapsed_s: Option<f64>,
    /// N / R: the account throttle's bound.
    pub floor_s: f64,
    pub ratio_to_floor: Option<f64>,
    pub reached: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// The scenario's timeout passed before every connection was reached.
    pub timed_out: bool,
    pub latency: Option<Percentiles>,
    /// Connections reached per second over the whole time.
    pub mean_rate: Option<f64>,
    /// Best one-second rate.
    pub peak_rate: f64,
    pub posts: PostCounts,
    /// SQS messages handed to fanout beyond the jobs first enqueued (requeued jobs).
    pub requeued_messages: Option<u64>,
    pub usage: Usage,
    pub cpu_s_per_100k: Option<f64>,
    pub gateway: CountersSnapshot,
    /// Scenario-specific figures (enqueue time, Scan time, queue and stream poller counters).
    pub details: serde_json::Value,
    /// First deliveries per 100 ms from the start.
    pub rate: RateSeries,
    /// (ms, fraction of connections reached).
    pub cdf: Vec<(f64, f64)>,
}

/// Everything a scenario measured, before it becomes a [`ScenarioResult`].
pub struct Measured {
    pub outcome: Outcome,
    pub parts: u64,
    pub timed_out: bool,
    pub gateway: CountersSnapshot,
    pub requeued_messages: Option<u64>,
    pub usage: Usage,
    pub details: serde_json::Value,
}

impl ScenarioResult {
    pub fn new(meta: Meta, floor_s: f64, m: Measured) -> Self {
        let outcome = &m.outcome;
        let elapsed = outcome.last();
        let elapsed_s = elapsed.map(|d| d.as_secs_f64());
        let rate =
            RateSeries::from_offsets(&outcome.latencies, std::time::Duration::from_millis(100));
        let posts = PostCounts::from_gateway(&m.gateway, outcome.expected as u64 * m.parts);
        Self {
            key: meta.key,
            title: meta.title,
            design: meta.design,
            measured_from: meta.measured_from,
            setup_s: meta.setup_s,
            connections: outcome.expected,
            parts: m.parts,
            elapsed_s,
            floor_s,
            ratio_to_floor: elapsed_s.map(|e| e / floor_s),
            reached: outcome.reached,
            lost: outcome.lost,
            duplicated: outcome.duplicated,
            timed_out: m.timed_out,
            latency: percentiles(&outcome.latencies),
            mean_rate: elapsed_s
                .filter(|e| *e > 0.0)
                .map(|e| outcome.reached as f64 / e),
            peak_rate: rate.peak_per_second(),
            posts,
            requeued_messages: m.requeued_messages,
            cpu_s_per_100k: m.usage.cpu_s_per_100k(posts.received),
            usage: m.usage,
            gateway: m.gateway,
            details: m.details,
            cdf: cdf(&outcome.latencies, CDF_POINTS),
            rate,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub started_at: String,
    pub machine: Machine,
    pub settings: Settings,
    pub registration: Option<Registration>,
    pub scenarios: Vec<ScenarioResult>,
    pub comparison: Vec<Comparison>,
    /// Checks that failed (ours lost or duplicated something).
    pub failed_checks: Vec<String>,
    /// Scenarios that could not run.
    pub errors: Vec<String>,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub moto_pid: Option<u32>,
}

/// Ours against the seed's design on the same gateway settings.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub ours: String,
    pub baseline: String,
    /// Time ours / time baseline (below 1: ours is faster).
    pub time_ratio: Option<f64>,
    pub ours_lost: usize,
    pub baseline_lost: usize,
}

impl Comparison {
    /// The isolated fan-out against each seed run; the first seed run is "the" baseline.
    pub fn of(scenarios: &[ScenarioResult]) -> Vec<Self> {
        let Some(ours) = scenarios.iter().find(|s| s.key == "fanout") else {
            return Vec::new();
        };
        scenarios
            .iter()
            .filter(|s| s.design == Design::Seed)
            .map(|seed| Self {
                ours: ours.key.clone(),
                baseline: seed.key.clone(),
                time_ratio: ours.elapsed_s.zip(seed.elapsed_s).map(|(o, b)| o / b),
                ours_lost: ours.lost,
                baseline_lost: seed.lost,
            })
            .collect()
    }
}

fn opt(v: Option<f64>, precision: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.precision$}"))
}

/// The terminal table: the run's settings, the timings, the costs, then the verdicts.
pub fn table(report: &BenchReport) -> String {
    let mut out = String::new();
    settings_lines(&mut out, report);
    timing_table(&mut out, &report.scenarios);
    cost_table(&mut out, report);
    verdicts(&mut out, report);
    out
}

/// What the run was set to, and the untimed registration of the rows.
fn settings_lines(out: &mut String, report: &BenchReport) {
    let s = &report.settings;
    let _ = writeln!(
        out,
        "\nFan-out benchmark: N = {} virtual connections, {} sockets; throttle R = {}/s (burst {}); \
         post latency {}+0..{} ms; floor N/R = {:.1} s; Lambda concurrency {} x FANOUT_CONCURRENCY {}, \
         shard {}, batch {}; {} cores",
        s.connections,
        s.sockets,
        s.rate,
        s.burst,
        s.latency_ms,
        s.jitter_ms,
        s.connections as f64 / s.rate,
        s.lambda_concurrency,
        s.fanout_concurrency,
        s.shard_size,
        s.batch_size,
        report.machine.cores,
    );
    if let Some(r) = &report.registration {
        let _ = writeln!(
            out,
            "setup (not timed): {} rows registered in moto in {:.1} s ({:.0} rows/s)",
            r.rows, r.seconds, r.rows_per_s
        );
    }
}

/// One row per scenario: how long, how fast, the latencies, and what went wrong on the way.
fn timing_table(out: &mut String, scenarios: &[ScenarioResult]) {
    let _ = writeln!(
        out,
        "\n{:<38} {:<22} {:>7} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>6} {:>5} {:>8} {:>7} {:>6} {:>6}",
        "scenario",
        "clock starts at",
        "N",
        "time s",
        "xfloor",
        "mean/s",
        "peak/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "lost",
        "dup",
        "retried",
        "429",
        "5xx",
        "requeue"
    );
    for r in scenarios {
        let lat = r.latency.unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<38} {:<22} {:>7} {:>8} {:>7} {:>7} {:>7.0} {:>8.0} {:>8.0} {:>8.0} {:>6} {:>5} {:>8} {:>7} {:>6} {:>6}{}",
            r.title,
            r.measured_from,
            r.connections,
            opt(r.elapsed_s, 2),
            opt(r.ratio_to_floor, 2),
            opt(r.mean_rate, 0),
            r.peak_rate,
            lat.p50_ms,
            lat.p99_ms,
            lat.max_ms,
            r.lost,
            r.duplicated,
            r.posts.retried,
            r.posts.throttled_429,
            r.posts.errors_5xx,
            r.requeued_messages
                .map_or_else(|| "-".to_owned(), |v| v.to_string()),
            if r.timed_out { "  TIMED OUT" } else { "" }
        );
    }
}

/// One row per scenario of the CPU and memory it took, and a note on how to read them.
fn cost_table(out: &mut String, report: &BenchReport) {
    let _ = writeln!(
        out,
        "\n{:<38} {:>8} {:>8} {:>7} {:>11} {:>10} {:>19} {:>8} {:>10} {:>12}",
        "cost",
        "setup s",
        "wall s",
        "CPU s",
        "cores used",
        "CPU/100k",
        "RSS MiB start>peak",
        "moto s",
        "moto cores",
        "other cores"
    );
    for r in &report.scenarios {
        let u = &r.usage;
        let _ = writeln!(
            out,
            "{:<38} {:>8.1} {:>8.2} {:>7.2} {:>11.2} {:>10} {:>10.0} >{:>6.0}{} {:>8} {:>10} {:>12.2}",
            r.title,
            r.setup_s,
            u.wall_s,
            u.cpu_s,
            u.cores,
            opt(r.cpu_s_per_100k, 2),
            u.start_rss_mib,
            u.peak_rss_mib,
            if u.peak_is_own { " " } else { "*" },
            opt(u.moto_cpu_s, 2),
            opt(u.moto_cores, 2),
            u.other_cores,
        );
    }
    let _ = writeln!(
        out,
        "(CPU/100k: this process's CPU seconds per 100,000 posts received by the gateway; it hosts \
         the emulator, pollers, functions and clients. cores used: CPU s / wall s. other cores: \
         the rest of the machine's busy time (other processes), out of {} cores.)",
        report.machine.cores
    );
}

/// Ours against each seed run, the ping burst's cost, what failed, and how long the whole run
/// took.
fn verdicts(out: &mut String, report: &BenchReport) {
    pingburst_verdict(out, &report.scenarios);
    for c in &report.comparison {
        let _ = writeln!(
            out,
            "ours/baseline ({} vs {}): time x{} ; lost {} vs {}",
            c.ours,
            c.baseline,
            opt(c.time_ratio, 3),
            c.ours_lost,
            c.baseline_lost
        );
    }
    for failed in report.failed_checks.iter().chain(&report.errors) {
        let _ = writeln!(out, "FAILED: {failed}");
    }
    let _ = writeln!(out, "total run time: {:.0} s", report.total_s);
}

/// The pingburst scenario's ratio and what the burst got back, when it ran.
fn pingburst_verdict(out: &mut String, scenarios: &[ScenarioResult]) {
    let Some(d) = scenarios
        .iter()
        .find(|s| s.key == "pingburst")
        .map(|s| &s.details)
    else {
        return;
    };
    let burst = &d["burst"];
    let _ = writeln!(
        out,
        "pingburst: broadcast under the burst / quiet = x{} ({} s vs {} s); the burst's {} pings got \
         {} PONG, {} Too Many Requests, {} errors, {} unanswered",
        opt(d["ratio"].as_f64(), 2),
        opt(d["burst_s"].as_f64(), 2),
        opt(d["quiet_s"].as_f64(), 2),
        burst["sent"],
        burst["pongs"],
        burst["throttled"],
        burst["errors"],
        burst["unanswered"],
    );
}

/// `bench.svg`: deliveries per second over the whole run and over ours' first seconds, and
/// the latency CDF; one line per scenario, ours solid, the seed's design dashed.
pub fn chart(report: &BenchReport) -> String {
    let s = &report.settings;
    let (rates, cdfs) = lines(&report.scenarios);
    // Ours at the throttle takes about N/R: three times that shows its whole curve.
    let zoom = 3.0 * s.connections as f64 / s.rate;
    let heading = format!(
        "One update to N = {} connections: ours (solid) against the seed's design (dashed)",
        s.connections
    );
    let whole = format!("Deliveries per second ({CHART_BUCKET_MS} ms buckets), whole run");
    let first = format!("Deliveries per second, first {zoom:.0} s (3 x N/R)");
    svg::document(
        &heading,
        &[
            rate_chart(whole, rates.clone(), s.rate, None),
            rate_chart(first, rates, s.rate, Some(zoom)),
            cdf_chart(cdfs),
        ],
    )
}

/// Each scenario's lines, (deliveries per second, latency CDF): a colour of its own for
/// both, dashed for the seed's design.
fn lines(scenarios: &[ScenarioResult]) -> (Vec<Series>, Vec<Series>) {
    scenarios
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let line = |points| Series {
                name: r.title.clone(),
                color: PALETTE[i % PALETTE.len()],
                dashed: r.design == Design::Seed,
                points,
            };
            let cdf = r.cdf.iter().map(|&(ms, f)| (ms / 1000.0, f)).collect();
            (line(chart_rates(&r.rate)), line(cdf))
        })
        .unzip()
}

/// (s, deliveries per second) in [`CHART_BUCKET_MS`] buckets.
fn chart_rates(rate: &RateSeries) -> Vec<(f64, f64)> {
    let factor = (CHART_BUCKET_MS / rate.bucket_ms.max(1)).max(1) as usize;
    rate.coarsen(factor).rates()
}

/// Deliveries per second against the account throttle, up to `x_max` s (`None`: all).
fn rate_chart(title: String, series: Vec<Series>, throttle: f64, x_max: Option<f64>) -> Chart {
    Chart {
        title,
        x_label: "seconds since the scenario's clock started".into(),
        y_label: "deliveries / s".into(),
        series,
        reference: Some(Reference {
            label: format!("account throttle R = {throttle}/s"),
            y: throttle,
        }),
        x_max,
        y_max: None,
        y_percent: false,
    }
}

fn cdf_chart(series: Vec<Series>) -> Chart {
    Chart {
        title: "Per-connection latency CDF (first delivery minus the clock's start)".into(),
        x_label: "latency, seconds".into(),
        y_label: "connections reached".into(),
        series,
        reference: None,
        x_max: None,
        y_max: Some(1.0),
        y_percent: true,
    }
}

/// Writes `bench.json`, `bench.svg` and `bench.txt` (the table) into `dir`.
pub fn write(dir: &Path, report: &BenchReport, table: &str) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    let files = [
        (dir.join("bench.json"), json),
        (dir.join("bench.svg"), chart(report)),
        (dir.join("bench.txt"), table.to_owned()),
    ];
    for (path, text) in &files {
        std::fs::write(path, text)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use apigw::Faults;

    use super::*;
    use crate::Scenario;
    use crate::baseline::SeedSettings;
    use crate::golden::assert_golden;
    use crate::measure::Received;
    use crate::scenarios::{FROM_PROCESSOR, FROM_SEED, FROM_WRITE};

    const N: usize = 2_000;
    const RATE: f64 = 1_000.0;

    fn settings() -> Settings {
        Settings {
            quick: false,
            connections: N,
            sockets: 100,
            pingburst_sockets: 50,
            rate: RATE,
            burst: 500,
            latency_ms: 20,
            jitter_ms: 10,
            lambda_concurrency: 10,
            batch_size: 1,
            fanout_concurrency: 64,
            shard_size: 1000,
            send_concurrency: 4,
            buckets: 1,
            faults: Faults {
                gone_rate: 0.0,
                throttle_rate: 0.05,
                error_rate: 0.02,
            },
            baseline: vec![
                SeedSettings {
                    max_sockets: Some(50),
                    attempts: 3,
                },
                SeedSettings {
                    max_sockets: None,
                    attempts: 3,
                },
            ],
            scenarios: Scenario::all(),
            timeout_s: 600,
            moto_pid: Some(4242),
        }
    }

    /// N connections; `at(i)` is connection i's (first delivery in ms, messages), `None` if lost.
    fn outcome(parts: u64, at: impl Fn(u64) -> Option<(u64, u64)>) -> Outcome {
        let start = Instant::now();
        let received = (0..N as u64).map(|i| match at(i) {
            Some((ms, messages)) => Received {
                messages,
                first: Some(start + Duration::from_millis(ms)),
            },
            None => Received {
                messages: 0,
                first: None,
            },
        });
        Outcome::of(start, parts, received)
    }

    fn usage(wall_s: f64, cpu_s: f64, peak_is_own: bool, moto_cpu_s: Option<f64>) -> Usage {
        Usage {
            wall_s,
            cpu_s,
            cores: cpu_s / wall_s,
            start_rss_mib: 48.0,
            peak_rss_mib: 131.5,
            peak_is_own,
            moto_cpu_s,
            moto_cores: moto_cpu_s.map(|s| s / wall_s),
            other_cores: 0.12,
        }
    }

    fn gateway(
        received: u64,
        delivered: u64,
        throttled: u64,
        injected: (u64, u64),
    ) -> CountersSnapshot {
        CountersSnapshot {
            posts_received: received,
            posts_delivered: delivered,
            posts_delivered_virtual: delivered,
            rejected_throttled: throttled,
            injected_throttle: injected.0,
            injected_error: injected.1,
            ..CountersSnapshot::default()
        }
    }

    fn scenario(
        (key, title, design, measured_from): (&str, &str, Design, &'static str),
        outcome: Outcome,
        timed_out: bool,
        gateway: CountersSnapshot,
        requeued_messages: Option<u64>,
        usage: Usage,
    ) -> ScenarioResult {
        let meta = Meta {
            key: key.to_owned(),
            title: title.to_owned(),
            design,
            measured_from,
            setup_s: 1.25,
        };
        let measured = Measured {
            outcome,
            parts: 1,
            timed_out,
            gateway,
            requeued_messages,
            usage,
            details: serde_json::json!({}),
        };
        ScenarioResult::new(meta, N as f64 / RATE, measured)
    }

    /// A few ms of spread, the same in every run.
    fn jitter(i: u64) -> u64 {
        i * 7 % 13
    }

    /// Ours at the throttle, with faults (a few duplicates) and end to end (three lost).
    fn ours() -> Vec<ScenarioResult> {
        vec![
            scenario(
                ("fanout", "ours: fan-out", Design::Ours, FROM_PROCESSOR),
                outcome(1, |i| Some((25 + i + jitter(i), 1))),
                false,
                gateway(2_040, 2_000, 40, (0, 0)),
                Some(0),
                usage(2.4, 1.9, true, Some(0.3)),
            ),
            scenario(
                (
                    "faults",
                    "ours: fan-out, 5% 429 + 2% 5xx",
                    Design::Ours,
                    FROM_PROCESSOR,
                ),
                outcome(1, |i| {
                    Some((25 + i * 11 / 10 + jitter(i), 1 + u64::from(i % 97 == 0)))
                }),
                false,
                gateway(2_300, 2_021, 60, (100, 40)),
                Some(14),
                usage(2.7, 2.2, true, Some(0.35)),
            ),
            scenario(
                ("e2e", "ours: end to end, virtual", Design::Ours, FROM_WRITE),
                outcome(1, |i| {
                    (![100, 1_000, 1_999].contains(&i)).then_some((400 + i + jitter(i), 1))
                }),
                false,
                gateway(2_010, 1_997, 13, (0, 0)),
                Some(2),
                usage(3.1, 2.6, false, None),
            ),
        ]
    }

    /// The seed with 50 sockets (timed out part way) and unlimited (reached nobody).
    fn seed_runs() -> Vec<ScenarioResult> {
        vec![
            scenario(
                (
                    "seed-50",
                    "seed: Scan + post all, 50 sockets",
                    Design::Seed,
                    FROM_SEED,
                ),
                outcome(1, |i| {
                    (i < 1_500).then_some((900 + i * 5 + jitter(i) * 5, 1))
                }),
                true,
                gateway(1_560, 1_500, 60, (0, 0)),
                None,
                usage(600.0, 40.0, true, Some(12.0)),
            ),
            scenario(
                (
                    "seed-unlimited",
                    "seed: Scan + post all, unlimited sockets",
                    Design::Seed,
                    FROM_SEED,
                ),
                outcome(1, |_| None),
                true,
                gateway(9_000, 0, 9_000, (0, 0)),
                None,
                usage(600.0, 75.5, true, Some(30.0)),
            ),
        ]
    }

    fn report() -> BenchReport {
        let scenarios: Vec<_> = ours().into_iter().chain(seed_runs()).collect();
        BenchReport {
            started_at: "2025-01-06T10:00:00+00:00".to_owned(),
            machine: Machine {
                cores: 2,
                moto_pid: Some(4242),
            },
            settings: settings(),
            registration: Some(Registration {
                rows: N,
                seconds: 3.2,
                rows_per_s: N as f64 / 3.2,
            }),
            comparison: Comparison::of(&scenarios),
            scenarios,
            failed_checks: vec!["e2e: 3 connections lost".to_owned()],
            errors: vec!["Sockets: connecting 100 sockets: connection refused".to_owned()],
            total_s: 1_234.5,
        }
    }

    #[test]
    fn the_table_is_unchanged() {
        assert_golden("table.txt", &table(&report()));
    }

    #[test]
    fn the_chart_is_unchanged() {
        assert_golden("bench.svg", &chart(&report()));
    }
}
