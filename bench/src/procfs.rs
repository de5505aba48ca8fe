//! What the kernel knows about a process: the CPU time it has used (user + system, every thread,
//! from `/proc/<pid>/stat`) and its resident memory (`VmRSS` and the peak `VmHWM`, from
//! `/proc/<pid>/status`); and how busy each core was (`/proc/stat`), so a run can tell how much
//! of "its" cores other processes took.

use std::{io, sync::OnceLock, time::Duration};

/// CPU time used so far by process `pid` (all its threads, user and system).
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&text).ok_or_else(|| malformed("stat", pid))?;
    Ok(ticks_to_duration(ticks))
}

/// Resident memory of process `pid` now, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// The highest resident memory process `pid` has had, in bytes.
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

/// How long core `core` has been busy (anything but idle and I/O wait, including interrupts and
/// time the hypervisor stole) since boot.
pub fn core_busy(core: usize) -> io::Result<Duration> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let ticks = parse_core_busy_ticks(&text, core).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no cpu{core} line in /proc/stat"),
        )
    })?;
    Ok(ticks_to_duration(ticks))
}

fn parse_core_busy_ticks(stat: &str, core: usize) -> Option<u64> {
    let label = format!("cpu{core}");
    let line = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(label.as_str()))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is already
    // counted in user and nice.
    let (idle, iowait) = (*fields.get(3)?, *fields.get(4)?);
    let total: u64 = fields.iter().take(8).sum();
    Some(total - idle - iowait)
}

fn status_kib(pid: u32, key: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&text, key).ok_or_else(|| malformed("status", pid))
}

fn malformed(file: &str, pid: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected format of /proc/{pid}/{file}"),
    )
}

/// `utime + stime` in clock ticks. The command name (field 2) is in parentheses and may itself
/// contain spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state(3) ppid(4) … utime(14) stime(15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn ticks_to_duration(ticks: u64) -> Duration {
    static TICKS_PER_SECOND: OnceLock<u64> = OnceLock::new();
    let per_second = *TICKS_PER_SECOND.get_or_init(|| {
        // SAFETY: sysconf only reads a system constant.
        let value = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(value).ok().filter(|v| *v > 0).unwrap_or(100)
    });
    Duration::from_nanos(ticks.saturating_mul(1_000_000_000) / per_second)
}

/// CPU time of several processes and busy time of several cores, at one moment.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    pub at: std::time::Instant,
    pub cpu: Vec<Duration>,
    pub cores: Vec<Duration>,
}

/// What happened between two snapshots.
#[derive(Debug, Clone)]
pub struct CpuDelta {
    /// CPU used by each process, in the order of the pids.
    pub processes: Vec<Duration>,
    /// Busy time of each core, in the order of the cores.
    pub cores: Vec<Duration>,
    pub wall: Duration,
}

impl CpuSnapshot {
    /// Reads every pid's CPU time (a process that has gone reads as zero) and every core's busy
    /// time (zero when unreadable).
    pub fn take(pids: &[u32], cores: &[usize]) -> Self {
        Self {
            at: std::time::Instant::now(),
            cpu: pids
                .iter()
                .map(|pid| cpu_time(*pid).unwrap_or_default())
                .collect(),
            cores: cores
                .iter()
                .map(|core| core_busy(*core).unwrap_or_default())
                .collect(),
        }
    }

    /// What was used between `earlier` and `self`.
    pub fn since(&self, earlier: &CpuSnapshot) -> CpuDelta {
        let delta = |now: &[Duration], then: &[Duration]| {
            now.iter()
                .zip(then)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect()
        };
        CpuDelta {
            processes: delta(&self.cpu, &earlier.cpu),
            cores: delta(&self.cores, &earlier.cores),
            wall: self.at.saturating_duration_since(earlier.at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a process can choose.
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    1234 56 0 0 20 0 3 0 99 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(1234 + 56));
        assert_eq!(parse_stat_ticks("4242 (x) S 1"), None);
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn core_busy_time_leaves_out_idle_and_io_wait() {
        let stat = "cpu  9 9 9 9 9 9 9 9 0 0\n\
                    cpu0 100 20 30 1000 40 5 6 7 0 0\n\
                    cpu1 1 2 3 4 5 6 7 8 9 10\n\
                    intr 12345\n";
        assert_eq!(
            parse_core_busy_ticks(stat, 0),
            Some(100 + 20 + 30 + 5 + 6 + 7)
        );
        assert_eq!(parse_core_busy_ticks(stat, 1), Some(1 + 2 + 3 + 6 + 7 + 8));
        assert_eq!(parse_core_busy_ticks(stat, 2), None);
        assert!(core_busy(0).is_ok());
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let status = "Name:\tgateway\nVmHWM:\t   12000 kB\nVmRSS:\t    9876 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(9876));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(12000));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("stat");
        // Burn a little CPU, more than one clock tick.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_time(pid).expect("stat");
        assert!(after > before, "{before:?} -> {after:?}");
        let rss = rss_bytes(pid).expect("status");
        assert!(rss > 1024 * 1024, "{rss}");
        assert!(peak_rss_bytes(pid).expect("status") >= rss);
        assert!(cpu_time(u32::MAX).is_err());
    }
}
