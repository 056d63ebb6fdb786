//! A process's memory as Linux reports it in `/proc/<pid>/status`: what the agent's log
//! shows at each cold-start stage, and what the benchmarks measure.
//!
//! ```
//! use calico_node::memory::{Memory, kib};
//!
//! // This process (None); `Some(pid)` reads another one.
//! if let Some(resident) = kib(None, Memory::Resident) {
//!     assert!(resident > 0);
//! }
//! ```

/// Which figure of `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Memory {
    /// Resident set size now (`VmRSS`).
    Resident,
    /// Peak resident set size (`VmHWM`).
    PeakResident,
}

impl Memory {
    fn field(self) -> &'static str {
        match self {
            Memory::Resident => "VmRSS:",
            Memory::PeakResident => "VmHWM:",
        }
    }
}

/// `which` of process `pid` (this process when `None`), in KiB; `None` where there is no
/// such process or no `/proc`.
pub fn kib(pid: Option<u32>, which: Memory) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(which.field()))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_resident_memory_and_a_peak_at_least_as_high() {
        let now = kib(None, Memory::Resident).expect("/proc/self/status");
        let peak = kib(None, Memory::PeakResident).expect("VmHWM");
        assert!(now > 0 && peak >= now, "{now} {peak}");
        assert_eq!(kib(Some(u32::MAX), Memory::Resident), None);
    }
}
