//! `bench` (`make bench`): how long after a metric changes the last of N dashboards has
//! it, and whether every one does, for our design and, in the same run on the same emulated
//! API Gateway (account throttle, per-call latency), for the seed's design it replaces.
//!
//! Scenarios, in the default order:
//! - `fanout`: ours from the processor's start (parts, shards, jobs, SendMessageBatch) to the
//!   last delivery, through the real queue poller and fanout: isolated from moto's Query speed,
//!   so this is the figure compared with the throttle's floor N/R;
//! - `faults`: `fanout` with injected 429s and 5xx;
//! - `capacity`: `fanout` without the account throttle: what this machine can do at all, which
//!   tells a bound of the machine from one of the design;
//! - `e2e`: ours from the metrics-table write (stream poller, processor paging moto's GSI);
//! - `sockets`: ours from the write to real WebSocket clients;
//! - `pingburst`: one broadcast to real sockets timed quiet and while 2 more sockets each
//!   send 5,000 pings as fast as they can: what one client's burst costs the others;
//! - `sustained`: a writer updating 50 entities every second for 120 s (30 s with --quick)
//!   while N virtual connections and 50 real clients are connected, with the posting budget,
//!   once in rounds mode and once in batch mode: staleness at the real clients, queue depth,
//!   posts per second against the budget (issue 12);
//! - `baseline`: the seed's function (Scan, post to all at once, no retry of its own, delete on
//!   410), once per `--baseline-sockets` value;
//! - `subscriptions`: N virtual connections over 10 distinct filters, one change matching
//!   one filter's connections: posts made against the matching connections, time against
//!   their floor alone (issue 14);
//! - `million` (run after `capacity`, not with --quick): `fanout` to 1,000,000 virtual
//!   connections.
//!
//! Modules: [`fixture`] (setup), [`scenarios`], [`sockets`], [`pingburst`] and [`sustained`]
//! (what is run), [`baseline`] (the seed's design), [`measure`] and [`timeline`] (figures),
//! [`report`] and [`svg`] (output), [`progress`].

mod baseline;
mod fixture;
#[cfg(test)]
mod golden;
mod measure;
mod pingburst;
mod progress;
mod proxy;
mod report;
mod scenarios;
mod sockets;
mod sustained;
mod svg;
mod timeline;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use apigw::Faults;
use baseline::SeedSettings;
use fixture::Bench;
use report::{BenchReport, Comparison, Design, Machine, ScenarioResult};
use sustained::{Mode, RegistrySource, SustainedResult, SustainedSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Fanout,
    Baseline,
    Faults,
    Capacity,
    E2e,
    Sockets,
    Pingburst,
    Sustained,
    Million,
    Subscriptions,
}

impl Scenario {
    /// Every scenario, in the default order; `million` only in the full run.
    fn all(quick: bool) -> Vec<Self> {
        let mut all = vec![
            Self::Fanout,
            Self::Faults,
            Self::Capacity,
            Self::Subscriptions,
        ];
        if !quick {
            // Before the socket scenarios: the allocator keeps the memory of their thousands
            // of sockets (over 1 GiB at 5,000), which would hide this one's peak.
            all.push(Self::Million);
        }
        all.extend([
            Self::E2e,
            Self::Sockets,
            Self::Pingburst,
            Self::Sustained,
            // Last: its 100k tasks leave the allocator holding memory that would otherwise
            // count in the next scenarios' peak.
            Self::Baseline,
        ]);
        all
    }

    /// Whether it reads the registered rows from moto.
    fn needs_rows(self, settings: &Settings) -> bool {
        match self {
            Self::Baseline | Self::E2e => true,
            Self::Sustained => settings.sustained.registry == RegistrySource::Moto,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    about = "Fan-out benchmark against moto: ours and the seed's design on the same emulated gateway; writes target/bench/bench.{json,svg,txt}"
)]
pub struct BenchArgs {
    /// 10,000 virtual connections and 1,000 sockets (unless --connections/--sockets say
    /// otherwise).
    #[arg(long)]
    pub quick: bool,
    /// Virtual connections N [default: 100000, 10000 with --quick].
    #[arg(long)]
    pub connections: Option<usize>,
    /// Real WebSocket clients of the sockets scenario [default: 5000, 1000 with --quick].
    #[arg(long)]
    pub sockets: Option<usize>,
    /// Real WebSocket clients of the pingburst scenario [default: 1000, 200 with --quick].
    #[arg(long)]
    pub pingburst_sockets: Option<usize>,
    /// The account throttle R, PostToConnection calls per second.
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// The throttle's burst.
    #[arg(long, default_value_t = 5_000)]
    pub burst: u32,
    /// Latency added to each management API call, ms ...
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// ... plus a uniform 0..=jitter, ms.
    #[arg(long, default_value_t = 10)]
    pub jitter_ms: u64,
    /// The SQS -> fanout mapping's maximum concurrency (the Lambda concurrency limit).
    #[arg(long, default_value_t = 10)]
    pub lambda_concurrency: usize,
    /// SQS messages per fanout invocation (production's mapping: 1).
    #[arg(long, default_value_t = 1)]
    pub batch_size: i32,
    /// FANOUT_CONCURRENCY: posts in flight per invocation.
    #[arg(long, default_value_t = fanout::config::DEFAULT_CONCURRENCY)]
    pub fanout_concurrency: usize,
    /// FANOUT_SHARD_SIZE: connection ids per fanout job.
    #[arg(long, default_value_t = 1000)]
    pub shard_size: usize,
    /// SEND_CONCURRENCY: the processor's SendMessageBatch calls in flight.
    #[arg(long, default_value_t = 4)]
    pub send_concurrency: usize,
    /// CONNECTION_BUCKETS of the registry.
    #[arg(long, default_value_t = 1)]
    pub buckets: u16,
    /// Injected 429 rate of the faults scenario (0.0..=1.0).
    #[arg(long, default_value_t = 0.05)]
    pub fault_429: f64,
    /// Injected 500 rate of the faults scenario (0.0..=1.0).
    #[arg(long, default_value_t = 0.02)]
    pub fault_5xx: f64,
    /// The seed's posts in flight, one baseline run per value: 50 is its JS SDK's maxSockets,
    /// 0 is no limit.
    #[arg(long, value_delimiter = ',', default_values_t = vec![50, 5000])]
    pub baseline_sockets: Vec<usize>,
    /// The seed's SDK attempts per post (its JS SDK's standard mode: 3; 1 = none).
    #[arg(long, default_value_t = baseline::JS_SDK_ATTEMPTS)]
    pub baseline_attempts: u32,
    /// Scenarios to run, in this order [default: all, in the order above; without million
    /// with --quick].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Option<Vec<Scenario>>,
    /// Virtual connections of the million scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub million_connections: usize,
    /// Real WebSocket clients of the sustained scenario, on which staleness is measured.
    #[arg(long, default_value_t = 50)]
    pub sustained_clients: usize,
    /// Entities the sustained scenario's writer updates every second.
    #[arg(long, default_value_t = 50)]
    pub sustained_entities: usize,
    /// How long the sustained scenario's writer writes, s [default: 120, 30 with --quick].
    #[arg(long)]
    pub sustained_writer_s: Option<u64>,
    /// The longest wait after the writer for every client to hold every latest value, s
    /// [default: 60, 30 with --quick].
    #[arg(long)]
    pub sustained_drain_s: Option<u64>,
    /// POST_BUDGET_PER_SECOND of the sustained scenario (both modes).
    #[arg(long, default_value_t = rounds::settings::DEFAULT_POST_BUDGET)]
    pub budget: u32,
    /// The sustained scenario's stream batching window, ms (production's mapping: 5 s).
    #[arg(long, default_value_t = 5_000)]
    pub stream_window_ms: u64,
    /// Where the sustained scenario's processor pages the registry: moto's GSI (a minute and
    /// more per broadcast at 100k rows), or the same Query answered from memory by a proxy in
    /// front of moto (everything else still goes to moto).
    #[arg(long, value_enum, default_value_t = RegistrySource::Memory)]
    pub sustained_registry: RegistrySource,
    /// The sustained scenario's modes, run in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![Mode::Rounds, Mode::Batch])]
    pub sustained_modes: Vec<Mode>,
    /// The sustained scenario's SQS -> fanout maximum concurrency (production's
    /// fanoutMaxConcurrency: 50).
    #[arg(long, default_value_t = 50)]
    pub sustained_lambda_concurrency: usize,
    /// Latency added to each claim of the posting budget in the sustained scenario, uniform
    /// from 0 to this, ms (with the registry in memory: the proxy holds the claim before moto
    /// gets it). A slower store for the budget's lanes.
    #[arg(long, default_value_t = 0)]
    pub claim_delay_ms: u64,
    /// Longest wait for a scenario's last delivery, s.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    /// Where bench.json, bench.svg, bench.txt and bench.log go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// moto's pid, to report its CPU time.
    #[arg(long, env = "MOTO_PID")]
    pub moto_pid: Option<u32>,
    /// moto's port, used when AWS_ENDPOINT_URL is not set.
    #[arg(long, env = "MOTO_PORT", default_value_t = 4566)]
    pub moto_port: u16,
}

/// The settings a run used, with --quick resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub connections: usize,
    pub sockets: usize,
    pub pingburst_sockets: usize,
    pub rate: f64,
    pub burst: u32,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub lambda_concurrency: usize,
    pub batch_size: i32,
    pub fanout_concurrency: usize,
    pub shard_size: usize,
    pub send_concurrency: usize,
    pub buckets: u16,
    pub faults: Faults,
    pub baseline: Vec<SeedSettings>,
    pub scenarios: Vec<Scenario>,
    pub timeout_s: u64,
    pub moto_pid: Option<u32>,
    pub sustained: SustainedSettings,
    pub sustained_modes: Vec<Mode>,
    pub million_connections: usize,
}

impl Settings {
    pub fn from_args(args: &BenchArgs) -> anyhow::Result<Self> {
        let (connections, sockets, pingburst_sockets) = if args.quick {
            (10_000, 1_000, 200)
        } else {
            (100_000, 5_000, 1_000)
        };
        let faults = Faults {
            gone_rate: 0.0,
            throttle_rate: args.fault_429,
            error_rate: args.fault_5xx,
        };
        let valid_rate = |p: f64| (0.0..=1.0).contains(&p);
        anyhow::ensure!(
            valid_rate(args.fault_429) && valid_rate(args.fault_5xx),
            "fault rates must be within 0.0..=1.0"
        );
        anyhow::ensure!(
            (1..=10).contains(&args.batch_size),
            "--batch-size must be 1..=10"
        );
        anyhow::ensure!(
            args.rate > 0.0 && args.burst > 0,
            "--rate and --burst must be positive"
        );
        anyhow::ensure!(args.budget > 0, "--budget must be positive");
        let (writer_s, drain_s) = if args.quick { (30, 30) } else { (120, 60) };
        Ok(Self {
            quick: args.quick,
            connections: args.connections.unwrap_or(connections).max(1),
            sockets: args.sockets.unwrap_or(sockets).max(1),
            pingburst_sockets: args.pingburst_sockets.unwrap_or(pingburst_sockets).max(1),
            rate: args.rate,
            burst: args.burst,
            latency_ms: args.latency_ms,
            jitter_ms: args.jitter_ms,
            lambda_concurrency: args.lambda_concurrency.max(1),
            batch_size: args.batch_size,
            fanout_concurrency: args.fanout_concurrency.max(1),
            shard_size: args.shard_size.max(1),
            send_concurrency: args.send_concurrency.max(1),
            buckets: args.buckets,
            faults,
            baseline: args
                .baseline_sockets
                .iter()
                .map(|&n| SeedSettings {
                    max_sockets: (n > 0).then_some(n),
                    attempts: args.baseline_attempts.max(1),
                })
                .collect(),
            scenarios: args
                .scenarios
                .clone()
                .unwrap_or_else(|| Scenario::all(args.quick)),
            timeout_s: args.timeout_s,
            moto_pid: args.moto_pid,
            sustained: SustainedSettings {
                clients: args.sustained_clients.max(1),
                entities: args.sustained_entities.clamp(1, 100),
                writer_s: args.sustained_writer_s.unwrap_or(writer_s).max(1),
                drain_s: args.sustained_drain_s.unwrap_or(drain_s),
                budget: args.budget,
                window_ms: args.stream_window_ms,
                stream_batch: event_sources::streams::StreamSourceConfig::default().batch_size,
                registry: args.sustained_registry,
                lambda_concurrency: args.sustained_lambda_concurrency.max(1),
                claim_delay_ms: args.claim_delay_ms,
            },
            sustained_modes: args.sustained_modes.clone(),
            million_connections: args.million_connections.max(1),
        })
    }
}

/// Logs go to `bench.log`: the terminal keeps the progress line and the table.
fn init_logging(out: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("bench.log");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_target(false)
        .with_writer(Mutex::new(file))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_sqs=warn".into()
            }),
        )
        .init();
    Ok(path)
}

/// The checks a run must pass: ours loses nothing and duplicates nothing without faults, and
/// loses nothing with them; in rounds mode no client sees an older value after a newer one.
fn checks(scenarios: &[ScenarioResult], sustained: &[SustainedResult]) -> Vec<String> {
    let mut failed = Vec::new();
    for s in scenarios.iter().filter(|s| s.design == Design::Ours) {
        if s.lost > 0 {
            failed.push(format!("{}: {} connections lost", s.key, s.lost));
        }
        if s.key != "faults" && s.duplicated > 0 {
            failed.push(format!(
                "{}: {} connections got duplicates",
                s.key, s.duplicated
            ));
        }
    }
    for s in sustained.iter().filter(|s| s.mode == "rounds") {
        if s.order.backwards > 0 {
            failed.push(format!(
                "{}: {} values arrived after a newer one of their entity",
                s.key, s.order.backwards
            ));
        }
    }
    failed
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Box::pin(run(<BenchArgs as clap::Parser>::parse())).await
}

async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let settings = Settings::from_args(&args)?;
    let log = init_logging(&args.out)?;
    let started = Instant::now();
    let started_at = chrono::Utc::now().to_rfc3339();
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:{}", args.moto_port));
    let sdk = stack::moto::sdk_config(&endpoint).await;
    stack::moto::wait_until_ready(&sdk, Duration::from_secs(30)).await?;
    eprintln!(
        "local bench: N = {}, sockets = {}, scenarios {:?}; moto at {endpoint}; logs in {}",
        settings.connections,
        settings.sockets,
        settings.scenarios,
        log.display()
    );

    let bench = Bench::new(sdk, settings.clone());
    let registration = if settings.scenarios.iter().any(|s| s.needs_rows(&settings)) {
        Some(bench.register().await?)
    } else {
        None
    };
    let (scenarios, sustained, errors) = run_scenarios(&bench).await;
    let report = BenchReport {
        started_at,
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            moto_pid: settings.moto_pid,
        },
        settings,
        registration,
        comparison: Comparison::of(&scenarios),
        failed_checks: checks(&scenarios, &sustained),
        targets: report::targets(&scenarios, &sustained),
        scenarios,
        sustained,
        errors,
        total_s: started.elapsed().as_secs_f64(),
    };
    publish(&args.out, &report)?;
    verdict(&report)
}

/// What one scenario run produced.
enum Run {
    Broadcast(Box<ScenarioResult>),
    Sustained(Box<SustainedResult>),
}

/// Every scenario the settings name, in order: the results, and the errors of those that
/// could not run (the others still run).
async fn run_scenarios(bench: &Bench) -> (Vec<ScenarioResult>, Vec<SustainedResult>, Vec<String>) {
    let mut scenarios = Vec::new();
    let mut sustained = Vec::new();
    let mut errors = Vec::new();
    for scenario in &bench.settings.scenarios {
        for result in run_scenario(bench, *scenario).await {
            match result {
                Ok(Run::Broadcast(result)) => scenarios.push(*result),
                Ok(Run::Sustained(result)) => sustained.push(*result),
                Err(e) => {
                    eprintln!("\nscenario {scenario:?} failed: {e:#}");
                    tracing::error!(?scenario, error = format!("{e:#}"), "scenario failed");
                    errors.push(format!("{scenario:?}: {e:#}"));
                }
            }
        }
    }
    (scenarios, sustained, errors)
}

/// Prints the table and writes the report's files into `out`.
fn publish(out: &Path, report: &BenchReport) -> anyhow::Result<()> {
    let table = report::table(report);
    print!("{table}");
    let files = report::write(out, report, &table)
        .with_context(|| format!("writing the report into {}", out.display()))?;
    for file in files {
        eprintln!("wrote {}", file.display());
    }
    Ok(())
}

/// Fails the run (a non-zero exit) when a scenario could not run or a check failed.
fn verdict(report: &BenchReport) -> anyhow::Result<()> {
    anyhow::ensure!(
        report.errors.is_empty() && report.failed_checks.is_empty(),
        "the benchmark failed: {}",
        report
            .errors
            .iter()
            .chain(&report.failed_checks)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

/// One scenario's runs (the baseline runs once per seed setting, the sustained scenario once
/// per broadcast mode).
async fn run_scenario(bench: &Bench, scenario: Scenario) -> Vec<anyhow::Result<Run>> {
    let faults = bench.settings.faults;
    let broadcast = |result: ScenarioResult| Run::Broadcast(Box::new(result));
    let one = |result: anyhow::Result<ScenarioResult>| vec![result.map(broadcast)];
    match scenario {
        Scenario::Fanout => one(bench
            .fanout("fanout", "ours: fan-out", Faults::default(), false)
            .await),
        Scenario::Baseline => {
            let mut runs = Vec::new();
            for seed in bench.settings.baseline.clone() {
                runs.push(bench.seed(seed).await.map(broadcast));
            }
            runs
        }
        Scenario::Faults => {
            let title = format!(
                "ours: fan-out, {:.0}% 429 + {:.0}% 5xx",
                faults.throttle_rate * 100.0,
                faults.error_rate * 100.0
            );
            one(bench.fanout("faults", &title, faults, false).await)
        }
        Scenario::Capacity => {
            let title = "ours: fan-out, no throttle (capacity)";
            one(bench
                .fanout("capacity", title, Faults::default(), true)
                .await)
        }
        Scenario::E2e => one(bench.end_to_end().await),
        Scenario::Sockets => one(bench.sockets().await),
        Scenario::Pingburst => match bench.pingburst().await {
            Ok(rows) => rows.into_iter().map(|r| Ok(broadcast(r))).collect(),
            Err(e) => vec![Err(e)],
        },
        Scenario::Sustained => sustained_runs(bench).await,
        Scenario::Million => one(bench.million().await),
        Scenario::Subscriptions => one(bench.subscriptions().await),
    }
}

/// moto's paging of the registry alone (when the registry is moto's), then the sustained
/// scenario in rounds mode and in batch mode, one after the other on stacks of their own.
async fn sustained_runs(bench: &Bench) -> Vec<anyhow::Result<Run>> {
    let paging = if bench.settings.sustained.registry == RegistrySource::Moto {
        match bench.paging_probe().await {
            Ok(paging) => Some(paging),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "paging the registry failed");
                None
            }
        }
    } else {
        None
    };
    let mut runs = Vec::new();
    for mode in bench.settings.sustained_modes.iter().map(|m| m.broadcast()) {
        runs.push(
            bench
                .sustained(mode, paging)
                .await
                .map(|r| Run::Sustained(Box::new(r))),
        );
    }
    runs
}
