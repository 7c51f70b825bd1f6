//! `fife`: the command-line face of Fife. Each subcommand lives in its own module and
//! owns its flags, its output and its exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod controller;

#[derive(Debug, Parser)]
#[command(name = "fife", version, about = "Progressive delivery with statistical judgement")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controller: watch Rollouts and run them.
    Controller(controller::ControllerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Controller(args) => controller::run(args),
    }
}
