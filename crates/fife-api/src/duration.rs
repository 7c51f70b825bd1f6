//! `Duration`: the spans users write in manifests (`30s`, `10m`, `1h30m`, or Argo Rollouts'
//! integer seconds `10`), parsed once and carried as a number, written back in one canonical
//! form.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern the CRD schema enforces; [`Duration::from_str`] accepts exactly this language.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// A non-negative span of time with millisecond resolution, written as a sequence of
/// `<integer><unit>` terms with units `ms`, `s`, `m`, `h` (`1h30m`, `90s`, `250ms`).
///
/// Units are the ones Argo Rollouts and Prometheus users already write; days are left out
/// on purpose because a bake window measured in days is a configuration mistake more often
/// than an intent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    millis: u64,
}

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty: write a number followed by a unit, such as \"30s\" or \"10m\"")]
    Empty,
    #[error(
        "duration {input:?} has a number without a unit at the end: add one of ms, s, m, h (for example \"{input}s\")"
    )]
    MissingUnit { input: String },
    #[error("duration {input:?} has a unit without a number before it: write e.g. \"10m\"")]
    MissingNumber { input: String },
    #[error("duration {input:?} uses unknown unit {unit:?}: use ms, s, m or h (e.g. \"1h30m\")")]
    UnknownUnit { input: String, unit: String },
    #[error("duration {input:?} is too long to represent: use a smaller value")]
    Overflow { input: String },
}

impl Duration {
    pub const ZERO: Duration = Duration { millis: 0 };

    pub const fn from_millis(millis: u64) -> Self {
        Duration { millis }
    }

    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            millis: secs * 1000,
        }
    }

    pub const fn as_millis(self) -> u64 {
        self.millis
    }

    pub const fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }

    pub const fn is_zero(self) -> bool {
        self.millis == 0
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.as_std()
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(DurationError::Empty);
        }
        let overflow = || DurationError::Overflow {
            input: input.to_owned(),
        };
        let mut rest = input;
        let mut millis: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(DurationError::MissingNumber {
                    input: input.to_owned(),
                });
            }
            let number: u64 = rest[..digits].parse().map_err(|_| overflow())?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
            if unit_len == 0 {
                return Err(DurationError::MissingUnit {
                    input: input.to_owned(),
                });
            }
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let scale = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                other => {
                    return Err(DurationError::UnknownUnit {
                        input: input.to_owned(),
                        unit: other.to_owned(),
                    });
                }
            };
            let term = number.checked_mul(scale).ok_or_else(overflow)?;
            millis = millis.checked_add(term).ok_or_else(overflow)?;
        }
        Ok(Duration { millis })
    }
}

impl fmt::Display for Duration {
    /// Canonical form: largest units first, zero terms left out, `0s` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.millis;
        for (scale, unit) in [(3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")] {
            let n = rest / scale;
            if n > 0 {
                write!(f, "{n}{unit}")?;
                rest -= n * scale;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What a manifest may hold where a duration goes: a string in Fife's language, or a bare
/// integer number of seconds as Argo Rollouts writes `pause: {duration: 10}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Written<'a> {
    Seconds(i64),
    #[serde(borrow)]
    Text(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "expected a duration: a string such as \"30s\" or \"10m\", or a whole number of seconds",
            )
        })? {
            Written::Seconds(secs) => u64::try_from(secs)
                .ok()
                .and_then(|secs| secs.checked_mul(1_000))
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "duration {secs} is not a number of seconds Fife can use: write 0 or more, such as 30 or \"30s\""
                    ))
                }),
            Written::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Int-or-string as Kubernetes spells it; the pattern applies to strings only and
        // the minimum to integers only, as the API server validates them.
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "pattern": DURATION_PATTERN,
            "minimum": 0,
            "description": "A span of time: integer terms with units ms, s, m, h, e.g. \"30s\", \"10m\", \"1h30m\"; or a whole number of seconds, as Argo Rollouts writes it (10 is 10s)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_terms() {
        assert_eq!("30s".parse::<Duration>().unwrap(), Duration::from_secs(30));
        assert_eq!("10m".parse::<Duration>().unwrap(), Duration::from_secs(600));
        assert_eq!(
            "1h30m".parse::<Duration>().unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            "250ms".parse::<Duration>().unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "1m500ms".parse::<Duration>().unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!("0s".parse::<Duration>().unwrap(), Duration::ZERO);
    }

    #[test]
    fn refuses_malformed_input_with_a_reason() {
        assert_eq!("".parse::<Duration>(), Err(DurationError::Empty));
        assert!(matches!(
            "10".parse::<Duration>(),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            "m".parse::<Duration>(),
            Err(DurationError::MissingNumber { .. })
        ));
        assert!(matches!(
            "1d".parse::<Duration>(),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "1.5h".parse::<Duration>(),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            "-1s".parse::<Duration>(),
            Err(DurationError::MissingNumber { .. })
        ));
        assert!(matches!(
            "99999999999999999999h".parse::<Duration>(),
            Err(DurationError::Overflow { .. })
        ));
        let message = "10".parse::<Duration>().unwrap_err().to_string();
        assert!(message.contains("\"10s\""), "{message}");
    }

    #[test]
    fn displays_canonically_and_round_trips() {
        assert_eq!(Duration::from_secs(5400).to_string(), "1h30m");
        assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
        assert_eq!(Duration::from_millis(1_250).to_string(), "1s250ms");
        assert_eq!(Duration::ZERO.to_string(), "0s");
        for text in ["1h", "2h3m4s5ms", "45s", "15m"] {
            let parsed: Duration = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn serializes_as_a_string() {
        let d: Duration = serde_json::from_str("\"5m\"").unwrap();
        assert_eq!(d, Duration::from_secs(300));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"5m\"");
        assert!(serde_json::from_str::<Duration>("\"5 minutes\"").is_err());
    }

    #[test]
    fn accepts_argo_integer_seconds() {
        let d: Duration = serde_json::from_str("10").unwrap();
        assert_eq!(d, Duration::from_secs(10));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"10s\"");
        assert_eq!(
            serde_json::from_str::<Duration>("0").unwrap(),
            Duration::ZERO
        );
        let negative = serde_json::from_str::<Duration>("-5")
            .unwrap_err()
            .to_string();
        assert!(negative.contains("write 0 or more"), "{negative}");
        let fraction = serde_json::from_str::<Duration>("1.5")
            .unwrap_err()
            .to_string();
        assert!(fraction.contains("whole number of seconds"), "{fraction}");
        assert!(serde_json::from_str::<Duration>("true").is_err());
    }
}
