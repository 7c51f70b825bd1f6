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
    /// Serve the Kubernetes API test server until killed.
    Apiserver(ApiserverArgs),
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

#[derive(Debug, clap::Args)]
struct ApiserverArgs {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Where to write a kubeconfig for the server.
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    /// How long a Deployment takes to reach the status its spec asks for.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    rollout_delay: std::time::Duration,
    /// No Deployment ever becomes ready.
    #[arg(long)]
    never_ready: bool,
    /// Changes kept for watches, per resource type; older resume points get 410 Gone.
    #[arg(long, default_value_t = fife_test_apiserver::DEFAULT_HISTORY_LIMIT)]
    history_limit: usize,
    /// How often watches that allow bookmarks get one.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    bookmark_interval: std::time::Duration,
    /// Bearer tokens in kube-apiserver's format: `token,user,uid,"group1,group2"` per line.
    /// The written kubeconfig's token is always the administrator's (`system:masters`).
    #[arg(long)]
    token_auth_file: Option<std::path::PathBuf>,
    /// Serve requests without credentials as `system:anonymous`; `false` refuses them
    /// (401). On by default, as kube-apiserver's: over plain HTTP kubectl sends no token.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    anonymous_auth: bool,
    /// `AlwaysAllow` (everyone authenticated may do everything) or `RBAC` (Roles,
    /// ClusterRoles and their bindings, stored in the server, decide).
    #[arg(long, default_value = "AlwaysAllow")]
    authorization_mode: fife_test_apiserver::AuthorizationMode,
    /// Serve HTTPS with the fixed test certificate (the kubeconfig trusts its CA);
    /// kubectl sends tokens only over TLS.
    #[arg(long)]
    tls: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Workload(args) => run_workload(args).await,
        Command::Apiserver(args) => {
            use fife_test_apiserver::{ApiServer, Authentication, Config};
            let static_tokens = match &args.token_auth_file {
                Some(path) => Authentication::read_token_file(path)?,
                None => Vec::new(),
            };
            let config = Config {
                rollout_delay: args.rollout_delay,
                never_ready: args.never_ready,
                history_limit: args.history_limit,
                bookmark_interval: args.bookmark_interval,
                authentication: Authentication {
                    static_tokens,
                    anonymous: args.anonymous_auth,
                },
                authorization_mode: args.authorization_mode,
                tls: args.tls,
                ..Config::default()
            };
            let server = ApiServer::start(args.listen, config).await?;
            server.write_kubeconfig(&args.kubeconfig)?;
            println!("{}", server.url());
            server.wait().await;
            Ok(())
        }
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
