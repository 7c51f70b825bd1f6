//! `fife`: the command-line face of Fife. Each subcommand lives in its own module and
//! owns its flags, its output and its exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod validate;
mod yaml_lines;

#[derive(Debug, Parser)]
#[command(
    name = "fife",
    version,
    about = "Progressive delivery with statistical judgement"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Rollout and analysis manifests offline (for GitOps CI).
    Validate(validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(args),
    }
}
