//! The `SendTaskFailure` payload: an error name of at most 256 characters and a cause of at most
//! 32,768 characters (the API's limits) that is always valid [`WorkerFailureCause`] JSON.

use boa_core::task::WorkerFailureCause;

/// `SendTaskFailure.error` limit.
pub const MAX_ERROR_CHARS: usize = 256;
/// `SendTaskFailure.cause` limit.
pub const MAX_CAUSE_CHARS: usize = 32_768;

/// Cuts `s` to at most `max` characters.
pub fn bound_error(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}

/// Serialises the cause, keeping as much of the end of the log tail as fits in `max` characters
/// (then cutting the status text, then the ids, if even that is not enough). The result always
/// parses back as a [`WorkerFailureCause`].
pub fn bounded_cause(cause: &WorkerFailureCause, max: usize) -> String {
    let fits = |c: &WorkerFailureCause| {
        let s = serde_json::to_string(c).expect("cause serialises");
        (s.chars().count() <= max).then_some(s)
    };
    if let Some(s) = fits(cause) {
        return s;
    }
    let mut c = cause.clone();
    // The longest suffix of the tail that fits (binary search on its length in characters).
    let tail: Vec<char> = cause.log_tail.chars().collect();
    let with_tail = |keep: usize, c: &mut WorkerFailureCause| {
        c.log_tail = tail[tail.len() - keep..].iter().collect();
    };
    let (mut lo, mut hi) = (0, tail.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        with_tail(mid, &mut c);
        if fits(&c).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    with_tail(lo, &mut c);
    if let Some(s) = fits(&c) {
        return s;
    }
    // Not even an empty tail fits: shorten the other texts.
    c.status = c.status.chars().take(max / 4).collect();
    c.instance_id = c.instance_id.chars().take(max / 8).collect();
    c.log_stream = c.log_stream.chars().take(max / 8).collect();
    serde_json::to_string(&c).expect("cause serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause(tail: String) -> WorkerFailureCause {
        WorkerFailureCause {
            instance_id: "i-0123".into(),
            log_stream: "w_i-0123".into(),
            attempt: 1,
            elapsed_s: 1.5,
            status: "exit status 2".into(),
            log_tail: tail,
        }
    }

    #[test]
    fn small_causes_are_untouched() {
        let c = cause("line\n\"quoted\"".into());
        let s = bounded_cause(&c, MAX_CAUSE_CHARS);
        assert_eq!(serde_json::from_str::<WorkerFailureCause>(&s).unwrap(), c);
    }

    #[test]
    fn long_tails_are_cut_from_the_front_and_stay_valid_json() {
        // Control characters and quotes expand when escaped; multibyte characters count once.
        let tail: String = (0..5000)
            .map(|i| format!("{i}:\u{1}\"é\n"))
            .collect::<String>()
            + "THE END";
        let s = bounded_cause(&cause(tail), MAX_CAUSE_CHARS);
        assert!(s.chars().count() <= MAX_CAUSE_CHARS);
        assert!(s.chars().count() > MAX_CAUSE_CHARS - 200, "cut too much");
        let back: WorkerFailureCause = serde_json::from_str(&s).unwrap();
        assert!(back.log_tail.ends_with("THE END"));
        assert_eq!(back.status, "exit status 2");
    }

    #[test]
    fn errors_are_bounded() {
        assert_eq!(bound_error(&"x".repeat(1000)).len(), MAX_ERROR_CHARS);
        assert_eq!(bound_error("Worker.ScriptFailed"), "Worker.ScriptFailed");
    }
}
