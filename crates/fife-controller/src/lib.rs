//! Fife's controller.
