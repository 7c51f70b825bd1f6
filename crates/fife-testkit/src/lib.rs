//! Test-only stand-ins for the parts of a cluster Fife talks to: a Kubernetes API test
//! server (`apiserver`), synthetic HTTP workloads that expose Prometheus metrics
//! (`workload`), a real Prometheus scraping them (`prometheus`), and the seeded
//! simulation that checks the judge's false-positive rate and power on such workloads
//! (`calibration`). Used by integration tests, end-to-end tests, the demo (`fife-demo`)
//! and benchmarks; never shipped as a product.

pub mod calibration;
pub mod prometheus;
pub mod workload;
