//! What a run found and how it is shown: the terminal table, `bench.json` (every figure) and
//! `bench.svg` (deliveries over time and the latency CDF, ours against the seed's design; the
//! sustained scenario's staleness, queues and posts over time, rounds against batch), and the
//! targets of issue 12 met or missed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use apigw::CountersSnapshot;
use serde::Serialize;

use super::Settings;
use super::fixture::Registration;
use super::measure::{Outcome, Percentiles, RateSeries, Usage, cdf, percentiles};
use super::sustained::{RegistrySource, SustainedResult};
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
    /// The sustained scenario, rounds mode and batch mode.
    pub sustained: Vec<SustainedResult>,
    pub comparison: Vec<Comparison>,
    /// Checks that failed (ours lost or duplicated something, a client went back to an older
    /// value in rounds mode).
    pub failed_checks: Vec<String>,
    /// Issue 12's targets, met or not (not checks: a busy machine or moto may miss them).
    pub targets: Vec<Target>,
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

/// One of issue 12's targets and the figure measured against it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub scenario: String,
    /// The figure and the rule, as the table prints them.
    pub what: String,
    pub figure: Option<f64>,
    pub limit: f64,
    pub met: bool,
}

/// The million scenario within 1.1 x the floor; rounds within their staleness bound, flat and
/// within the budget + 5%; batch within the budget + 5% too (it is fanout's) and growing.
pub fn targets(scenarios: &[ScenarioResult], sustained: &[SustainedResult]) -> Vec<Target> {
    let mut targets = Vec::new();
    for s in sustained {
        let [first, _, last] = s.age_thirds_p99_ms.map(|ms| ms / 1000.0);
        let limit = s.flat_limit_ms() / 1000.0;
        let growth = opt(s.growth(), 2);
        if s.mode == "rounds" {
            targets.push(Target {
                scenario: s.key.clone(),
                what: format!(
                    "p99 staleness {:.1} s <= 2 x N / budget + window = 2 x {} / {} + {:.1} = {:.1} s",
                    s.staleness.p99_ms / 1000.0,
                    s.connections,
                    s.budget,
                    s.target_staleness_s - 2.0 * s.connections as f64 / f64::from(s.budget),
                    s.target_staleness_s,
                ),
                figure: Some(s.staleness.p99_ms / 1000.0),
                limit: s.target_staleness_s,
                met: s.staleness_met(),
            });
            targets.push(Target {
                scenario: s.key.clone(),
                what: format!(
                    "flat: the staleness clients see (p99), highest in the writer's last third {last:.1} s (x{growth} the first third's, {first:.1} s) <= 1.25 x the first's + N / budget = {limit:.1} s"
                ),
                figure: Some(last),
                limit,
                met: s.flat(),
            });
        } else if s.batch_demand() > f64::from(s.budget) {
            targets.push(Target {
                scenario: s.key.clone(),
                what: format!(
                    "asks {:.0} posts/s (N x {} stream batches in {:.0} s) of a budget of {}, so expected to grow without bound: the staleness clients see (p99), highest in the writer's last third {last:.1} s (x{growth} the first third's, {first:.1} s) > 1.25 x the first's + N / budget = {limit:.1} s",
                    s.batch_demand(),
                    s.stream_batches,
                    s.writer_s,
                    s.budget,
                ),
                figure: Some(last),
                limit,
                met: !s.flat(),
            });
        }
        targets.push(Target {
            scenario: s.key.clone(),
            what: format!(
                "busiest second {:.0} posts <= budget + 5% = {:.0}",
                s.busiest_second,
                f64::from(s.budget) * 1.05
            ),
            figure: Some(s.busiest_second),
            limit: f64::from(s.budget) * 1.05,
            met: s.posts_met(),
        });
    }
    if let Some(m) = scenarios.iter().find(|s| s.key == "million") {
        targets.push(Target {
            scenario: m.key.clone(),
            what: format!(
                "{} connections (registry pages from memory) in {} s, x{} the floor N/R = {:.0} s <= x1.10; CPU {:.0} s, peak RSS {:.0} MiB",
                m.connections,
                opt(m.elapsed_s, 1),
                opt(m.ratio_to_floor, 3),
                m.floor_s,
                m.usage.cpu_s,
                m.usage.peak_rss_mib,
            ),
            figure: m.ratio_to_floor,
            limit: 1.1,
            met: !m.timed_out && m.lost == 0 && m.ratio_to_floor.is_some_and(|r| r <= 1.1),
        });
    }
    targets
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
    sustained_tables(&mut out, report);
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

/// The sustained scenario: its settings, one row per mode of what it measured, one of what it
/// cost. Nothing when it did not run.
fn sustained_tables(out: &mut String, report: &BenchReport) {
    let Some(first) = report.sustained.first() else {
        return;
    };
    let s = &report.settings;
    let w = &s.sustained;
    let virtual_n = first.connections - first.clients;
    let _ = writeln!(
        out,
        "\nSustained writer: N = {} ({} virtual + {} real clients, staleness measured at the clients); \
         {} entities written every second for {} s; stream batching window {:.1} s, batches of {}; \
         posting budget {}/s in both modes{}; throttle R = {}/s (burst {}); Lambda concurrency {} (fanout mapping); drain up to {} s",
        first.connections,
        virtual_n,
        first.clients,
        w.entities,
        w.writer_s,
        w.window_ms as f64 / 1000.0,
        w.stream_batch,
        w.budget,
        if w.claim_delay_ms > 0 {
            format!(" (its claims delayed by up to {} ms)", w.claim_delay_ms)
        } else {
            String::new()
        },
        s.rate,
        s.burst,
        w.lambda_concurrency,
        w.drain_s,
    );
    let _ = writeln!(
        out,
        "{}",
        match first.registry {
            RegistrySource::Memory => {
                "the processor pages the registry from memory: a proxy in front of moto answers its GSI Query \
                 (moto pages 100k rows in over a minute), every other call goes to moto (metrics table, stream, \
                 state table, queues)"
            }
            RegistrySource::Moto => "the processor pages the registry through moto's GSI",
        }
    );
    if let Some(p) = &first.paging {
        let _ = writeln!(
            out,
            "moto paged the registry alone (setup, not timed): {} rows in {:.1} s ({:.0} rows/s, {} pages); \
             a round's posts take N / budget = {:.1} s",
            p.rows,
            p.seconds,
            p.rows_per_s,
            p.pages,
            first.connections as f64 / f64::from(w.budget.max(1)),
        );
    }
    let _ = writeln!(
        out,
        "\n{:<18} {:>6} {:>7} {:>8} {:>6} {:>7} {:>8} {:>8} {:>8} {:>9} {:>17} {:>6} {:>6} {:>8} {:>8} {:>9} {:>6} {:>8} {:>6} {:>13} {:>13}",
        "sustained",
        "writes",
        "skipped",
        "writer s",
        "run s",
        "drained",
        "p50 s",
        "p99 s",
        "max s",
        "unreached",
        "seen p99 thirds s",
        "queue",
        "end q",
        "backlog",
        "end bl",
        "busiest/s",
        "429",
        "posts",
        "rounds",
        "round s avg/max",
        "paging avg/max",
    );
    for r in &report.sustained {
        let st = &r.staleness;
        // A write some client never got is counted at the run's end: a lower bound.
        let bound = if st.unreached > 0 { ">" } else { "" };
        let secs = |ms: f64| format!("{bound}{:.1}", ms / 1000.0);
        let [a, b, c] = r.age_thirds_p99_ms.map(|ms| ms / 1000.0);
        let times = r.round_times;
        let _ = writeln!(
            out,
            "{:<18} {:>6} {:>7} {:>8.1} {:>6.1} {:>7} {:>8} {:>8} {:>8} {:>9} {:>17} {:>6} {:>6} {:>8} {:>8} {:>9.0} {:>6} {:>8} {:>6} {:>13} {:>13}",
            r.title,
            r.writes,
            r.skipped_seconds,
            r.writer_s,
            r.run_s,
            if r.drained { "yes" } else { "CUT" },
            secs(st.p50_ms),
            secs(st.p99_ms),
            secs(st.max_ms),
            st.unreached,
            format!("{a:.1}/{b:.1}/{c:.1}"),
            r.max_queue,
            r.end_queue,
            r.max_stream_backlog,
            r.end_stream_backlog,
            r.busiest_second,
            r.throttled_429,
            r.posts,
            times.map_or_else(|| "-".to_owned(), |t| t.rounds.to_string()),
            times.map_or_else(
                || "-".to_owned(),
                |t| format!("{:.1}/{:.1}", t.mean_s, t.max_s)
            ),
            times.map_or_else(
                || "-".to_owned(),
                |t| format!("{:.1}/{:.1}", t.mean_paging_s, t.max_paging_s)
            ),
        );
    }
    for r in report.sustained.iter().filter(|r| r.mode == "batch") {
        let _ = writeln!(
            out,
            "{}: a broadcast per stream batch asks N x {} batches / {:.0} s = {:.0} posts/s of a budget of {}/s{}",
            r.title,
            r.stream_batches,
            r.writer_s,
            r.batch_demand(),
            r.budget,
            if r.batch_demand() > f64::from(r.budget) {
                ": it falls behind without bound"
            } else {
                ": within it, batch mode keeps up at this N (no growth expected)"
            }
        );
    }
    let _ = writeln!(
        out,
        "(skipped: seconds of the writer without writes, those before still going. staleness: from a write's PutItem returning to the moment a client holds that value or a newer \
         one, over every client and write; \">\": some writes had not reached some client when the run \
         stopped, counted at the stop. seen: the staleness clients see at each second, how long a newer \
         value than the one held has been waiting, p99 over clients and entities, highest in each third of \
         the writer's run. queue: fanout queue messages, largest and at the stop; backlog: \
         stream records not yet handled by the processor. busiest/s: posts the gateway received in the \
         busiest second. rounds: seen in the state table every 0.5 s; paging: a round's start until all \
         its jobs were enqueued.)"
    );
    let _ = writeln!(
        out,
        "\n{:<18} {:>8} {:>8} {:>7} {:>11} {:>19} {:>8} {:>10} {:>15} {:>12} {:>10} {:>9} {:>8} {:>9}",
        "sustained cost",
        "setup s",
        "wall s",
        "CPU s",
        "cores used",
        "RSS MiB start>peak",
        "moto s",
        "moto cores",
        "moto ms p50/p99",
        "other cores",
        "shutdown s",
        "backwards",
        "not last",
        "never got",
    );
    for r in &report.sustained {
        let u = &r.usage;
        let _ = writeln!(
            out,
            "{:<18} {:>8.1} {:>8.1} {:>7.1} {:>11.2} {:>10.0} >{:>6.0}{} {:>8} {:>10} {:>15} {:>12.2} {:>10.1} {:>9} {:>8} {:>9}",
            r.title,
            r.setup_s,
            u.wall_s,
            u.cpu_s,
            u.cores,
            u.start_rss_mib,
            u.peak_rss_mib,
            if u.peak_is_own { " " } else { "*" },
            opt(u.moto_cpu_s, 1),
            opt(u.moto_cores, 2),
            r.moto_round_trip.map_or_else(
                || "-".to_owned(),
                |p| format!("{:.0}/{:.0}", p.p50_ms, p.p99_ms)
            ),
            u.other_cores,
            r.shutdown_s,
            r.order.backwards,
            r.order.last_not_latest,
            r.order.never_latest,
        );
    }
    let _ = writeln!(
        out,
        "(moto ms: a GetItem of the state table, where the budget's claims and the rounds' writes go, \
         every 0.5 s. backwards: values a client received after a newer one of the same entity; not \
         last: (client, entity) pairs whose last message was not the latest value; never got: pairs \
         that never received it, of {} pairs.)",
        first.order.pairs
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
    for t in &report.targets {
        let _ = writeln!(
            out,
            "target {}: {}: {}",
            t.scenario,
            t.what,
            if t.met { "met" } else { "MISSED" }
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
    let mut charts = vec![
        rate_chart(whole, rates.clone(), s.rate, None),
        rate_chart(first, rates, s.rate, Some(zoom)),
        cdf_chart(cdfs),
    ];
    charts.extend(sustained_charts(&report.sustained));
    svg::document(&heading, &charts)
}

/// The sustained scenario over time, rounds solid and batch dashed: staleness by write time
/// against the target, the fanout queue and the stream backlog, posts per second against the
/// budget. Nothing when it did not run.
fn sustained_charts(runs: &[SustainedResult]) -> Vec<Chart> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    let color = |r: &SustainedResult, other: bool| match (r.mode == "rounds", other) {
        (true, false) => PALETTE[0],
        (true, true) => PALETTE[7],
        (false, false) => PALETTE[5],
        (false, true) => PALETTE[6],
    };
    let line = |r: &SustainedResult, name: &str, other: bool, points: Vec<(f64, f64)>| Series {
        name: format!("{}: {name}", r.mode),
        color: color(r, other),
        dashed: r.mode != "rounds",
        points,
    };
    let staleness = runs
        .iter()
        .flat_map(|r| {
            let p99 = r.ages.iter().map(|a| (a.at_s, a.p99_ms / 1000.0)).collect();
            let p50 = r.ages.iter().map(|a| (a.at_s, a.p50_ms / 1000.0)).collect();
            [
                line(r, "staleness seen, p99", false, p99),
                line(r, "staleness seen, p50", true, p50),
            ]
        })
        .collect();
    let queues = runs
        .iter()
        .flat_map(|r| {
            let queue = r.state.iter().map(|x| (x.at_s, x.queue as f64)).collect();
            let backlog = r
                .state
                .iter()
                .map(|x| (x.at_s, x.stream_backlog as f64))
                .collect();
            [
                line(r, "fanout queue, messages", false, queue),
                line(r, "stream backlog, records", true, backlog),
            ]
        })
        .collect();
    let posts = runs
        .iter()
        .map(|r| line(r, "posts / s", false, r.posts_per_s.clone()))
        .collect();
    let budget = f64::from(first.budget);
    let since = "seconds since the writer started";
    vec![
        Chart {
            title: "Sustained writer: staleness the clients see, how long a newer value has waited (rounds solid, batch dashed)"
                .into(),
            x_label: since.into(),
            y_label: "staleness, s".into(),
            series: staleness,
            reference: Some(Reference {
                label: format!(
                    "target 2 x N / budget + window = {:.1} s",
                    first.target_staleness_s
                ),
                y: first.target_staleness_s,
            }),
            x_max: None,
            y_max: None,
            y_percent: false,
        },
        Chart {
            title: "Sustained writer: fanout queue and stream backlog".into(),
            x_label: since.into(),
            y_label: "messages / records".into(),
            series: queues,
            reference: None,
            x_max: None,
            y_max: None,
            y_percent: false,
        },
        Chart {
            title: "Sustained writer: posts per second (1 s buckets)".into(),
            x_label: since.into(),
            y_label: "posts / s".into(),
            series: posts,
            reference: Some(Reference {
                label: format!("posting budget {budget}/s (+5%: {:.0})", budget * 1.05),
                y: budget,
            }),
            x_max: None,
            y_max: None,
            y_percent: false,
        },
    ]
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
    use crate::sustained::{Mode, Paging, StateSample, SustainedSettings};
    use crate::timeline::{self, Arrivals, RoundSeen, RoundTimes, Staleness, Write};

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
            scenarios: Scenario::all(false),
            timeout_s: 600,
            moto_pid: Some(4242),
            sustained: SustainedSettings {
                clients: 2,
                entities: 3,
                writer_s: 12,
                drain_s: 8,
                budget: 900,
                window_ms: 5_000,
                stream_batch: 100,
                registry: RegistrySource::Moto,
                lambda_concurrency: 50,
                claim_delay_ms: 0,
            },
            sustained_modes: vec![Mode::Rounds, Mode::Batch],
            million_connections: N,
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

    /// The million scenario at 1.05 x its floor.
    fn million() -> ScenarioResult {
        scenario(
            (
                "million",
                "ours: fan-out, 1M virtual",
                Design::Ours,
                FROM_PROCESSOR,
            ),
            outcome(1, |i| Some((i + i / 20 + jitter(i), 1))),
            false,
            gateway(2_000, 2_000, 0, (0, 0)),
            Some(0),
            usage(2.2, 3.1, true, Some(0.4)),
        )
    }

    /// One mode of the sustained scenario: 3 entities written every second for 12 s, 2
    /// clients receiving value v `delay(v)` s after its write (the second client 0.1 s later),
    /// the run stopped at 20 s.
    fn sustained(mode: &'static str, delay: impl Fn(u64) -> f64) -> SustainedResult {
        let s = settings().sustained;
        let at = |v: u64, e: usize| Duration::from_millis((v - 1) * 1000 + e as u64 * 10);
        let writes: Vec<Write> = (1..=12)
            .flat_map(|value| {
                (0..3).map(move |entity| Write {
                    entity,
                    value,
                    at: at(value, entity),
                })
            })
            .collect();
        let clients: Vec<Vec<Arrivals>> = (0..2u64)
            .map(|c| {
                (0..3)
                    .map(|e| {
                        (1..=12)
                            .map(|v| {
                                let late = Duration::from_secs_f64(delay(v) + 0.1 * c as f64);
                                (at(v, e) + late, v)
                            })
                            .filter(|(t, _)| *t <= Duration::from_secs(20))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let end = Duration::from_secs(20);
        let ages = timeline::ages(&writes, &clients, end, Duration::from_secs(1));
        let staleness = Staleness::of(
            &timeline::samples(&writes, &clients, end),
            Duration::from_secs(12),
        );
        let rounds: Vec<RoundSeen> = if mode == "rounds" {
            (0..4)
                .map(|i| RoundSeen {
                    round_id: format!("r-{i}"),
                    entities: 3,
                    started_s: 3.0 * f64::from(i) + 0.5,
                    enqueued_s: Some(3.0 * f64::from(i) + 2.0),
                    ended_s: Some(3.0 * f64::from(i) + 3.4),
                })
                .collect()
        } else {
            Vec::new()
        };
        let state: Vec<StateSample> = (0..40u32)
            .map(|i| StateSample {
                at_s: f64::from(i) * 0.5,
                queue: if mode == "rounds" {
                    u64::from(i % 3)
                } else {
                    u64::from(i) / 2
                },
                stream_backlog: if mode == "rounds" {
                    0
                } else {
                    u64::from(i) * 3
                },
            })
            .collect();
        let posts_per_s: Vec<(f64, f64)> = (0..20u32)
            .map(|i| {
                let busy = if mode == "rounds" { i % 3 != 2 } else { i > 1 };
                (
                    f64::from(i) + 0.5,
                    if busy {
                        880.0 + f64::from(i % 4) * 7.0
                    } else {
                        0.0
                    },
                )
            })
            .collect();
        let latest = [12, 12, 12];
        SustainedResult {
            key: format!("sustained-{mode}"),
            title: format!("sustained, {mode}"),
            mode,
            connections: N + s.clients,
            clients: s.clients,
            setup_s: 0.8,
            writes: writes.len() as u64,
            failed_writes: 0,
            skipped_seconds: 0,
            writer_s: 12.3,
            run_s: if mode == "rounds" { 15.1 } else { 20.0 },
            drained: mode == "rounds",
            stream_batches: if mode == "rounds" { 12 } else { 6 },
            order: timeline::order(&clients, &latest),
            target_staleness_s: s.target_s(N + s.clients),
            staleness,
            age_thirds_p99_ms: timeline::age_thirds(&ages, Duration::from_secs(12)),
            ages,
            max_queue: state.iter().map(|x| x.queue).max().unwrap_or(0),
            end_queue: state.last().map_or(0, |x| x.queue),
            max_stream_backlog: state.iter().map(|x| x.stream_backlog).max().unwrap_or(0),
            end_stream_backlog: state.last().map_or(0, |x| x.stream_backlog),
            busiest_second: if mode == "rounds" { 921.4 } else { 951.0 },
            busiest_detail: vec![(3.05, 40), (3.1, 52)],
            budget: s.budget,
            posts: 17_250,
            throttled_429: if mode == "rounds" { 0 } else { 12 },
            round_times: RoundTimes::of(&rounds),
            rounds,
            registry: RegistrySource::Moto,
            proxy: None,
            paging: Some(Paging {
                rows: N as u64,
                pages: 1,
                seconds: 0.8,
                rows_per_s: 2_500.0,
            }),
            moto_round_trip: percentiles(&[Duration::from_millis(12), Duration::from_millis(95)]),
            usage: usage(20.0, 9.5, true, Some(14.0)),
            shutdown_s: 0.4,
            posts_per_s,
            state,
        }
    }

    fn report() -> BenchReport {
        let scenarios: Vec<_> = ours()
            .into_iter()
            .chain(seed_runs())
            .chain([million()])
            .collect();
        // Rounds: 1.2 to 3 s behind, in a saw-tooth; batch: 1.5 s more behind every second.
        let sustained = vec![
            sustained("rounds", |v| 1.2 + (v % 3) as f64 * 0.9),
            sustained("batch", |v| 1.0 + v as f64 * 1.5),
        ];
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
            targets: targets(&scenarios, &sustained),
            scenarios,
            sustained,
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
