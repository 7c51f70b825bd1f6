//! Fife's controller.

#![forbid(unsafe_code)]

pub mod children;
pub mod measure;
pub mod roles;
pub mod runs;
pub mod services;
pub mod status_diff;
pub mod traffic;
