//! Test-only stand-ins for the parts of a cluster Fife talks to (the Kubernetes API test
//! server is the crate `fife-test-apiserver`): synthetic HTTP workloads that expose Prometheus metrics
//! (`workload`), the realistic model of a service's pods that calibration runs on
//! (`cluster_model`), a real Prometheus scraping them or loaded with hours of the model's
//! data (`prometheus`), and the seeded simulation that checks the judge's false-positive
//! rate and power on independent samples (`calibration`), and a real OCI registry with
//! signed images (`registry`). Used by integration tests,
//! end-to-end tests, the demo (`fife-demo`) and benchmarks; never shipped as a product.

pub mod calibration;
pub mod cluster_model;
pub mod prometheus;
pub mod registry;
pub mod workload;
