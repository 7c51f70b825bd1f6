//! `fife-testkit`: run the test stand-ins outside `cargo test`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "fife-testkit", about = "Test stand-ins for Fife (never for production)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
