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
    AuditAction, AuditFilter, HeadMatch, KeyRing, PublishedHead, SignatureCheck, SigningKey,
    check_head, parse_expected_head, parse_rollout, parse_time, query_log, render_json_lines,
    render_table, verify_log_with_keys,
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
    /// Report on releases (gates, DORA keys) as text or JSON, or as a self-contained HTML
    /// page with verification, records and decisions over time.
    Report(crate::audit_html::ReportArgs),
    /// Print the deploy records: who authorized what, with which checks.
    Deploys(DeploysArgs),
}

#[derive(Debug, Args)]
struct DeploysArgs {
    /// The audit log (JSON Lines).
    file: PathBuf,
    /// What was deployed at this RFC 3339 time: for each Rollout, the last promotion at or
    /// before it (e.g. 2026-03-03T14:32:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<DateTime<Utc>>,
    /// Only deploys of this Rollout, as NAMESPACE/NAME.
    #[arg(long, value_name = "NS/NAME", value_parser = parse_rollout)]
    rollout: Option<(String, String)>,
    /// `json`: the deploy records as JSON Lines; `table`: one block per deploy.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The audit log (JSON Lines).
    file: PathBuf,
    /// File holding the HMAC key the log was signed with; every record must then carry a
    /// valid signature. Trailing whitespace in the file is ignored.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// A signing key with its id, as ID=FILE; repeat for each key the log was signed with
    /// (records name theirs as `kid`; records without one may match any key given).
    #[arg(long = "key", value_name = "ID=FILE")]
    keys: Vec<String>,
    /// The head the writer published, as SEQ:HASH (e.g. from the Rollout's status or a
    /// webhook's X-Fife-Audit-Head): fails when the log ends before it or differs at it.
    #[arg(long, value_name = "SEQ:HASH", value_parser = parse_expected_head)]
    expect_head: Option<(u64, String)>,
    /// A file (or `-` for stdin) holding the published head as stored in the
    /// `fife-audit-head` ConfigMap; its signature is checked when keys are given.
    #[arg(long, value_name = "FILE", conflicts_with = "expect_head")]
    head_from: Option<PathBuf>,
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
        AuditCommand::Deploys(args) => deploys(&args),
    }
}

fn read_log(path: &Path) -> Result<Vec<u8>, ExitCode> {
    std::fs::read(path).map_err(|e| {
        eprintln!("error: cannot read audit log {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn keys(args: &VerifyArgs) -> Result<Option<KeyRing>, String> {
    let mut keys = Vec::new();
    if let Some(path) = &args.key_file {
        keys.push(SigningKey::from_file(path).map_err(|e| e.to_string())?);
    }
    for spec in &args.keys {
        keys.push(KeyRing::read_named(spec).map_err(|e| e.to_string())?);
    }
    if keys.is_empty() {
        return Ok(None);
    }
    KeyRing::from_keys(keys)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The head to check against: `--expect-head`, or `--head-from` with its signature checked.
fn expected_head(
    args: &VerifyArgs,
    keys: Option<&KeyRing>,
) -> Result<Option<(u64, String)>, String> {
    if let Some(head) = &args.expect_head {
        return Ok(Some(head.clone()));
    }
    let Some(path) = &args.head_from else {
        return Ok(None);
    };
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read the head from stdin: {e}"))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the head from {}: {e}", path.display()))?
    };
    let head: PublishedHead = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "{} is not a published head ({{\"seq\":…,\"hash\":…,\"time\":…,\"log\":…}}): {e}",
            path.display()
        )
    })?;
    if let Some(keys) = keys {
        head.check_signature(keys)
            .map_err(|problem| format!("head refused: {problem}"))?;
    }
    Ok(Some((head.seq, head.hash)))
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let bytes = match read_log(&args.file) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let keys = match keys(args) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let head = match expected_head(args, keys.as_ref()) {
        Ok(head) => head,
        Err(e) if e.starts_with("head refused") => {
            println!("{e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match verify_log_with_keys(&bytes, keys.as_ref()) {
        Ok(report) => {
            println!("{} records, chain whole", report.records);
            match report.signatures {
                SignatureCheck::Verified => println!("every record signed with a given key"),
                SignatureCheck::NotChecked { signed: 0 } => {
                    println!(
                        "records are unsigned; anyone who can edit the file can rebuild the chain"
                    )
                }
                SignatureCheck::NotChecked { signed } => println!(
                    "{signed} records carry signatures, not checked: pass --key-file or --key \
                     to check them"
                ),
            }
            for seq in &report.recovered_torn {
                println!("seq {seq} records a torn write recovered after a crash");
            }
            match head.map(|(seq, hash)| (seq, check_head(&bytes, seq, &hash))) {
                None => {
                    println!(
                        "the end of the log is not checked: pass --expect-head or --head-from \
                         to detect records cut off the end"
                    );
                    ExitCode::SUCCESS
                }
                Some((seq, Ok(HeadMatch::AtHead))) => {
                    println!("the log ends at the published head (seq {seq})");
                    ExitCode::SUCCESS
                }
                Some((seq, Ok(HeadMatch::Beyond { last }))) => {
                    println!(
                        "the log reaches the published head (seq {seq}) and goes on to seq {last}"
                    );
                    ExitCode::SUCCESS
                }
                Some((_, Err(problem))) => {
                    println!("log cut short: {problem}");
                    ExitCode::from(1)
                }
            }
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

fn deploys(args: &DeploysArgs) -> ExitCode {
    let bytes = match read_log(&args.file) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let filter = AuditFilter {
        rollout: args.rollout.clone(),
        ..AuditFilter::default()
    };
    let records: Vec<_> = query_log(&bytes, &filter)
        .matches
        .into_iter()
        .map(|m| m.record)
        .collect();
    let found = fife_audit::deploys(&records, args.at);
    match args.output {
        OutputFormat::Json => {
            for (_, deploy) in &found {
                println!("{}", serde_json::to_string(deploy).unwrap_or_default());
            }
        }
        OutputFormat::Table => print!("{}", fife_audit::render_deploys(&found)),
    }
    ExitCode::SUCCESS
}
