//! The builders: pure functions from a Rollout and the engine's decision to the objects
//! the act step applies. No I/O; each is tested with plain `#[test]`s.
//!
//! ```text
//!   Decision ─▶ children (Deployments) · services · traffic (HTTPRoute weights)
//!             · istio (VirtualService weights, DestinationRule subsets) · nginx (canary Ingress)
//!             · runs (AnalysisRuns) · status_diff (write or not) · drift (re-apply or not)
//! ```

pub mod children;
pub mod drift;
pub mod istio;
pub mod nginx;
pub mod runs;
pub mod services;
pub mod status_diff;
pub mod traffic;
