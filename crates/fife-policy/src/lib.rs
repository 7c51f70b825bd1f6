//! Fife's release policy as pure functions: which `ReleasePolicy` selects a change, which
//! risk tier the change falls in, whether freezes and deployment windows let it proceed
//! (and when they open), which approvals count (bound to the revision and its digests,
//! never from the author or the applier), whether a break-glass applies, and from all that
//! one verdict per gate. No I/O and no clock: `now` is an argument, time zones come from
//! the bundled tz database.
//!
//! ```text
//!   Change + ReleasePolicies + Approvals + BreakGlasses + image verdicts + progress + now
//!        └──────────────────────────▶ gates::evaluate ──▶ GateReport (one verdict per gate)
//! ```
//!
//! The engine calls [`evaluate`] as one step of its `decide`.

#![forbid(unsafe_code)]

pub mod approvals;
pub mod break_glass;
pub mod change;
pub mod gates;
pub mod schedule;

pub use change::Change;
pub use gates::{
    GateInput, GateReport, GateVerdict, ImageVerdict, Outcome, Progress, Stage, evaluate,
};
