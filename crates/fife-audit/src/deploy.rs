//! Release evidence read back from the chain: the deploy record of each promotion (the
//! authorization of one change, in the shape auditors ask for), the record of each gate
//! outcome, and from them the numbers `fife audit deploys` and `fife audit report` print:
//! per gate how many changes it passed, held and was bypassed on, the time it added, how
//! often a change it passed was rolled back, and the four DORA keys. Pure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::record::{AuditAction, AuditRecord, rfc3339_millis};

/// One gate outcome, in a `GatePassed`, `GateBlocked` or `GateBypassed` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateEvidence {
    /// The gate's wire name (`Approval`, `Freeze`, ...).
    pub gate: String,
    pub policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// `Passed`, `Blocked` or `Bypassed`.
    pub outcome: String,
    /// How long the gate held the change, when it stopped holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlassUse>,
}

/// A break-glass that let a change through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakGlassUse {
    pub name: String,
    pub requested_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One approval that counted for a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalEvidence {
    pub approver: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_time"
    )]
    pub approved_at: Option<DateTime<Utc>>,
    /// How it was given, e.g. `Approval shop/bob-7f9c (kubectl fife approve)`.
    pub how: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Separation of duties for one change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DutiesEvidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployer: Option<String>,
    pub ok: bool,
}

/// One check the change passed (or was let past) before promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckEvidence {
    /// `Digest`, `Signature`, `Freeze`, `Approval`, `Bake`, `Analysis`, or `analysis` for
    /// an analysis run of the steps.
    pub check: String,
    /// The policy or the AnalysisRun it is about.
    pub subject: String,
    /// `Passed`, `Bypassed`, or the run's phase.
    pub verdict: String,
}

/// The authorization of one promotion, in a `Deployed` record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployRecord {
    /// `<rollout uid>/<revision>`: one change of one Rollout.
    pub deploy_id: String,
    /// The namespace.
    pub environment: String,
    /// The Rollout.
    pub service: String,
    /// `container=image@digest` for every container.
    pub artifacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_time"
    )]
    pub commit_time: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Who applied the change (from authentication, see `fife.dev/applied-by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalEvidence>,
    pub separation_of_duties: DutiesEvidence,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass: Option<BreakGlassUse>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_time"
    )]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_millis")]
    pub promoted_at: DateTime<Utc>,
}

mod optional_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::record::rfc3339_millis::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}

/// The deploy record of a record, if it is a `Deployed` one.
pub fn deploy_of(record: &AuditRecord) -> Option<DeployRecord> {
    if record.action != AuditAction::Deployed {
        return None;
    }
    serde_json::from_value(record.evidence.extra.clone()?.get("deploy")?.clone()).ok()
}

/// The gate outcome of a record, if it is a gate record.
pub fn gate_of(record: &AuditRecord) -> Option<GateEvidence> {
    if !matches!(
        record.action,
        AuditAction::GatePassed | AuditAction::GateBlocked | AuditAction::GateBypassed
    ) {
        return None;
    }
    serde_json::from_value(record.evidence.extra.clone()?.get("gate")?.clone()).ok()
}

/// The deploys that answer "what was deployed, and on whose authority": with `at`, for
/// each Rollout the last promotion at or before `at` (what was running then); without, all.
pub fn deploys(records: &[AuditRecord], at: Option<DateTime<Utc>>) -> Vec<(u64, DeployRecord)> {
    let all = records
        .iter()
        .filter_map(|r| deploy_of(r).map(|d| (r.seq, d)));
    let Some(at) = at else {
        return all.collect();
    };
    let mut latest: BTreeMap<(String, String), (u64, DeployRecord)> = BTreeMap::new();
    for (seq, deploy) in all.filter(|(_, d)| d.promoted_at <= at) {
        latest.insert(
            (deploy.environment.clone(), deploy.service.clone()),
            (seq, deploy),
        );
    }
    latest.into_values().collect()
}

/// Per gate: how many changes it passed, held and was bypassed on, the time it held them,
/// and how many changes it passed were rolled back afterwards.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GateNumbers {
    pub passed: u64,
    pub blocked: u64,
    pub bypassed: u64,
    /// Seconds the gate held changes, added up: what it added to lead time.
    pub held_seconds: f64,
    /// Changes this gate passed that were later rolled back or aborted.
    pub passed_then_rolled_back: u64,
}

/// The four DORA keys, from the log alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DoraKeys {
    pub deployments: u64,
    /// Deployments per day over the period.
    pub deployments_per_day: f64,
    /// Median seconds from commit time to promotion, over deploys that name their commit
    /// time.
    pub median_lead_time_seconds: Option<f64>,
    /// Changes that were aborted or rolled back, over changes that ended (promoted or not).
    pub change_fail_rate: Option<f64>,
    /// Median seconds from an abort or rollback to the next promotion of the same Rollout.
    pub median_time_to_restore_seconds: Option<f64>,
}

/// What `fife audit report` prints about releases.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseReport {
    #[serde(with = "optional_time")]
    pub since: Option<DateTime<Utc>>,
    pub gates: BTreeMap<String, GateNumbers>,
    /// Changes a break-glass let through (one use may bypass several gates).
    pub break_glass_uses: u64,
    pub dora: DoraKeys,
}

/// The release report of records at or after `since`, up to `now`.
pub fn release_report(
    records: &[AuditRecord],
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ReleaseReport {
    let records: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| since.is_none_or(|s| r.time >= s))
        .collect();
    let change = |r: &AuditRecord| {
        (
            r.rollout
                .as_ref()
                .map(|x| x.uid.clone())
                .unwrap_or_default(),
            r.revision.clone().unwrap_or_default(),
        )
    };
    // A person's abort is recorded twice, as the request (ManualAbort) and as the
    // engine's Aborted that follows it in the same decision; only the outcome counts, or
    // one failed change would count as two. An Aborted and the RolledBack that removes the
    // same canary later name the same revision, so they are one change.
    let failed =
        |r: &AuditRecord| matches!(r.action, AuditAction::Aborted | AuditAction::RolledBack);
    let mut report = ReleaseReport {
        since,
        ..ReleaseReport::default()
    };
    // Which gates each change passed, to count those later rolled back.
    let mut passed_by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    // One break-glass lets a change past several gates: it is one use.
    let mut bypassed_changes = std::collections::BTreeSet::new();
    for r in &records {
        let Some(gate) = gate_of(r) else { continue };
        let numbers = report.gates.entry(gate.gate.clone()).or_default();
        match r.action {
            AuditAction::GateBlocked => numbers.blocked += 1,
            AuditAction::GateBypassed => {
                numbers.bypassed += 1;
                bypassed_changes.insert(change(r));
            }
            _ => {
                numbers.held_seconds += gate.waited_seconds.unwrap_or(0.0);
                // A gate that stops holding reports how long; it passes the change once.
                if gate.waited_seconds.is_none() {
                    numbers.passed += 1;
                    passed_by
                        .entry(change(r))
                        .or_default()
                        .push(gate.gate.clone());
                }
            }
        }
    }
    report.break_glass_uses = bypassed_changes.len() as u64;
    let mut failed_changes: Vec<(String, String)> = records
        .iter()
        .filter(|r| failed(r))
        .map(|r| change(r))
        .collect();
    failed_changes.sort();
    failed_changes.dedup();
    for c in &failed_changes {
        for gate in passed_by.get(c).into_iter().flatten() {
            if let Some(n) = report.gates.get_mut(gate) {
                n.passed_then_rolled_back += 1;
            }
        }
    }

    let deploys: Vec<DeployRecord> = records.iter().filter_map(|r| deploy_of(r)).collect();
    let dora = &mut report.dora;
    dora.deployments = deploys.len() as u64;
    let start = since
        .or_else(|| records.first().map(|r| r.time))
        .unwrap_or(now);
    let days = ((now - start).num_seconds() as f64 / 86_400.0).max(1.0 / 24.0);
    dora.deployments_per_day = deploys.len() as f64 / days;
    let mut leads: Vec<f64> = deploys
        .iter()
        .filter_map(|d| {
            let commit = d.commit_time?;
            Some((d.promoted_at - commit).num_milliseconds() as f64 / 1000.0)
        })
        .collect();
    dora.median_lead_time_seconds = median(&mut leads);
    let ended = deploys.len() + failed_changes.len();
    dora.change_fail_rate = (ended > 0).then(|| failed_changes.len() as f64 / ended as f64);
    let mut restores = Vec::new();
    for (i, r) in records.iter().enumerate().filter(|(_, r)| failed(r)) {
        let rollout = r.rollout.as_ref().map(|x| &x.uid);
        let restored = records[i + 1..].iter().find(|n| {
            n.rollout.as_ref().map(|x| &x.uid) == rollout && n.action == AuditAction::Deployed
        });
        if let Some(n) = restored {
            restores.push((n.time - r.time).num_milliseconds() as f64 / 1000.0);
        }
    }
    dora.median_time_to_restore_seconds = median(&mut restores);
    report
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// The deploy records as text, one block each, for `fife audit deploys`.
pub fn render_deploys(deploys: &[(u64, DeployRecord)]) -> String {
    let mut out = String::new();
    if deploys.is_empty() {
        out.push_str("no deploy records match\n");
    }
    for (seq, d) in deploys {
        let line = |out: &mut String, key: &str, value: &str| {
            out.push_str(&format!("  {key:<22}{value}\n"));
        };
        out.push_str(&format!("deploy {} (audit seq {seq})\n", d.deploy_id));
        line(&mut out, "environment", &d.environment);
        line(&mut out, "service", &d.service);
        line(&mut out, "promoted at", &d.promoted_at.to_rfc3339());
        if let Some(t) = d.started_at {
            line(&mut out, "started at", &t.to_rfc3339());
        }
        for a in &d.artifacts {
            line(&mut out, "artifact", a);
        }
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
        line(&mut out, "source commit", &or_none(&d.source_commit));
        if let Some(t) = d.commit_time {
            line(&mut out, "commit time", &t.to_rfc3339());
        }
        line(&mut out, "pull request", &or_none(&d.pull_request));
        line(&mut out, "ticket", &or_none(&d.ticket));
        line(&mut out, "triggered by", &or_none(&d.triggered_by));
        line(&mut out, "tier", &or_none(&d.tier));
        for a in &d.approvals {
            let when = a.approved_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            line(
                &mut out,
                "approval",
                &format!(
                    "{} [{}] at {when} via {}",
                    a.approver,
                    a.groups.join(","),
                    a.how
                ),
            );
        }
        let sod = &d.separation_of_duties;
        line(
            &mut out,
            "separation of duties",
            &format!(
                "{} (author {}, approvers {}, deployer {})",
                if sod.ok { "ok" } else { "VIOLATED" },
                or_none(&sod.author),
                if sod.approvers.is_empty() {
                    "(none)".to_owned()
                } else {
                    sod.approvers.join(", ")
                },
                or_none(&sod.deployer)
            ),
        );
        for c in &d.checks {
            line(
                &mut out,
                "check",
                &format!("{} {}: {}", c.check, c.subject, c.verdict),
            );
        }
        match &d.break_glass {
            Some(b) => line(
                &mut out,
                "break-glass",
                &format!(
                    "{} by {} (second approver {}, incident {})",
                    b.name,
                    b.requested_by,
                    or_none(&b.second_approver),
                    or_none(&b.incident)
                ),
            ),
            None => line(&mut out, "break-glass", "not used"),
        }
    }
    out
}

/// The release report as text.
pub fn render_report_text(report: &ReleaseReport) -> String {
    let mut out =
        String::from("gate        passed  blocked  bypassed  held (s)  passed, then rolled back\n");
    for (gate, n) in &report.gates {
        out.push_str(&format!(
            "{gate:<11} {:>6}  {:>7}  {:>8}  {:>8.0}  {:>6}\n",
            n.passed, n.blocked, n.bypassed, n.held_seconds, n.passed_then_rolled_back
        ));
    }
    let d = &report.dora;
    let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.1}{unit}"));
    out.push_str(&format!("break-glass uses: {}\n", report.break_glass_uses));
    out.push_str(&format!(
        "deployments: {} ({:.2}/day)\nlead time (median, commit to promotion): {}\nchange-fail rate: {}\ntime to restore (median): {}\n",
        d.deployments,
        d.deployments_per_day,
        opt(d.median_lead_time_seconds, "s"),
        d.change_fail_rate.map_or("n/a".to_owned(), |r| format!("{:.0}%", r * 100.0)),
        opt(d.median_time_to_restore_seconds, "s"),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Actor, AuditEntry, RolloutRef};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn record(
        seq: u64,
        time: &str,
        action: AuditAction,
        revision: &str,
        extra: Option<serde_json::Value>,
    ) -> AuditRecord {
        let mut entry = AuditEntry::new(at(time), action, Actor::controller("fife"), String::new());
        entry.rollout = Some(RolloutRef {
            namespace: "shop".into(),
            name: "checkout".into(),
            uid: "u1".into(),
        });
        entry.revision = Some(revision.into());
        entry.evidence.extra = extra;
        AuditRecord::unsealed(entry, seq, String::new())
    }

    fn deploy(revision: &str, commit: &str, promoted: &str) -> serde_json::Value {
        serde_json::json!({ "deploy": DeployRecord {
            deploy_id: format!("u1/{revision}"),
            environment: "shop".into(),
            service: "checkout".into(),
            artifacts: vec![],
            source_commit: None,
            commit_time: Some(at(commit)),
            pull_request: None,
            ticket: None,
            triggered_by: None,
            tier: None,
            approvals: vec![],
            separation_of_duties: DutiesEvidence::default(),
            checks: vec![],
            break_glass: None,
            started_at: None,
            promoted_at: at(promoted),
        }})
    }

    fn gate(gate: &str, outcome: &str, waited: Option<f64>) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "gate": GateEvidence {
            gate: gate.into(),
            policy: "prod".into(),
            tier: None,
            outcome: outcome.into(),
            waited_seconds: waited,
            break_glass: None,
        }}))
    }

    fn log() -> Vec<AuditRecord> {
        vec![
            record(
                1,
                "2026-12-01T10:00:00Z",
                AuditAction::GateBlocked,
                "r1",
                gate("Approval", "Blocked", None),
            ),
            record(
                2,
                "2026-12-01T10:30:00Z",
                AuditAction::GatePassed,
                "r1",
                gate("Approval", "Passed", Some(1800.0)),
            ),
            record(
                3,
                "2026-12-01T10:30:00Z",
                AuditAction::GatePassed,
                "r1",
                gate("Approval", "Passed", None),
            ),
            record(
                4,
                "2026-12-01T11:30:00Z",
                AuditAction::Deployed,
                "r1",
                Some(deploy("r1", "2026-12-01T09:30:00Z", "2026-12-01T11:30:00Z")),
            ),
            record(
                5,
                "2026-12-02T10:00:00Z",
                AuditAction::GatePassed,
                "r2",
                gate("Approval", "Passed", None),
            ),
            record(6, "2026-12-02T10:10:00Z", AuditAction::Aborted, "r2", None),
            record(
                7,
                "2026-12-02T10:20:00Z",
                AuditAction::GateBypassed,
                "r3",
                gate("Freeze", "Bypassed", None),
            ),
            record(
                8,
                "2026-12-02T10:40:00Z",
                AuditAction::Deployed,
                "r3",
                Some(deploy("r3", "2026-12-02T10:00:00Z", "2026-12-02T10:40:00Z")),
            ),
        ]
    }

    #[test]
    fn deploys_at_a_time_are_what_was_running_then() {
        let log = log();
        let at_noon = deploys(&log, Some(at("2026-12-02T10:30:00Z")));
        assert_eq!(at_noon.len(), 1);
        assert_eq!(at_noon[0].0, 4);
        assert_eq!(at_noon[0].1.deploy_id, "u1/r1");
        assert_eq!(deploys(&log, None).len(), 2);
        assert!(deploys(&log, Some(at("2026-12-01T11:00:00Z"))).is_empty());
    }

    #[test]
    fn the_report_counts_gates_and_the_dora_keys() {
        let log = log();
        let report = release_report(&log, None, at("2026-12-03T10:00:00Z"));
        let approval = &report.gates["Approval"];
        assert_eq!(
            (approval.passed, approval.blocked, approval.bypassed),
            (2, 1, 0)
        );
        assert_eq!(approval.held_seconds, 1800.0);
        assert_eq!(approval.passed_then_rolled_back, 1, "r2 was aborted");
        assert_eq!(report.gates["Freeze"].bypassed, 1);
        assert_eq!(report.break_glass_uses, 1);
        let d = &report.dora;
        assert_eq!(d.deployments, 2);
        assert_eq!(d.deployments_per_day, 1.0);
        // 2 h and 40 min: median 80 min.
        assert_eq!(d.median_lead_time_seconds, Some(4800.0));
        assert_eq!(d.change_fail_rate, Some(1.0 / 3.0));
        assert_eq!(d.median_time_to_restore_seconds, Some(1800.0));
        let text = render_report_text(&report);
        assert!(text.contains("change-fail rate: 33%"), "{text}");
    }
}
