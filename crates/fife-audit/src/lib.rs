//! Fife's audit trail: every decision as a tamper-evident record, written before it is acted
//! on. No Kubernetes types: callers pass plain data.
//!
//! ```text
//!   AuditEntry ─▶ AuditLog::append ─▶ seal (seq, prev, hash, sig) ─▶ FileSink (fsync) ─▶ Ok: act
//!                                                                └─▶ TracingSink, WebhookNotifier
//!   bytes ─▶ verify_log ─▶ whole | first break          bytes ─▶ query_log ─▶ lines | table
//! ```
//!
//! - [`record`]: the schema (`"v": 1`).
//! - [`canonical`], [`chain`]: canonical JSON, hashing, signing.
//! - [`sink`], [`file`], [`webhook`]: where records go.
//! - [`head`]: the latest seq and hash, published outside the log. [`keys`]: keys by id.
//! - [`verify`], [`query`]: reading a log back. [`deploy`]: deploy records, gate outcomes
//!   and the release report read back from it. [`events`]: records as Kubernetes Events.

#![forbid(unsafe_code)]

pub mod canonical;
pub mod chain;
pub mod deploy;
pub mod events;
pub mod file;
pub mod head;
pub mod keys;
pub mod query;
pub mod record;
pub mod sink;
pub mod verify;
pub mod webhook;

pub use chain::{ChainHead, KeyError, SealedRecord, SigningKey, line_hash, seal};
pub use deploy::{
    ApprovalEvidence, BreakGlassUse, CheckEvidence, DeployRecord, DutiesEvidence, GateEvidence,
    ReleaseReport, deploys, release_report, render_deploys, render_report_text,
};
pub use events::{EventType, RolloutEvent, event_reason, rollout_event};
pub use file::{FileSink, OpenError, OpenedLog};
pub use head::{HeadMatch, HeadProblem, PublishedHead, check_head, parse_expected_head};
pub use keys::{KeyCheck, KeyRing, KeyRingError};
pub use query::{
    AuditFilter, QueryResult, parse_rollout, parse_time, query_log, render_json_lines, render_table,
};
pub use record::{
    Actor, ActorKind, AuditAction, AuditEntry, AuditRecord, ComparisonEvidence, Evidence, ImageRef,
    MeasurementEvidence, MetricOutcome, Phase, RenderedQuery, RolloutRef, StepPosition,
    ThresholdEvidence, TornTailEvidence, Weights,
};
pub use sink::{
    AuditError, AuditLog, AuditSink, AuditStats, AuditStatsSnapshot, SinkError, TracingSink,
};
pub use verify::{
    ChainBreak, ChainReport, Problem, SignatureCheck, verify_log, verify_log_with_keys,
};
pub use webhook::{
    DeliveryRejection, WebhookConfig, WebhookError, WebhookFormat, WebhookNotifier,
    WebhookStatsSnapshot, delivery_signature, verify_delivery, webhook_body,
};
