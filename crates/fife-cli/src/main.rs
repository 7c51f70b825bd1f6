//! `fife`: the command-line face of Fife. Each subcommand lives in its own module and
//! owns its flags, its output and its exit codes.

mod audit;
mod audit_html;
mod controller;
mod convert;
mod dashboard;
mod judge;
mod judge_live;
mod ops;
mod replay;
mod sample_file;
mod time_arg;
mod validate;
mod verify_image;
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
    /// Backtest an analysis template on past data, exactly as a step analysis would run it.
    Replay(replay::ReplayArgs),
    /// Verify and query audit logs.
    Audit(audit::AuditArgs),
    /// Check Rollout and analysis manifests offline (for GitOps CI).
    Validate(validate::ValidateArgs),
    /// Write Argo Rollouts and Flagger manifests as Fife manifests, with a comment on each
    /// field that has no exact counterpart.
    Convert(convert::ConvertArgs),
    /// Check an image's cosign signature (and SLSA provenance) as the controller's gate does.
    VerifyImage(verify_image::VerifyImageArgs),
    /// Show a Rollout as a tree (`get rollout NAME [--watch]`).
    Get(ops::get::GetArgs),
    /// List Rollouts as a table (`list rollouts`).
    List(ops::get::ListArgs),
    /// Leave the current pause and go to the next step (`--full`: skip all remaining steps).
    Promote(ops::action::PromoteArgs),
    /// Send all traffic back to stable and scale the canary and baseline down.
    Abort(ops::action::ActionArgs),
    /// After an abort, start the steps again from the first.
    Retry(ops::action::ActionArgs),
    /// Pause the Rollout where it is.
    Pause(ops::action::ActionArgs),
    /// Resume a paused Rollout.
    Resume(ops::action::ActionArgs),
    /// Approve the Rollout's current revision (its image digests), as the authenticated user.
    Approve(ops::release::ApproveArgs),
    /// Request, approve or review a break-glass past freezes and approvals.
    BreakGlass(ops::release::BreakGlassArgs),
    /// Wait until a Rollout is Healthy (exit 0) or Degraded (1); 2 on timeout, 3 if it cannot be checked.
    Status(ops::status::StatusArgs),
    /// Serve a live web dashboard of Rollouts and analyses (read-only unless --allow-actions).
    Dashboard(dashboard::DashboardArgs),
    /// Run the controller: watch Rollouts and run them.
    Controller(controller::ControllerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Judge(args) => judge::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Convert(args) => convert::run(args),
        Command::VerifyImage(args) => verify_image::run(args),
        Command::Get(args) => ops::get::run_get(args),
        Command::List(args) => ops::get::run_list(args),
        Command::Promote(args) => ops::action::run_promote(args),
        Command::Abort(args) => ops::action::run_abort(args),
        Command::Retry(args) => ops::action::run_retry(args),
        Command::Pause(args) => ops::action::run_pause(args),
        Command::Resume(args) => ops::action::run_resume(args),
        Command::Approve(args) => ops::release::run_approve(args),
        Command::BreakGlass(args) => ops::release::run_break_glass(args),
        Command::Status(args) => ops::status::run(args),
        Command::Dashboard(args) => dashboard::run(args),
        Command::Controller(args) => controller::run(args),
    }
}
