//! `fife-testkit`: run the test stand-ins outside `cargo test`.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use fife_testkit::workload::{LatencyModel, Workload, WorkloadConfig, WorkloadRole};

#[derive(Debug, Parser)]
#[command(
    name = "fife-testkit",
    about = "Test stand-ins for Fife (never for production)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a synthetic workload's /metrics until killed.
    Workload(WorkloadArgs),
}

#[derive(Debug, clap::Args)]
struct WorkloadArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// canary or baseline (the `fife_role` label).
    #[arg(long)]
    role: WorkloadRole,
    #[arg(long, default_value_t = 100.0)]
    latency_ms: f64,
    /// Spread of ln(latency).
    #[arg(long, default_value_t = 0.3)]
    latency_sigma: f64,
    /// Multiplier on every latency (1.2 = 20% slower).
    #[arg(long, default_value_t = 1.0)]
    latency_scale: f64,
    /// Fraction of requests answered with 500.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    #[arg(long, default_value_t = 200.0)]
    rps: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Workload(args) => run_workload(args).await,
    }
}

async fn run_workload(args: WorkloadArgs) -> anyhow::Result<()> {
    let config = WorkloadConfig {
        role: args.role,
        latency: LatencyModel {
            median_seconds: args.latency_ms / 1000.0,
            sigma: args.latency_sigma,
            scale: args.latency_scale,
        },
        error_rate: args.error_rate,
        requests_per_second: args.rps,
        seed: args.seed,
    };
    let workload = Workload::start(args.listen, config).await?;
    // The URL on stdout lets scripts find the port chosen for `--listen …:0`.
    println!("{}", workload.metrics_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
