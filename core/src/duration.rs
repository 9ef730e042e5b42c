//! Human durations (`30s`, `45m`, `4h`, `1h 30m`) in `pipeline.toml`.

use std::time::Duration;

/// Parses a human duration such as `30m` or `4h`; the error says what is accepted.
pub fn parse(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("'{s}' is not a duration ({e}); write e.g. \"90s\", \"30m\", \"4h\" or \"1h 30m\"")
    })?;
    if d.is_zero() {
        return Err(format!("'{s}' is zero; a duration must be positive"));
    }
    Ok(d)
}

/// Formats a duration the way a person writes it in `pipeline.toml`.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Whole seconds, rounded up, never zero: what Step Functions fields take.
pub fn whole_seconds(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse("4h").unwrap(), Duration::from_secs(14400));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn rejects_bad_and_zero_with_a_hint() {
        let e = parse("4 hours-ish").unwrap_err();
        assert!(e.contains("'4 hours-ish'") && e.contains("\"30m\""), "{e}");
        assert!(parse("0s").unwrap_err().contains("zero"));
    }

    #[test]
    fn whole_seconds_rounds_up() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(60)), 60);
    }
}
