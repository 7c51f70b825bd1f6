//! The end-to-end suite: the real `fife` binary (Cargo builds it for this test target and
//! names it in `CARGO_BIN_EXE_fife`) against the Kubernetes API test server, a real
//! Prometheus, a real registry, the real `kubectl` and headless Chromium, all started by one
//! shared harness. Tests that start a server live here; tests of the CLI's offline contract
//! (`validate`, `judge` on files, `audit`) stay beside the CLI in `crates/fife-cli/tests`.
//!
//! One binary instead of one per file: the suite links once. Run one part with
//! `cargo test -p fife-cli --test e2e controller::steps`.

mod harness;

mod controller {
    mod analysis;
    mod blue_green;
    mod drift;
    mod failures;
    mod prometheus_auth;
    mod rbac;
    mod release;
    mod requests;
    mod resilience;
    mod routers;
    mod shards;
    mod signals;
    mod signatures;
    mod steps;
    mod thresholds;
    mod workload;
}

mod cli {
    mod dashboard;
    mod demo;
    mod judge_live;
    mod ops;
    mod replay;
    mod verify_image;
}
