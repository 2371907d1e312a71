//! Wall-clock time and process facts from /proc, shared by the metrics and the status table.

/// Microseconds since the epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Resident set size of process `pid` in bytes (`VmRSS` of /proc/PID/status; 0 when it
/// cannot be read, e.g. the process has exited).
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| vm_rss_kib(&s))
        .unwrap_or(0)
        * 1024
}

fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        assert_eq!(vm_rss_kib("Name:\tx\nVmRSS:\t   1234 kB\n"), Some(1234));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
        assert!(rss_bytes(std::process::id()) > 0);
    }
}
