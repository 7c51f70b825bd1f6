//! The audit log as a query: which records match a rollout, an action and a time window, and
//! how to print them. Pure: bytes in, matching lines or a table out.

use chrono::{DateTime, Utc};

use crate::record::{AuditAction, AuditRecord, rfc3339_millis};

/// What to keep. Every part that is set must match; bounds are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// `(namespace, name)` of the Rollout.
    pub rollout: Option<(String, String)>,
    pub action: Option<AuditAction>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// A `--rollout` value that is not `NAMESPACE/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rollout {0:?} is not NAMESPACE/NAME; write it as for example `shop/checkout-api`")]
pub struct BadRolloutName(pub String);

/// A time bound that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {text:?} is not RFC 3339 ({reason}); write it as for example 2025-03-03T14:32:00Z")]
pub struct BadTime {
    pub text: String,
    pub reason: String,
}

/// Parses `NAMESPACE/NAME`.
pub fn parse_rollout(text: &str) -> Result<(String, String), BadRolloutName> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(BadRolloutName(text.to_string())),
    }
}

/// Parses an RFC 3339 time (any offset) into UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, BadTime> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| BadTime {
            text: text.to_string(),
            reason: e.to_string(),
        })
}

impl AuditFilter {
    pub fn matches(&self, record: &AuditRecord) -> bool {
        if let Some((ns, name)) = &self.rollout {
            match &record.rollout {
                Some(r) if &r.namespace == ns && &r.name == name => {}
                _ => return false,
            }
        }
        if self.action.is_some_and(|a| a != record.action) {
            return false;
        }
        if self.since.is_some_and(|t| record.time < t) {
            return false;
        }
        if self.until.is_some_and(|t| record.time > t) {
            return false;
        }
        true
    }
}

/// One record that matched, with its line exactly as in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Match<'a> {
    pub line: &'a str,
    pub record: AuditRecord,
}

/// What a query found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult<'a> {
    pub matches: Vec<Match<'a>>,
    /// 1-based numbers of lines that are not records (torn or edited); `fife audit verify`
    /// says more about them.
    pub unreadable_lines: Vec<usize>,
}

/// Runs `filter` over a log's bytes, in file order.
pub fn query_log<'a>(bytes: &'a [u8], filter: &AuditFilter) -> QueryResult<'a> {
    let mut result = QueryResult::default();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        let parsed = std::str::from_utf8(raw).ok().and_then(|line| {
            serde_json::from_str::<AuditRecord>(line)
                .ok()
                .map(|r| (line, r))
        });
        match parsed {
            Some((line, record)) => {
                if filter.matches(&record) {
                    result.matches.push(Match { line, record });
                }
            }
            None => result.unreadable_lines.push(i + 1),
        }
    }
    result
}

/// The matches as JSON Lines, byte for byte as in the log (so the output can be verified
/// as a fragment and diffed against the source).
pub fn render_json_lines(matches: &[Match<'_>]) -> String {
    let mut out = String::new();
    for m in matches {
        out.push_str(m.line);
        out.push('\n');
    }
    out
}

/// The matches as an aligned table: one row per record, the evidence summarised.
pub fn render_table(matches: &[Match<'_>]) -> String {
    let header = [
        "SEQ", "TIME", "ROLLOUT", "REVISION", "ACTION", "ACTOR", "REASON", "EVIDENCE",
    ];
    let rows: Vec<[String; 8]> = matches
        .iter()
        .map(|m| {
            let r = &m.record;
            [
                r.seq.to_string(),
                rfc3339_millis::format(&r.time),
                r.rollout.as_ref().map_or_else(
                    || "-".to_string(),
                    |r| format!("{}/{}", r.namespace, r.name),
                ),
                r.revision.clone().unwrap_or_else(|| "-".to_string()),
                r.action.to_string(),
                format!("{}:{}", actor_kind(r), r.actor.name),
                r.reason.clone(),
                evidence_summary(r),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    };
    push_row(header.to_vec());
    for row in &rows {
        push_row(row.iter().map(String::as_str).collect());
    }
    out
}

fn actor_kind(r: &AuditRecord) -> &'static str {
    match r.actor.kind {
        crate::record::ActorKind::Controller => "controller",
        crate::record::ActorKind::User => "user",
    }
}

/// A short, fixed-order summary of the evidence: enough to spot the record to look at in
/// full with `--output json`.
fn evidence_summary(r: &AuditRecord) -> String {
    let e = &r.evidence;
    let mut parts = Vec::new();
    if let Some(step) = e.step {
        parts.push(format!("step={}/{}", step.index + 1, step.count));
    }
    if let Some(w) = e.weights {
        parts.push(format!("weights={}/{}/{}", w.stable, w.canary, w.baseline));
    }
    if let Some(s) = e.pause_seconds {
        parts.push(format!("pause={s}s"));
    }
    if let Some(run) = &e.analysis_run {
        parts.push(format!("run={run}"));
    }
    if let Some(phase) = e.analysis_phase {
        parts.push(format!("phase={phase}"));
    }
    for m in &e.measurements {
        let mut text = format!("{}={}", m.metric, m.phase);
        if let Some(c) = &m.comparison {
            if let Some(p) = c.p_value {
                text.push_str(&format!(" p={p:.4}"));
            }
            text.push_str(&format!(" n={}/{}", c.canary_samples, c.baseline_samples));
        }
        parts.push(text);
    }
    for m in &e.metrics {
        parts.push(format!("{}={}", m.metric, m.phase));
    }
    if let Some(t) = &e.torn_tail {
        parts.push(format!("torn={}B->{}", t.bytes, t.moved_to));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{ChainHead, seal};
    use crate::record::{Actor, AuditEntry, RolloutRef};

    fn log() -> String {
        let mut head = ChainHead::genesis();
        let mut out = String::new();
        let specs = [
            (
                "shop",
                "checkout",
                AuditAction::StepStarted,
                "2025-03-03T14:00:00Z",
            ),
            (
                "shop",
                "checkout",
                AuditAction::Promoted,
                "2025-03-03T14:32:10Z",
            ),
            (
                "shop",
                "cart",
                AuditAction::Promoted,
                "2025-03-03T14:33:00Z",
            ),
            (
                "web",
                "checkout",
                AuditAction::Aborted,
                "2025-03-04T09:00:00Z",
            ),
        ];
        for (ns, name, action, time) in specs {
            let mut e = AuditEntry::new(parse_time(time).unwrap(), action, Actor::user("ann"), "r");
            e.rollout = Some(RolloutRef {
                namespace: ns.into(),
                name: name.into(),
                uid: "u".into(),
            });
            let s = seal(e, &head, None);
            head = ChainHead::after(s.record.seq, &s.line);
            out.push_str(&s.line);
            out.push('\n');
        }
        out
    }

    fn seqs(filter: &AuditFilter) -> Vec<u64> {
        let log = log();
        query_log(log.as_bytes(), filter)
            .matches
            .iter()
            .map(|m| m.record.seq)
            .collect()
    }

    #[test]
    fn filters_combine() {
        assert_eq!(seqs(&AuditFilter::default()), vec![1, 2, 3, 4]);
        let rollout = Some(parse_rollout("shop/checkout").unwrap());
        assert_eq!(
            seqs(&AuditFilter {
                rollout: rollout.clone(),
                ..Default::default()
            }),
            vec![1, 2]
        );
        let promoted = Some(AuditAction::Promoted);
        assert_eq!(
            seqs(&AuditFilter {
                action: promoted,
                ..Default::default()
            }),
            vec![2, 3]
        );
        assert_eq!(
            seqs(&AuditFilter {
                rollout,
                action: promoted,
                ..Default::default()
            }),
            vec![2]
        );
    }

    #[test]
    fn time_bounds_are_inclusive_and_accept_offsets() {
        let since = Some(parse_time("2025-03-03T14:32:10Z").unwrap());
        let until = Some(parse_time("2025-03-03T15:33:00+01:00").unwrap());
        assert_eq!(
            seqs(&AuditFilter {
                since,
                until,
                ..Default::default()
            }),
            vec![2, 3]
        );
    }

    #[test]
    fn json_output_is_the_log_lines_and_table_has_a_row_per_match() {
        let log = log();
        let all = query_log(log.as_bytes(), &AuditFilter::default());
        assert_eq!(render_json_lines(&all.matches), log);
        let table = render_table(&all.matches);
        assert_eq!(table.lines().count(), 5);
        assert!(table.lines().nth(2).unwrap().contains("shop/checkout"));
        assert!(table.lines().nth(2).unwrap().contains("Promoted"));
    }

    #[test]
    fn unreadable_lines_are_reported_not_fatal() {
        let mut log = log();
        log.push_str("{\"seq\":5,\"acti");
        let r = query_log(log.as_bytes(), &AuditFilter::default());
        assert_eq!(r.matches.len(), 4);
        assert_eq!(r.unreadable_lines, vec![5]);
    }

    #[test]
    fn bad_names_and_times_say_how_to_write_them() {
        assert!(
            parse_rollout("checkout")
                .unwrap_err()
                .to_string()
                .contains("NAMESPACE/NAME")
        );
        assert!(parse_rollout("a/b/c").is_err());
        assert!(
            parse_time("3rd at 14:32")
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
    }
}
