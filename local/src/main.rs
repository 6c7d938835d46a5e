//! `local`: the whole pipeline on one machine (`make dev`), and its benchmark (`make bench`).

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use local::stack::{Stack, StackConfig};
use registry::Buckets;

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
    /// Fan-out benchmark against moto: ours and the seed's design on the same emulated gateway;
    /// writes target/bench/bench.{json,svg,txt}.
    Bench(local::bench::BenchArgs),
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        // The benchmark logs to a file of its own, keeping the terminal for its table.
        Some(Command::Bench(args)) => local::bench::run(args).await,
        Some(Command::Dev(args)) => {
            init_tracing();
            dev(args).await
        }
        None => {
            init_tracing();
            dev(cli.dev).await
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

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .unwrap_or_else(|_| format!("http://127.0.0.1:{}", args.moto_port));
    let sdk = registry::runtime::loopback_aws_config(&endpoint).await;
    let mut config = StackConfig::dev(args.port);
    config.buckets = Buckets::new(args.buckets).context("CONNECTION_BUCKETS must be 1..=1000")?;
    if args.simulator.trim() == "0" {
        config.simulator = None;
    }
    let stack = start_when_moto_answers(&sdk, config, &endpoint).await?;
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
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    stack.shutdown().await;
    Ok(())
}

async fn start_when_moto_answers(
    sdk: &aws_config::SdkConfig,
    config: StackConfig,
    endpoint: &str,
) -> anyhow::Result<Stack> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Stack::start(sdk, config.clone()).await {
            Ok(stack) => return Ok(stack),
            Err(e)
                if Instant::now() < deadline && format!("{e:#}").contains("dispatch failure") =>
            {
                tracing::info!("waiting for moto at {endpoint}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("starting the local stack against {endpoint} (is moto running? `make dev` starts it)"));
            }
        }
    }
}
