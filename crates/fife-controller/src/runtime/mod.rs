//! What the two loops run inside: the shared context, the watch caches and how they hold objects, leader election, the shard this
//! controller runs, the operations endpoint, the controller's own metrics and the image verdicts of the signature gate.

pub mod audit_head;
pub mod caches;
pub mod compact;
pub mod context;
pub mod events;
pub mod image_verdicts;
pub mod leader;
pub mod server;
pub mod shard;
pub mod telemetry;
