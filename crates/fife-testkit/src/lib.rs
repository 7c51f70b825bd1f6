//! Test-only stand-ins for the parts of a cluster Fife talks to: a Kubernetes API test
//! server (`apiserver`) and synthetic HTTP workloads that expose Prometheus metrics
//! (`workload`). Used by integration tests, end-to-end tests, the demo and benchmarks;
//! never shipped as a product.

pub mod apiserver;
pub mod workload;
