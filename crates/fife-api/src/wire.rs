//! The text the API writes for a value: its serde name. Messages, metric labels and audit
//! evidence that name an enum value (`PromoteFull`, `Inconclusive`) take it from here, so
//! renaming a Rust variant cannot change what people, dashboards or the hash chain read.

use serde::Serialize;

/// The serde name of `value`, e.g. `PromoteFull` for [`crate::ManualAction::PromoteFull`].
/// Meant for unit enum variants; anything else comes back as its JSON text.
pub fn wire_name<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(e) => format!("<{e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis_run::Classification;
    use crate::{AnalysisPhase, ManualAction, MeasurementPhase, RolloutPhase};

    #[test]
    fn names_are_the_ones_the_api_writes() {
        assert_eq!(wire_name(&ManualAction::PromoteFull), "PromoteFull");
        assert_eq!(wire_name(&AnalysisPhase::Inconclusive), "Inconclusive");
        assert_eq!(wire_name(&MeasurementPhase::Error), "Error");
        assert_eq!(wire_name(&RolloutPhase::Degraded), "Degraded");
        for c in [Classification::Pass, Classification::NoData] {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(format!("\"{}\"", wire_name(&c)), json);
        }
    }
}
