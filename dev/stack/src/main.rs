//! `local`: the whole pipeline on one machine (`make dev`), and tokens for it (`local token`).

use std::time::{Duration, Instant};

use anyhow::Context;
use apigw::{FaultPatch, FaultSettings, GatewayConfig};
use authorizer::mint::{MintRequest, mint_hs256, now_epoch_secs, parse_ttl};
use clap::{Parser, Subcommand};
use registry::Buckets;
use stack::canary::LocalCanary;
use stack::{Stack, StackConfig};

#[derive(Parser)]
#[command(about = "The IOps dashboard fan-out, run locally against moto")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `local` runs `dev`.
    #[command(flatten)]
    dev: DevArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Bootstrap, then serve the gateway, the dashboard page, the pollers and the simulator.
    Dev(DevArgs),
    /// Print an HS256 token for `AUTH_MODE=jwt` (signed with AUTH_JWT_SECRET).
    Token(TokenArgs),
}

#[derive(clap::Args)]
struct TokenArgs {
    /// The token's subject (`sub`).
    #[arg(long)]
    sub: String,
    /// Entity types the connection may receive, comma-separated (default: every type).
    #[arg(long, value_delimiter = ',')]
    entity_types: Vec<String>,
    /// How long the token is valid: 90s, 15m, 1h, 2d.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// The secret the local stack verifies with.
    #[arg(long, env = "AUTH_JWT_SECRET", hide_env_values = true)]
    secret: String,
    /// `iss`, when the stack checks it (AUTH_ISSUER).
    #[arg(long, env = "AUTH_ISSUER")]
    issuer: Option<String>,
    /// `aud`, when the stack checks it (the first of AUTH_AUDIENCE).
    #[arg(long, env = "AUTH_AUDIENCE")]
    audience: Option<String>,
}

#[derive(clap::Args)]
struct DevArgs {
    /// Gateway, management API and page port.
    #[arg(long, env = "LOCAL_PORT", default_value_t = 3001)]
    port: u16,
    /// moto's port, used when AWS_ENDPOINT_URL is not set.
    #[arg(long, env = "MOTO_PORT", default_value_t = 4566)]
    moto_port: u16,
    /// 0 turns the metrics simulator off.
    #[arg(long, env = "LOCAL_SIMULATOR", default_value = "1")]
    simulator: String,
    /// GSI partitions for connections (CONNECTION_BUCKETS).
    #[arg(long, env = "CONNECTION_BUCKETS", default_value_t = 1)]
    buckets: u16,
    /// Seconds between the end-to-end canary's runs; 0 turns it off.
    #[arg(long, env = "LOCAL_CANARY_SECS", default_value_t = 10)]
    canary_secs: u64,
}

/// How long `make dev` waits for the moto it has just started.
const MOTO_START: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => token(&args),
        Some(Command::Dev(args)) => dev(args).await,
        None => dev(cli.dev).await,
    }
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let request = MintRequest {
        subject: args.sub.clone(),
        entity_types: args.entity_types.clone(),
        ttl: parse_ttl(&args.ttl)?,
        issuer: args.issuer.clone(),
        audience: args
            .audience
            .as_deref()
            .and_then(|list| list.split(',').map(str::trim).find(|a| !a.is_empty()))
            .map(str::to_owned),
    };
    println!(
        "{}",
        mint_hs256(args.secret.as_bytes(), &request, now_epoch_secs())?
    );
    Ok(())
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    init_tracing();
    let started = Instant::now();
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:{}", args.moto_port));
    let sdk = stack::moto::sdk_config(&endpoint).await;
    stack::moto::wait_until_ready(&sdk, MOTO_START).await?;
    let mut config = StackConfig::dev(args.port);
    config.buckets = Buckets::new(args.buckets).context("CONNECTION_BUCKETS must be 1..=1000")?;
    if args.simulator.trim() == "0" {
        config.simulator = None;
    }
    config.auth = auth_from_env()?;
    rounds_from_env(&mut config)?;
    config.canary = (args.canary_secs > 0).then(|| LocalCanary {
        interval: Duration::from_secs(args.canary_secs),
        ..LocalCanary::default()
    });
    let faults = faults_from_env(&mut config.gateway)?;
    let stack = Stack::start(&sdk, config)
        .await
        .with_context(|| format!("starting the local stack against {endpoint}"))?;
    tracing::info!(
        page = %stack.page_url(),
        connections_table = %stack.resources.names.connections_table,
        metrics_table = %stack.resources.names.metrics_table,
        fanout_queue = %stack.resources.fanout_queue_url,
        startup_ms = started.elapsed().as_millis() as u64,
        "local stack up"
    );
    println!("ready: {}", stack.ws_url());
    println!("dashboard: {}", stack.page_url());
    println!(
        "fault injection: {}_admin/faults ({})",
        stack.page_url(),
        serde_json::to_string(&faults)?
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    stack.shutdown().await;
    Ok(())
}

/// The management API's knobs from `LOCAL_POST_RATE`, `LOCAL_POST_BURST`, `LOCAL_LATENCY_MS`,
/// `LOCAL_JITTER_MS`, `LOCAL_FAULT_429`, `LOCAL_FAULT_5XX` and `LOCAL_FAULT_410`, over the
/// gateway's defaults (all off); they can be changed later through `/_admin/faults`.
fn faults_from_env(gateway: &mut GatewayConfig) -> anyhow::Result<FaultSettings> {
    let patch = FaultPatch::from_env(|name| std::env::var(name).ok())?;
    let settings = FaultSettings::of(gateway).patched(&patch)?;
    gateway.throttle = settings.throttle();
    gateway.latency = settings.latency();
    gateway.faults = settings.faults();
    // Read back: a rate without a burst shows the burst it got.
    Ok(FaultSettings::of(gateway))
}

/// `BROADCAST_MODE`, `POST_BUDGET_PER_SECOND` and `ROUND_LEASE_SECONDS`, read as the
/// processor and fanout functions read them.
fn rounds_from_env(config: &mut StackConfig) -> anyhow::Result<()> {
    let env = platform::env::process_env();
    config.mode = rounds::BroadcastMode::read(&env)?;
    config.post_budget = rounds::settings::post_budget(&env)?;
    config.round_lease = rounds::settings::round_lease(&env)?;
    tracing::info!(mode = ?config.mode, post_budget = config.post_budget, round_lease_s = config.round_lease.as_secs(), "broadcasts");
    Ok(())
}

/// `AUTH_MODE=jwt` (with `AUTH_JWT_SECRET` or `AUTH_JWKS_URL`) turns the authorizer on, as
/// the deployed functions read it; the default `none` lets every client connect.
fn auth_from_env() -> anyhow::Result<Option<authorizer::AuthConfig>> {
    let env = authorizer::config::process_env();
    match authorizer::config::auth_mode(&env)? {
        authorizer::AuthMode::None => Ok(None),
        authorizer::AuthMode::Jwt => {
            let config = authorizer::config::load(&env)?;
            tracing::info!("AUTH_MODE=jwt: $connect needs a token (`local token --sub NAME`)");
            Ok(Some(config))
        }
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .compact()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_sqs=warn".into()
            }),
        )
        .init();
}
