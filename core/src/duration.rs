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

/// A duration in a run's time: `d` divided by `time_scale` (local mode runs every wait and lifecycle
/// constant `time_scale` times faster). A scale that is not a positive number counts as 1 (real
/// time). The one place the time scale is applied.
pub fn scaled(d: Duration, time_scale: f64) -> Duration {
    let scale = if time_scale.is_finite() && time_scale > 0.0 {
        time_scale
    } else {
        1.0
    };
    // A tiny scale stretches a long wait past what a duration holds: the longest one, then.
    Duration::try_from_secs_f64(d.as_secs_f64() / scale).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_divides_by_a_positive_scale() {
        assert_eq!(
            scaled(Duration::from_secs(60), 100.0),
            Duration::from_millis(600)
        );
        assert_eq!(scaled(Duration::from_secs(2), 0.0), Duration::from_secs(2));
        assert_eq!(
            scaled(Duration::from_secs(2), f64::NAN),
            Duration::from_secs(2)
        );
        // Stretched past what a duration holds: the longest one, not a panic.
        assert_eq!(scaled(Duration::from_secs(3600), 1e-300), Duration::MAX);
    }

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
