//! The TIME argument of `fife replay --from/--to` and `fife judge --at`: RFC 3339
//! (`2026-05-01T12:00:00Z`, any offset) or unix seconds (`1777636800`, fractions allowed).

/// `text` as an instant, or a sentence naming `flag` and the forms it accepts.
pub fn parse_time(flag: &str, text: &str) -> Result<jiff::Timestamp, String> {
    let trimmed = text.trim();
    let unix = trimmed
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite())
        .and_then(|seconds| {
            jiff::Timestamp::from_millisecond((seconds * 1000.0).round() as i64).ok()
        });
    unix.or_else(|| trimmed.parse::<jiff::Timestamp>().ok())
        .ok_or_else(|| {
            format!(
                "{flag} `{text}` is not a time: give RFC 3339 (e.g. 2026-05-01T12:00:00Z) or unix seconds (e.g. 1777636800)"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_unix_seconds_name_the_same_instant() {
        let rfc = parse_time("--from", "2023-11-14T22:13:20Z").unwrap();
        let offset = parse_time("--from", "2023-11-15T00:13:20+02:00").unwrap();
        let unix = parse_time("--from", "1700000000").unwrap();
        let fraction = parse_time("--from", "1700000000.5").unwrap();
        assert_eq!(rfc, unix);
        assert_eq!(offset, unix);
        assert_eq!(fraction.as_millisecond(), 1_700_000_000_500);
    }

    #[test]
    fn anything_else_names_the_flag_and_the_accepted_forms() {
        let err = parse_time("--to", "yesterday").unwrap_err();
        assert!(err.starts_with("--to `yesterday` is not a time"), "{err}");
        assert!(
            err.contains("RFC 3339") && err.contains("unix seconds"),
            "{err}"
        );
        assert!(parse_time("--to", "NaN").is_err());
    }
}
