//! `fife-testkit`: run the test stand-ins outside `cargo test`.

use clap::{Parser, Subcommand};

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
    /// Serve the Kubernetes API test server until killed.
    Apiserver(ApiserverArgs),
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
    /// Changes kept for watches; older resume points get 410 Gone.
    #[arg(long, default_value_t = 100_000)]
    history_limit: usize,
    /// How often watches that allow bookmarks get one.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    bookmark_interval: std::time::Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Apiserver(args) => {
            use fife_testkit::apiserver::{ApiServer, Config};
            let config = Config {
                rollout_delay: args.rollout_delay,
                never_ready: args.never_ready,
                history_limit: args.history_limit,
                bookmark_interval: args.bookmark_interval,
                ..Config::default()
            };
            let server = ApiServer::start(args.listen, config).await?;
            server.write_kubeconfig(&args.kubeconfig)?;
            println!("{}", server.url());
            server.wait().await;
        }
    }
    Ok(())
}
