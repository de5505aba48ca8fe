//! The machine the numbers come from, and which core runs what.
//!
//! Every program under test runs on one core and the load generator on another, so the
//! generator never steals cycles from what it measures and every server figure is "what one core
//! can do". Programs are started through `taskset -c <core>`, which sets the affinity before the
//! program's first instruction, so a Tokio runtime sizes itself for one core (one worker
//! thread). The generator pins itself with `sched_setaffinity`.
//!
//! On a machine shared with other work (compilers, other benchmarks), a full run also raises the
//! priority of everything it measures, so the numbers describe the programs rather than their
//! neighbours; the report says how busy the cores were with other processes anyway. Linux
//! shares the CPU between sessions ("autogroups") before it looks at `nice` values inside one,
//! so the tool moves itself into a session of its own (the programs it starts inherit it) and
//! sets that group's `nice`.

use std::{io, path::Path, process::Command};

/// Which core runs the programs under test and which runs the load generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub programs: usize,
    pub generator: usize,
}

impl Placement {
    /// Programs on the first core, the generator on the second; on a one-core machine both
    /// share it (and the report says so).
    pub fn for_cores(cores: usize) -> Self {
        Self {
            programs: 0,
            generator: usize::from(cores >= 2),
        }
    }

    pub fn shared(&self) -> bool {
        self.programs == self.generator
    }
}

/// Cores the kernel has online (what `nproc` shows without affinity limits).
pub fn online_cores() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(cores).ok().filter(|c| *c > 0).unwrap_or(1)
}

/// Restricts the calling thread (and the threads it starts afterwards) to `core`.
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is a valid (empty) set; CPU_SET
    // writes inside it for any core below CPU_SETSIZE, which is checked first; the kernel only
    // reads the set we pass by pointer with its exact size.
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("core {core} is out of range"),
            ));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `program` to be run on `core` only. Its scheduling priority is inherited from this process
/// (see [`prioritise`]).
pub fn pinned_command(program: &Path, core: usize) -> Command {
    let mut command = Command::new("taskset");
    command.arg("--cpu-list").arg(core.to_string()).arg(program);
    command
}

/// Gives this process, and every process it starts afterwards, scheduling priority `nice`:
/// a new session (and so a scheduler autogroup of its own) whose group `nice` is set, and the
/// same `nice` for the calling thread, for kernels without autogroups. The tool then no longer
/// gets the terminal's Ctrl-C directly, so it asks to be sent SIGTERM when its parent (`cargo
/// run`, the shell) dies, and handles SIGTERM by stopping its programs.
///
/// Call before starting any thread. Fails when this process leads a process group already
/// (started directly from an interactive shell) or may not raise priorities.
pub fn prioritise(nice: i32) -> io::Result<()> {
    // SAFETY: setsid, prctl and setpriority act on the calling process/thread only and take
    // plain integers.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    match std::fs::write("/proc/self/autogroup", nice.to_string()) {
        Ok(()) => Ok(()),
        // Built without autogroups: the thread's nice is all there is.
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Fails with a clear message when `taskset` (util-linux) is missing.
pub fn check_taskset() -> io::Result<()> {
    let status = Command::new("taskset")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("taskset (util-linux) is needed: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other("taskset --version failed"))
    }
}

/// What the report says about the machine.
#[derive(Debug, Clone)]
pub struct MachineInfo {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_mib: u64,
}

impl MachineInfo {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self {
            cores: online_cores(),
            cpu_model: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            kernel: kernel.trim().to_owned(),
            memory_mib: mem_total_kib(&meminfo).unwrap_or(0) / 1024,
        }
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cores_split_programs_and_generator_and_one_core_is_shared() {
        assert_eq!(
            Placement::for_cores(2),
            Placement {
                programs: 0,
                generator: 1
            }
        );
        assert!(!Placement::for_cores(8).shared());
        assert!(Placement::for_cores(1).shared());
    }

    #[test]
    fn cpu_model_and_memory_are_read_from_proc_text() {
        let cpuinfo =
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(
            mem_total_kib("MemTotal:       24683960 kB\nMemFree: 1 kB\n"),
            Some(24683960)
        );
        let here = MachineInfo::read();
        assert!(here.cores >= 1);
        assert!(!here.kernel.is_empty());
    }

    #[test]
    fn a_pinned_thread_runs_only_on_its_core() {
        let core = online_cores() - 1;
        let seen = std::thread::spawn(move || {
            pin_current_thread(core).expect("pin");
            std::thread::available_parallelism().map(|n| n.get())
        })
        .join()
        .expect("thread");
        assert_eq!(seen.ok(), Some(1));
        assert!(pin_current_thread(1 << 20).is_err());
    }
}
