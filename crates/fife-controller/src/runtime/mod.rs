//! What the two loops run inside: the shared context, leader election, the shard this
//! controller runs, the operations endpoint, the controller's own metrics and the image verdicts of the signature gate.

pub mod audit_head;
pub mod caches;
pub mod context;
pub mod events;
pub mod image_verdicts;
pub mod leader;
pub mod server;
pub mod shard;
pub mod telemetry;
