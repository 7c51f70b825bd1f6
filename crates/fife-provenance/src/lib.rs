//! Approve the digest: whether an image's digest carries a cosign signature from a trusted
//! key and, where a policy asks, SLSA provenance from the right builder and source.
//!
//! ```text
//!  image string ─▶ reference (digest or refusal) ─▶ registry (edge: .sig / .att tags)
//!                                                        │ Attachments
//!  Requirements (keys, provenance conditions) ──────────▶ verdict::judge (pure) ─▶ Verified | Refusal
//! ```
//!
//! Everything but `registry` is pure and tested with plain tests; `registry` speaks the OCI
//! distribution API and is tested against a real registry.
#![forbid(unsafe_code)]

pub mod attestation;
pub mod keys;
pub mod reference;
pub mod registry;
pub mod signature;
pub mod verdict;

pub use attestation::{ProvenanceFacts, ProvenanceRequirements};
pub use keys::{KeyError, TrustedKey};
pub use reference::{PinnedImage, ReferenceError};
pub use registry::{Registry, RegistryError};
pub use signature::SignedPayload;
pub use verdict::{Attachments, Refusal, Requirements, Verified, judge};
