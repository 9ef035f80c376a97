//! Detached component processes: started in their own session (so they
//! outlive the `capstan` command and no terminal signal reaches them), with
//! output in a log file and a pid file that records enough to recognise the
//! process later. A pid is only ever signalled after checking, in `/proc`,
//! that it is still the process we started (same start time, same program,
//! an argument inside the cluster's directory), so a reused pid is never
//! killed.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// How often process state is re-read while waiting.
const POLL: Duration = Duration::from_millis(50);

/// What a pid file records about a process we started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidRecord {
    /// The process id (also its process group and session id).
    pub pid: i32,
    /// The program it was started as (`argv[0]`).
    pub program: PathBuf,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field
    /// 22), which differs for any later process reusing the pid.
    pub start_time: u64,
}

/// How to start one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Absolute path of the program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// File stdout and stderr are appended to.
    pub log: PathBuf,
    /// Network namespace to run in (`/run/netns/<name>`), for the
    /// processes of a node; `None` runs in the caller's. Only the network
    /// namespace is entered: the node's containerd and kubelet must share
    /// the machine's mounts (the kubelet's volume mounts are what runc
    /// bind-mounts into containers), which `ip netns exec` would not give.
    pub netns: Option<PathBuf>,
}

/// The line written to a log before each start, so a log's latest run is
/// told apart from earlier ones.
pub const LOG_RUN_MARKER: &str = "--- capstan: starting ";

/// Starts `launch` in a new session, appending its output to its log
/// after a [`LOG_RUN_MARKER`] line, and returns what identifies it. The
/// caller writes the pid file.
pub fn spawn_detached(launch: &Launch) -> anyhow::Result<PidRecord> {
    if let Some(parent) = launch.log.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .with_context(|| format!("opening {}", launch.log.display()))?;
    writeln!(out, "{LOG_RUN_MARKER}{} ---", launch.program.display())
        .with_context(|| format!("writing {}", launch.log.display()))?;
    let err = out.try_clone()?;
    // Opened before fork: only setns(2) runs in the child.
    let netns = launch
        .netns
        .as_ref()
        .map(|path| {
            std::fs::File::open(path)
                .with_context(|| format!("opening network namespace {}", path.display()))
        })
        .transpose()?;
    let netns_fd = netns.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
    let mut cmd = Command::new(&launch.program);
    cmd.args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .current_dir("/");
    // SAFETY: setsid(2) and setns(2) are async-signal-safe and touch no
    // memory of the parent, which is all that may run between fork and
    // exec; the namespace's fd stays open until spawn() returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = netns_fd
                && libc::setns(fd, libc::CLONE_NEWNET) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // spawn() returns after the exec succeeded, so /proc shows the program.
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", launch.program.display()))?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    let start_time = read_stat(pid)
        .map(|s| s.start_time)
        .with_context(|| format!("{} exited at once", launch.program.display()))?;
    Ok(PidRecord {
        pid,
        program: launch.program.clone(),
        start_time,
    })
}

/// Writes a pid file.
pub fn write_pid_file(path: &Path, record: &PidRecord) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let text = serde_json::to_string(record).context("serializing pid record")?;
    crate::pki::write_file(path, text.as_bytes(), 0o644)
}

/// Reads a pid file; `None` when there is none (or it is unreadable junk,
/// which can only name a process we no longer know).
pub fn read_pid_file(path: &Path) -> Option<PidRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// True while the recorded process runs and still is the one we started:
/// not a zombie, same start time, same `argv[0]`, and an argument that is
/// `marker` (the cluster's directory) or contains a path below it.
pub fn is_ours(record: &PidRecord, marker: &Path) -> bool {
    if !is_alive(record) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", record.pid)) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    let program = record.program.as_os_str().as_encoded_bytes();
    if args.next() != Some(program) {
        return false;
    }
    // The directory itself or a path below it: `/c/a` must not match an
    // argument in `/c/ab`.
    let marker = marker.as_os_str().as_encoded_bytes();
    let mut below = marker.to_vec();
    below.push(b'/');
    args.any(|arg| arg == marker || arg.windows(below.len()).any(|w| w == below.as_slice()))
}

/// True while the recorded pid runs with the recorded start time. A zombie
/// whose threads have all exited counts as exited (it holds no files or
/// ports and only waits to be reaped); a zombie leader with threads still
/// tearing down does not, since those still hold its sockets.
pub fn is_alive(record: &PidRecord) -> bool {
    match read_stat(record.pid) {
        Some(s) if s.start_time == record.start_time => {
            s.state != 'Z' || live_threads(record.pid) > 1
        }
        _ => false,
    }
}

/// Entries in `/proc/<pid>/task`: the threads not yet released.
fn live_threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Stops a process we started: SIGTERM to its process group, then SIGKILL
/// once `grace` has passed, each only after [`is_ours`] confirmed it.
/// Returns false when it was not running.
pub fn stop(record: &PidRecord, marker: &Path, grace: Duration) -> anyhow::Result<bool> {
    if !is_ours(record, marker) {
        return Ok(false);
    }
    signal_group(record.pid, libc::SIGTERM);
    if wait_exit(record, grace) {
        return Ok(true);
    }
    if is_ours(record, marker) {
        signal_group(record.pid, libc::SIGKILL);
    }
    if wait_exit(record, Duration::from_secs(10)) {
        return Ok(true);
    }
    bail!(
        "{} (pid {}) did not exit after SIGKILL",
        record.program.display(),
        record.pid
    )
}

/// Waits up to `timeout` for the process to exit; true if it did.
pub fn wait_exit(record: &PidRecord, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !is_alive(record) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

fn signal_group(pid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    // The process leads its own group (setsid), so -pid reaches anything
    // it started too; fall back to the pid alone if the group is gone.
    unsafe {
        if libc::kill(-pid, signal) == -1 {
            libc::kill(pid, signal);
        }
    }
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    start_time: u64,
}

fn read_stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `pid (comm) state ... starttime ...`; `comm` may hold spaces and
/// parentheses, so fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state (field 3) comes field 4; starttime is field 22.
    let start_time = fields.nth(22 - 4)?.parse().ok()?;
    Some(Stat { state, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line =
            "123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                start_time: 98765
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn starts_detached_recognises_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let launch = Launch {
            program: PathBuf::from("/bin/sleep"),
            args: vec!["600".into()],
            env: vec![],
            log: dir.path().join("logs/sleep.log"),
            netns: None,
        };
        // `sleep 600` has no argument inside the marker directory.
        let other = spawn_detached(&launch).unwrap();
        assert!(is_alive(&other));
        assert!(!is_ours(&other, &marker));
        assert!(!stop(&other, &marker, Duration::from_secs(5)).unwrap());
        assert!(is_alive(&other), "a process that is not ours is left alone");
        signal_group(other.pid, libc::SIGKILL);
        assert!(wait_exit(&other, Duration::from_secs(10)));

        let launch = Launch {
            program: PathBuf::from("/bin/sh"),
            args: vec![
                "-c".into(),
                "trap '' TERM; sleep 600; : \"$0\"".into(),
                marker.clone().into(),
            ],
            env: vec![],
            log: dir.path().join("logs/sh.log"),
            netns: None,
        };
        let ours = spawn_detached(&launch).unwrap();
        let pid_file = dir.path().join("run/sh.pid");
        write_pid_file(&pid_file, &ours).unwrap();
        assert_eq!(read_pid_file(&pid_file), Some(ours.clone()));
        assert!(is_ours(&ours, &marker));
        let sibling = dir.path().join("mark");
        assert!(
            !is_ours(&ours, &sibling),
            "a prefix of the name is another directory"
        );
        // A different start time is a different process.
        let reused = PidRecord {
            start_time: ours.start_time + 1,
            ..ours.clone()
        };
        assert!(!is_ours(&reused, &marker));
        // It ignores SIGTERM, so this takes the SIGKILL path.
        assert!(stop(&ours, &marker, Duration::from_millis(300)).unwrap());
        assert!(!is_alive(&ours));
    }
}
