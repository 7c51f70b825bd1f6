//! `fife audit verify` and `fife audit query`: prove an audit log's chain is whole, and
//! answer questions from it.
//!
//! Exit codes: 0 done (chain whole / query ran), 1 chain broken, 2 file or key unreadable or
//! bad arguments.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use fife_audit::{
    AuditAction, AuditFilter, SignatureCheck, SigningKey, parse_rollout, parse_time, query_log,
    render_json_lines, render_table, verify_log,
};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check that an audit log's hash chain is whole (and signed, with --key-file).
    Verify(VerifyArgs),
    /// Print the records that match a rollout, an action and a time window.
    Query(QueryArgs),
    /// Write a self-contained HTML report: verification, records, decisions over time.
    Report(crate::audit_html::ReportArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The audit log (JSON Lines).
    file: PathBuf,
    /// File holding the HMAC key the log was signed with; every record must then carry a
    /// valid signature. Trailing whitespace in the file is ignored.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// The matching lines exactly as in the log.
    Json,
    /// One aligned row per record with a summary of its evidence.
    Table,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// The audit log (JSON Lines).
    file: PathBuf,
    /// Only records about this Rollout, as NAMESPACE/NAME.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_rollout)]
    rollout: Option<(String, String)>,
    /// Only records of this action (e.g. Promoted, ManualPromote, AnalysisCompleted).
    #[arg(long, value_name = "ACTION")]
    action: Option<AuditAction>,
    /// Only records at or after this RFC 3339 time (e.g. 2025-03-03T14:30:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Only records at or before this RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

pub fn run(args: AuditArgs) -> ExitCode {
    match args.command {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Query(args) => query(&args),
        AuditCommand::Report(args) => crate::audit_html::run(&args),
    }
}

fn read_log(path: &Path) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path).map_err(|e| {
        eprintln!("error: cannot read audit log {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let bytes = match read_log(&args.file) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let key = match args
        .key_file
        .as_deref()
        .map(SigningKey::from_file)
        .transpose()
    {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match verify_log(&bytes, key.as_ref()) {
        Ok(report) => {
            println!("{} records, chain whole", report.records);
            match report.signatures {
                SignatureCheck::Verified => println!("every record signed with the given key"),
                SignatureCheck::NotChecked { signed: 0 } => {
                    println!(
                        "records are unsigned; anyone who can edit the file can rebuild the chain"
                    )
                }
                SignatureCheck::NotChecked { signed } => println!(
                    "{signed} records carry signatures, not checked: pass --key-file to check them"
                ),
            }
            for seq in report.recovered_torn {
                println!("seq {seq} records a torn write recovered after a crash");
            }
            ExitCode::SUCCESS
        }
        Err(brk) => {
            println!("chain broken at {brk}");
            println!("{} records before it are whole", brk.seq.saturating_sub(1));
            ExitCode::from(1)
        }
    }
}

fn query(args: &QueryArgs) -> ExitCode {
    let bytes = match read_log(&args.file) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let filter = AuditFilter {
        rollout: args.rollout.clone(),
        action: args.action,
        since: args.since,
        until: args.until,
    };
    let result = query_log(&bytes, &filter);
    if !result.unreadable_lines.is_empty() {
        let lines: Vec<String> = result
            .unreadable_lines
            .iter()
            .map(usize::to_string)
            .collect();
        eprintln!(
            "warning: line(s) {} of {} are not audit records and were skipped; run `fife audit \
             verify {}` to see why",
            lines.join(", "),
            args.file.display(),
            args.file.display()
        );
    }
    match args.output {
        OutputFormat::Json => print!("{}", render_json_lines(&result.matches)),
        OutputFormat::Table => print!("{}", render_table(&result.matches)),
    }
    ExitCode::SUCCESS
}
