//! The audit record schema (version 1): what was decided, about which rollout, by whom, on
//! what evidence. An [`AuditEntry`] is what a caller writes; an [`AuditRecord`] is that entry
//! once it has its place in the chain (`seq`, `prev`, `hash`, optional `sig`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The schema version written in every record's `v` field.
pub const SCHEMA_VERSION: u32 = 1;

/// The `prev` of the first record of a log: there is no record before it.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What Fife did or saw. The names are the wire names (`"action": "Promoted"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AuditAction {
    StepStarted,
    WeightChanged,
    PauseStarted,
    PauseEnded,
    AnalysisStarted,
    Measurement,
    AnalysisCompleted,
    Promoted,
    Aborted,
    RolledBack,
    ManualPromote,
    ManualAbort,
    ManualRetry,
    ManualPause,
    ManualResume,
    /// The log's writer found a torn last line at start-up and moved it aside.
    RecoveredTornRecord,
    /// A release gate let the change pass, or stopped holding it (`evidence.gate`).
    GatePassed,
    /// A release gate holds the change (`evidence.gate`).
    GateBlocked,
    /// A break-glass let the change past a freeze or missing approvals (`evidence.gate`).
    GateBypassed,
    /// The deploy record of a promotion: who authorized what (`evidence.deploy`).
    Deployed,
}

impl AuditAction {
    /// Every action, in declaration order (for help texts and parsing).
    pub const ALL: [AuditAction; 20] = [
        AuditAction::StepStarted,
        AuditAction::WeightChanged,
        AuditAction::PauseStarted,
        AuditAction::PauseEnded,
        AuditAction::AnalysisStarted,
        AuditAction::Measurement,
        AuditAction::AnalysisCompleted,
        AuditAction::Promoted,
        AuditAction::Aborted,
        AuditAction::RolledBack,
        AuditAction::ManualPromote,
        AuditAction::ManualAbort,
        AuditAction::ManualRetry,
        AuditAction::ManualPause,
        AuditAction::ManualResume,
        AuditAction::RecoveredTornRecord,
        AuditAction::GatePassed,
        AuditAction::GateBlocked,
        AuditAction::GateBypassed,
        AuditAction::Deployed,
    ];

    /// The wire name, e.g. `"ManualPromote"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::StepStarted => "StepStarted",
            AuditAction::WeightChanged => "WeightChanged",
            AuditAction::PauseStarted => "PauseStarted",
            AuditAction::PauseEnded => "PauseEnded",
            AuditAction::AnalysisStarted => "AnalysisStarted",
            AuditAction::Measurement => "Measurement",
            AuditAction::AnalysisCompleted => "AnalysisCompleted",
            AuditAction::Promoted => "Promoted",
            AuditAction::Aborted => "Aborted",
            AuditAction::RolledBack => "RolledBack",
            AuditAction::ManualPromote => "ManualPromote",
            AuditAction::ManualAbort => "ManualAbort",
            AuditAction::ManualRetry => "ManualRetry",
            AuditAction::ManualPause => "ManualPause",
            AuditAction::ManualResume => "ManualResume",
            AuditAction::RecoveredTornRecord => "RecoveredTornRecord",
            AuditAction::GatePassed => "GatePassed",
            AuditAction::GateBlocked => "GateBlocked",
            AuditAction::GateBypassed => "GateBypassed",
            AuditAction::Deployed => "Deployed",
        }
    }

    /// True for actions a person asked for rather than the controller deciding.
    pub fn is_manual(self) -> bool {
        matches!(
            self,
            AuditAction::ManualPromote
                | AuditAction::ManualAbort
                | AuditAction::ManualRetry
                | AuditAction::ManualPause
                | AuditAction::ManualResume
        )
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of [`AuditAction::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action {0:?}; expected one of: {names}", names = action_names())]
pub struct UnknownAction(pub String);

fn action_names() -> String {
    AuditAction::ALL
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for AuditAction {
    type Err = UnknownAction;

    /// Case-insensitive, so `--action promoted` works on the command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

/// The Rollout a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRef {
    pub namespace: String,
    pub name: String,
    /// The object's UID, so a deleted and re-created Rollout of the same name is told apart.
    pub uid: String,
}

/// Whether the controller decided, or a person asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ActorKind {
    Controller,
    User,
}

/// Who acted: the controller's identity (e.g. its service account and pod), or the user as far
/// as the API tells it (the manager of the field, the `kubectl fife` user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub name: String,
}

impl Actor {
    pub fn controller(name: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::Controller,
            name: name.into(),
        }
    }

    pub fn user(name: impl Into<String>) -> Self {
        Actor {
            kind: ActorKind::User,
            name: name.into(),
        }
    }
}

/// One container image as deployed, pinned by digest where the template pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub container: String,
    /// The image reference as written in the pod template.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Phase of one measurement, of one metric, or of a whole analysis run (docs/analysis.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Successful,
    Failed,
    Inconclusive,
    Error,
}

/// The phase as the record spells it (its serde name), so the table `fife audit query`
/// prints cannot drift from the JSON when a variant is renamed in Rust.
impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => Err(fmt::Error),
        }
    }
}

/// A query as it was sent, after templating, so a reviewer can run it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedQuery {
    /// `canary` or `baseline` for comparison metrics; absent for threshold metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub query: String,
}

/// The conditions a threshold metric was held to and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdEvidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// The query result the conditions were evaluated on.
    pub result: serde_json::Value,
}

/// The judge's inputs and outputs for one comparison of canary against baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonEvidence {
    pub test: String,
    pub direction: String,
    pub confidence: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_increase: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_decrease: Option<f64>,
    pub min_samples: u64,
    pub canary_samples: u64,
    pub baseline_samples: u64,
    /// Mann-Whitney U of the canary (mid-ranks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// How the p-value was computed (`exact` or `asymptotic`) and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_method: Option<String>,
    /// Hodges-Lehmann shift (canary minus baseline) and its confidence interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_high: Option<f64>,
    /// Pass | High | Low | NoData.
    pub classification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The pod test's whole judgement, as the judge serialises it: scale, look and the α
    /// it spent, each pod's location, degrees of freedom, standard error, estimate,
    /// interval, raw and adjusted p.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<serde_json::Value>,
}

/// One measurement of one metric, with everything needed to re-check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementEvidence {
    pub metric: String,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<RenderedQuery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<ThresholdEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<ComparisonEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Counts behind one metric's phase when an analysis completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricOutcome {
    pub metric: String,
    pub phase: Phase,
    pub successful: u32,
    pub failed: u32,
    pub inconclusive: u32,
    pub error: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<u32>,
}

/// Traffic split, in percent of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub stable: u32,
    pub canary: u32,
    pub baseline: u32,
}

/// Where a step is in the rollout's step list (`index` counts from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepPosition {
    pub index: u32,
    pub count: u32,
}

/// What happened to a torn last line found at start-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TornTailEvidence {
    /// Where the torn bytes were moved.
    pub moved_to: String,
    /// Byte offset in the log where the torn bytes began.
    pub offset: u64,
    pub bytes: u64,
    /// SHA-256 of the torn bytes, so the moved-aside file can be matched to this record.
    pub sha256: String,
}

/// The evidence a reviewer needs to re-check a decision. Every part is optional; a record
/// carries the parts its action has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepPosition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Length of a timed pause; absent for a pause that waits for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<MeasurementEvidence>,
    /// The run's phase when it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_phase: Option<Phase>,
    /// Per-metric outcomes that led to `analysisPhase`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_tail: Option<TornTailEvidence>,
    /// Anything else worth keeping that has no field yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<serde_json::Value>,
}

/// What a caller writes: one decision, before it has a place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    /// Absent only for records about the log itself (`RecoveredTornRecord`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Hash of the canary pod template (`fife.dev/revision`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRef>,
    /// Source annotations found on the Rollout (commit SHA, pull-request URL, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source: BTreeMap<String, String>,
    pub action: AuditAction,
    pub actor: Actor,
    pub reason: String,
    #[serde(default)]
    pub evidence: Evidence,
}

impl AuditEntry {
    /// An entry with only the required parts; fill in the rest with struct update syntax or
    /// by assigning fields.
    pub fn new(
        time: DateTime<Utc>,
        action: AuditAction,
        actor: Actor,
        reason: impl Into<String>,
    ) -> Self {
        AuditEntry {
            time,
            rollout: None,
            generation: None,
            revision: None,
            images: Vec::new(),
            source: BTreeMap::new(),
            action,
            actor,
            reason: reason.into(),
            evidence: Evidence::default(),
        }
    }
}

/// A record as it stands in the log: an entry plus its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub v: u32,
    pub seq: u64,
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageRef>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source: BTreeMap<String, String>,
    pub action: AuditAction,
    pub actor: Actor,
    pub reason: String,
    #[serde(default)]
    pub evidence: Evidence,
    /// SHA-256 (hex) of the previous record's line, without its newline.
    pub prev: String,
    /// SHA-256 (hex) of this record's canonical form without `hash` and `sig`.
    pub hash: String,
    /// Id of the key that signed the record (absent in logs from before key ids, and when the
    /// key has no id). Covered by `hash` and `sig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// HMAC-SHA256 (hex) over the same bytes as `hash`, when the log is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
}

impl AuditRecord {
    /// Places `entry` at `seq` after the record whose line hashes to `prev`; `hash` and `sig`
    /// are left empty for the chain to fill in.
    pub(crate) fn unsealed(entry: AuditEntry, seq: u64, prev: String) -> Self {
        AuditRecord {
            v: SCHEMA_VERSION,
            seq,
            time: entry.time,
            rollout: entry.rollout,
            generation: entry.generation,
            revision: entry.revision,
            images: entry.images,
            source: entry.source,
            action: entry.action,
            actor: entry.actor,
            reason: entry.reason,
            evidence: entry.evidence,
            prev,
            hash: String::new(),
            kid: None,
            sig: None,
        }
    }
}

/// Times are written as RFC 3339 in UTC with milliseconds, one fixed format, so the same
/// instant always has the same bytes.
pub(crate) mod rfc3339_millis {
    use super::*;

    pub fn serialize<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }

    pub fn format(time: &DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_prints_as_the_record_spells_it() {
        for phase in [
            Phase::Successful,
            Phase::Failed,
            Phase::Inconclusive,
            Phase::Error,
        ] {
            assert_eq!(
                serde_json::to_value(phase).unwrap(),
                serde_json::Value::String(phase.to_string())
            );
        }
    }

    #[test]
    fn action_names_round_trip_case_insensitively() {
        for action in AuditAction::ALL {
            assert_eq!(
                action.as_str().to_lowercase().parse::<AuditAction>(),
                Ok(action)
            );
            let wire = serde_json::to_string(&action).unwrap();
            assert_eq!(wire, format!("\"{}\"", action.as_str()));
        }
        let err = "Promote".parse::<AuditAction>().unwrap_err();
        assert!(err.to_string().contains("ManualPromote"), "{err}");
    }

    #[test]
    fn manual_actions_are_the_manual_ones() {
        let manual: Vec<_> = AuditAction::ALL
            .into_iter()
            .filter(|a| a.is_manual())
            .collect();
        assert_eq!(manual.len(), 5);
        assert!(manual.iter().all(|a| a.as_str().starts_with("Manual")));
    }

    #[test]
    fn time_has_one_fixed_format() {
        let t = DateTime::parse_from_rfc3339("2025-03-03T15:32:05.123456+01:00").unwrap();
        assert_eq!(
            rfc3339_millis::format(&t.with_timezone(&Utc)),
            "2025-03-03T14:32:05.123Z"
        );
    }
}
