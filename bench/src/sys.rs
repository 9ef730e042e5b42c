//! Small measuring helpers: /proc, getrusage, medians, a seeded generator, the machine.

use serde::Serialize;

/// A `VmHWM:` / `VmRSS:` style field of `/proc/<pid>/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, field)
}

fn parse_status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Peak resident set size (`ru_maxrss`, KiB on Linux) of this process or of its largest
/// waited-for descendant.
pub fn maxrss_kib(children: bool) -> u64 {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } == 0 {
        u64::try_from(ru.ru_maxrss).unwrap_or(0)
    } else {
        0
    }
}

/// The machine's CPU time so far from `/proc/stat`'s first line, in clock ticks: (busy, all).
/// Busy is everything but idle and iowait.
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_ticks(&text)
}

fn parse_cpu_ticks(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    if v.len() < 8 {
        return None;
    }
    let all: u64 = v[..8].iter().sum();
    Some((all - v[3] - v[4], all))
}

/// The share of the machine's CPU busy between two [`cpu_ticks`] readings (0 to 1).
pub fn busy_share(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, a0), (b1, a1)) = (before?, after?);
    let all = a1.checked_sub(a0).filter(|&d| d > 0)?;
    Some(b1.saturating_sub(b0) as f64 / all as f64)
}

pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// SplitMix64: a small seeded generator for task durations (reproducible, no dependency).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub mem_total_mib: u64,
    pub os: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.into());
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, usize::from),
        cpu,
        mem_total_mib: parse_status_kib(&meminfo, "MemTotal").unwrap_or(0) / 1024,
        os,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_busy_share_leaves_out_idle_and_iowait() {
        let a = parse_cpu_ticks("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(a, (150, 1000));
        let b = parse_cpu_ticks("cpu  400 0 150 900 50 0 0 0 0 0\n").unwrap();
        // 400 more busy ticks out of 500: 80 %.
        assert_eq!(busy_share(Some(a), Some(b)), Some(0.8));
        assert_eq!(busy_share(Some(b), Some(b)), None);
        assert_eq!(parse_cpu_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn status_fields_and_medians() {
        let text = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t  100 kB\n";
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(100));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let mut r = SplitMix64::new(7);
        let xs: Vec<f64> = (0..1000).map(|_| r.uniform(1.0, 1.5)).collect();
        assert!(xs.iter().all(|x| (1.0..1.5).contains(x)));
        assert_eq!(SplitMix64::new(7).next_u64(), SplitMix64::new(7).next_u64());
    }
}
