//! What the machine has, read from the kernel: CPUs, memory, the
//! filesystem under the kubelet's root directory, the kernel and OS
//! release, and how close each is to running out (for the pressure
//! conditions).

use std::path::Path;

/// Resource totals and free amounts of the machine, sampled once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: u64,
    /// `MemTotal` in bytes.
    pub memory_bytes: u64,
    /// `MemAvailable` in bytes.
    pub memory_available_bytes: u64,
    /// Size of the filesystem holding the root directory, in bytes.
    pub fs_bytes: u64,
    /// Bytes available to unprivileged users on it.
    pub fs_available_bytes: u64,
    /// Processes running now and the kernel's pid limit.
    pub processes: u64,
    /// `kernel.pid_max`.
    pub pid_max: u64,
}

/// Upstream's hard eviction threshold `memory.available<100Mi`.
pub const MEMORY_AVAILABLE_MIN: u64 = 100 * 1024 * 1024;
/// Upstream's hard eviction threshold `nodefs.available<10%` (percent).
pub const NODEFS_AVAILABLE_MIN_PERCENT: u64 = 10;

fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Machine {
    /// Samples the machine; `root_dir` names the filesystem whose size is
    /// the node's ephemeral storage.
    pub fn sample(root_dir: &Path) -> Self {
        // SAFETY: sysconf has no memory effects.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u64;
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let (fs_bytes, fs_available_bytes) = statvfs(root_dir).unwrap_or((0, 0));
        let processes = std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                    .count() as u64
            })
            .unwrap_or(0);
        let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(32768);
        Machine {
            cpus,
            memory_bytes: meminfo_bytes(&meminfo, "MemTotal:").unwrap_or(0),
            memory_available_bytes: meminfo_bytes(&meminfo, "MemAvailable:").unwrap_or(0),
            fs_bytes,
            fs_available_bytes,
            processes,
            pid_max,
        }
    }

    /// Below upstream's memory eviction threshold.
    pub fn memory_pressure(&self) -> bool {
        self.memory_available_bytes < MEMORY_AVAILABLE_MIN
    }

    /// Below upstream's nodefs eviction threshold.
    pub fn disk_pressure(&self) -> bool {
        self.fs_bytes > 0
            && self.fs_available_bytes * 100 < self.fs_bytes * NODEFS_AVAILABLE_MIN_PERCENT
    }

    /// Fewer than 10% of pids left (upstream's `pid.available` signal).
    pub fn pid_pressure(&self) -> bool {
        self.processes * 10 > self.pid_max * 9
    }
}

/// (size, available) in bytes of the filesystem holding `path` (the
/// nearest existing ancestor when it does not exist yet).
pub fn statvfs(path: &Path) -> Option<(u64, u64)> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is a valid
    // NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}

/// The kernel release (`uname -r`).
pub fn kernel_version() -> String {
    // SAFETY: a zeroed utsname is a valid out-parameter for uname(2).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    // SAFETY: uname NUL-terminates its fields.
    unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// `PRETTY_NAME` from `/etc/os-release`, as upstream's `osImage`.
pub fn os_image() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Unknown".into())
}

/// The GOARCH name of this machine, as upstream reports `architecture`.
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A trimmed one-line file, or empty (machine-id, boot_id, product_uuid).
pub fn read_id(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The machine's hostname, lowercased as upstream's node name.
pub fn hostname() -> String {
    read_id("/proc/sys/kernel/hostname").to_lowercase()
}

/// The address of the interface the default route leaves through (no
/// packet is sent: a UDP socket is only connected); loopback otherwise.
pub fn detect_node_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.255.255.255:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_has_cpus_memory_and_a_filesystem() {
        let m = Machine::sample(Path::new("/nonexistent/kubelet"));
        assert!(m.cpus >= 1);
        assert!(m.memory_bytes > m.memory_available_bytes / 2);
        assert!(m.fs_bytes > 0);
        assert!(!kernel_version().is_empty());
    }

    #[test]
    fn meminfo_lines_are_kilobytes() {
        let text = "MemTotal:        2048 kB\nMemAvailable:    1024 kB\n";
        assert_eq!(meminfo_bytes(text, "MemTotal:"), Some(2048 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable:"), Some(1024 * 1024));
    }
}
