//! What the two loops run inside: the shared context, leader election, the operations
//! endpoint and the controller's own metrics.

pub mod audit_head;
pub mod caches;
pub mod context;
pub mod events;
pub mod leader;
pub mod server;
pub mod telemetry;
