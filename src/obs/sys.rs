//! Process figures for INFO: resident memory and CPU time.

/// Resident set size in bytes, from /proc (Linux); 0 elsewhere.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU seconds: (system, user) of this process or of its waited-for children.
pub fn cpu_seconds(children: bool) -> (f64, f64) {
    let who = if children {
        libc::RUSAGE_CHILDREN
    } else {
        libc::RUSAGE_SELF
    };
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(usage.ru_stime), secs(usage.ru_utime))
}

/// Redis's `bytesToHuman`: `1.50M`, `812.00K`, `3B`.
pub fn human_bytes(b: u64) -> String {
    let f = b as f64;
    if b < 1024 {
        format!("{b}B")
    } else if f < 1024.0 * 1024.0 {
        format!("{:.2}K", f / 1024.0)
    } else if f < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", f / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", f / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_are_readable() {
        // Spin until the kernel has charged this process some CPU time.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_seconds(false).1 == 0.0 && start.elapsed().as_secs() < 5 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let (sys, user) = cpu_seconds(false);
        assert!(sys >= 0.0 && user > 0.0, "{x}");
        assert_eq!(human_bytes(3), "3B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.00M");
    }
}
