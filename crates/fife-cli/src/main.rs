//! `fife`: the command-line face of Fife. Each subcommand lives in its own module and
//! owns its flags, its output and its exit codes.

mod audit;
mod judge;
mod judge_live;
mod validate;
mod yaml_lines;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Compare canary and baseline samples from files or a live Prometheus.
    Judge(judge::JudgeArgs),
    /// Verify and query audit logs.
    Audit(audit::AuditArgs),
    /// Check Rollout and analysis manifests offline (for GitOps CI).
    Validate(validate::ValidateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Judge(args) => judge::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Validate(args) => validate::run(args),
    }
}
