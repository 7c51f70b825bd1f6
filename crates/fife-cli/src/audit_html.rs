//! `fife audit report`: what the log says about releases (per gate: passed, held,
//! bypassed, time held, passed then rolled back; the four DORA keys) as text or JSON, or,
//! with `--output html`, one self-contained HTML file an auditor can open offline: the
//! chain's verification result, the release numbers, every record (who, what, why,
//! evidence) and a chart of decisions over time. The chart library is the dashboard's
//! vendored uPlot, inlined; the page loads nothing from anywhere.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use fife_audit::{
    AuditFilter, AuditRecord, SignatureCheck, SigningKey, parse_time, query_log, release_report,
    render_report_text, verify_log,
};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// A self-contained HTML page.
    Html,
    /// The release numbers as text.
    Text,
    /// The release numbers as JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The audit log (JSON Lines).
    file: PathBuf,
    /// File holding the HMAC key the log was signed with; signatures are then checked.
    #[arg(long)]
    key_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    output: ReportFormat,
    /// Count only records at or after this RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Where to write the report (default: standard output).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
}

pub fn run(args: &ReportArgs) -> ExitCode {
    let bytes = match std::fs::read(&args.file) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: cannot read audit log {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let key = match args
        .key_file
        .as_deref()
        .map(SigningKey::from_file)
        .transpose()
    {
        Ok(key) => key,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let html = match args.output {
        ReportFormat::Html => render(&args.file.display().to_string(), &bytes, key.as_ref()),
        ReportFormat::Text => {
            render_report_text(&release_report(&records(&bytes), args.since, Utc::now()))
        }
        ReportFormat::Json => {
            let report = release_report(&records(&bytes), args.since, Utc::now());
            format!(
                "{}\n",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            )
        }
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, html) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        None => print!("{html}"),
    }
    ExitCode::SUCCESS
}

/// The verification result as sentences, and whether the chain is whole.
pub fn verification(bytes: &[u8], key: Option<&SigningKey>) -> (bool, Vec<String>) {
    match verify_log(bytes, key) {
        Ok(report) => {
            let mut lines = vec![format!("{} records, chain whole", report.records)];
            lines.push(match report.signatures {
                SignatureCheck::Verified => "every record signed with the given key".to_owned(),
                SignatureCheck::NotChecked { signed: 0 } => {
                    "records are unsigned; anyone who can edit the file can rebuild the chain"
                        .to_owned()
                }
                SignatureCheck::NotChecked { signed } => format!(
                    "{signed} records carry signatures, not checked: pass --key-file to check them"
                ),
            });
            for seq in report.recovered_torn {
                lines.push(format!(
                    "seq {seq} records a torn write recovered after a crash"
                ));
            }
            (true, lines)
        }
        Err(brk) => (
            false,
            vec![
                format!("chain broken at {brk}"),
                format!("{} records before it are whole", brk.seq.saturating_sub(1)),
            ],
        ),
    }
}

/// Every readable record of a log.
pub fn records(bytes: &[u8]) -> Vec<AuditRecord> {
    query_log(bytes, &AuditFilter::default())
        .matches
        .into_iter()
        .map(|m| m.record)
        .collect()
}

/// The whole page. The data goes in a JSON script element, with `<` escaped so no record
/// text can close it.
pub fn render(source: &str, bytes: &[u8], key: Option<&SigningKey>) -> String {
    let release = escape(&render_report_text(&release_report(
        &records(bytes),
        None,
        Utc::now(),
    )));
    let (whole, lines) = verification(bytes, key);
    let records: Vec<Value> = query_log(bytes, &AuditFilter::default())
        .matches
        .iter()
        .filter_map(|m| serde_json::from_str(m.line).ok())
        .collect();
    let data = json!({
        "source": source,
        "verification": { "whole": whole, "lines": lines },
        "records": records,
    })
    .to_string()
    .replace('<', "\\u003c");
    let title = format!("Audit report: {}", escape(source));
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>{uplot_css}\n{css}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n\
         <div id=\"verdict\"></div>\n<h2>Release gates and DORA keys</h2>\n<pre>{release}</pre>\n<h2>Decisions over time</h2>\n<div id=\"chart\"></div>\n\
         <h2>Records <span id=\"count\" class=\"muted\"></span></h2>\n<table id=\"records\"><thead><tr>\
         <th>Seq</th><th>Time</th><th>Rollout</th><th>Action</th><th>Actor</th><th>Reason</th><th>Evidence</th>\
         </tr></thead><tbody></tbody></table>\n</main>\n\
         <script type=\"application/json\" id=\"report-data\">{data}</script>\n\
         <script>{uplot}</script>\n<script>{script}</script>\n</body>\n</html>\n",
        uplot_css = include_str!("dashboard/assets/uPlot.min.css"),
        css = REPORT_CSS,
        uplot = include_str!("dashboard/assets/uPlot.iife.min.js"),
        script = include_str!("dashboard/assets/report.js"),
    )
}

const REPORT_CSS: &str = "body{font:14px/1.45 system-ui,'DejaVu Sans',sans-serif;color:#1c2430;margin:1.5em}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #e3e6eb;vertical-align:top}\
th{background:#eef1f5}pre{margin:0;font-size:12px}.muted{color:#6a7380;font-weight:normal}\
.verdict{padding:.6em 1em;border-left:4px solid}.whole{background:#e6f4ea;border-color:#1a6b32}\
.broken{background:#fdecea;border-color:#e5534b;color:#8a1c12}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use fife_audit::{Actor, AuditAction, AuditEntry, ChainHead, seal};

    fn log(reason: &str) -> Vec<u8> {
        let time = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 3, 14, 0, 0).unwrap();
        let entry = AuditEntry::new(
            time,
            AuditAction::ManualAbort,
            Actor::user("ann@example.com"),
            reason.to_owned(),
        );
        let sealed = seal(entry, &ChainHead::genesis(), None);
        format!("{}\n", sealed.line).into_bytes()
    }

    #[test]
    fn record_text_cannot_close_the_data_script() {
        let page = render("audit.jsonl", &log("</script><img src=x>"), None);
        // The data, uPlot and the report script: three, and no fourth from the record.
        assert_eq!(page.matches("</script>").count(), 3);
        assert!(page.contains("\\u003c/script>\\u003cimg src=x>"));
    }

    #[test]
    fn the_verdict_says_whole_or_where_it_breaks() {
        let bytes = log("rollback");
        let (whole, lines) = verification(&bytes, None);
        assert!(whole);
        assert_eq!(lines[0], "1 records, chain whole");
        let tampered = String::from_utf8(bytes)
            .unwrap()
            .replace("ann@example.com", "eve@example.com");
        let (whole, lines) = verification(tampered.as_bytes(), None);
        assert!(!whole);
        assert!(lines[0].starts_with("chain broken at seq 1"), "{lines:?}");
    }
}
