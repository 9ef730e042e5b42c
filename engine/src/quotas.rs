//! Step Functions quotas and name rules the engine enforces.

/// AWS payload quota (256 KiB) for state input/output, task results and execution input.
pub const MAX_PAYLOAD_BYTES: usize = 262_144;
/// AWS history quota for a Standard workflow execution.
pub const MAX_HISTORY_EVENTS: usize = 25_000;

/// A valid execution or activity name: 1-80 letters, digits, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("build-1_a"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(81)));
        assert!(valid_name(&"x".repeat(80)));
    }
}
