//! Taking a private containerd's node apart so nothing is left: pod
//! sandboxes removed through CRI (so the CNI plugin releases addresses and
//! deletes veths and network namespaces), runc containers killed, the shims
//! that outlive containerd killed, mounts detached, pod cgroups and the
//! bridge removed. Shared by the tests' [`super::containerd::Containerd`]
//! guard and `capstan delete cluster`, so both tear down the same way.
//!
//! Every step is best effort on its own (a step that finds nothing does
//! nothing), so a half-started or half-dead node is cleaned as far as it
//! can be.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::containerd::Options;

/// Where cgroup v1 hierarchies (and the unified one) are mounted.
const CGROUP_FS: &str = "/sys/fs/cgroup";

/// The steps that need containerd still running: every pod sandbox is
/// stopped and removed through CRI, then anything runc still runs under
/// our runc root is killed.
pub fn before_stop(opts: &Options) {
    remove_sandboxes(&opts.socket());
    kill_runc_containers(&opts.runc_root());
}

/// The steps after containerd exited: its shims killed, mounts under
/// `mounts_under` detached (the containerd directory, or a whole cluster
/// directory), its bridge and the veths on it deleted.
pub fn after_stop(opts: &Options, mounts_under: &Path) {
    kill_shims(&opts.socket());
    unmount_under(mounts_under);
    delete_bridge(&opts.bridge);
}

/// Removes every pod sandbox through CRI, so CNI tears the pod networks
/// down properly. Does nothing when containerd does not answer.
pub fn remove_sandboxes(socket: &Path) {
    let socket = socket.to_path_buf();
    // Callers may run inside a test's runtime, where blocking on another
    // runtime panics: use a thread of our own.
    let joined = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let cri = capstan_kubelet::cri::Cri::connect(&socket.to_string_lossy())?;
            let list = tokio::time::timeout(
                Duration::from_secs(10),
                cri.list_pod_sandboxes(Default::default()),
            )
            .await??;
            for s in list {
                let _ = tokio::time::timeout(Duration::from_secs(20), async {
                    let _ = cri.stop_pod_sandbox(&s.id).await;
                    let _ = cri.remove_pod_sandbox(&s.id).await;
                })
                .await;
            }
            anyhow::Ok(())
        })
    })
    .join();
    if let Ok(Err(e)) = joined {
        eprintln!("containerd teardown: removing sandboxes: {e:#}");
    }
}

/// Kills and deletes whatever runc still runs under `runc_root` (one
/// directory per containerd namespace).
pub fn kill_runc_containers(runc_root: &Path) {
    let Ok(entries) = std::fs::read_dir(runc_root) else {
        return;
    };
    for ns in entries.flatten() {
        let out = Command::new("runc")
            .arg("--root")
            .arg(ns.path())
            .args(["list", "-q"])
            .output();
        let Ok(out) = out else { continue };
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(ns.path())
                .args(["delete", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Kills the shims started by the containerd at `socket` (they outlive
/// it): the `containerd-shim-runc-v2` processes given that address.
pub fn kill_shims(socket: &Path) {
    let needle = socket.as_os_str().as_encoded_bytes();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|b| *b == 0);
        let is_shim = args
            .next()
            .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
        if is_shim && args.any(|a| a == needle) {
            // SAFETY: kill(2) with a pid read from /proc; no memory is
            // touched.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Mount points at `dir` or below it in `mountinfo` (deepest first),
/// with the kernel's octal escapes (`\040` for a space) decoded.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let dir = dir.to_string_lossy();
    let below = format!("{}/", dir.trim_end_matches('/'));
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|m| *m == dir || m.starts_with(&below))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    points.into_iter().map(PathBuf::from).collect()
}

fn unescape_mount_path(raw: &str) -> String {
    raw.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Detaches every mount at `dir` or below it (overlay rootfs, shm,
/// network namespace and volume mounts), deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for point in mounts_under(&info, dir) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&point)
            .stderr(Stdio::null())
            .status();
    }
}

/// Deletes bridge `name` and the veths attached to it. A pod whose
/// sandbox could not be removed through CRI (containerd had died) leaves
/// its veth until the kernel gets round to destroying its network
/// namespace; deleting it here makes the link gone when we return.
pub fn delete_bridge(name: &str) {
    let ports = Path::new("/sys/class/net").join(name).join("brif");
    if let Ok(entries) = std::fs::read_dir(ports) {
        for port in entries.flatten() {
            delete_link(&port.file_name().to_string_lossy());
        }
    }
    delete_link(name);
}

/// Deletes network link `name` if it exists (a veth's peer goes with it).
pub fn delete_link(name: &str) {
    if !Path::new("/sys/class/net").join(name).exists() {
        return;
    }
    let _ = Command::new("ip")
        .args(["link", "del", name])
        .stderr(Stdio::null())
        .status();
}

/// The directories of cgroup `parent` (an absolute cgroup path such as
/// `/capstan-1a2b3c4d`) in every mounted hierarchy that has it.
pub fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let relative = parent.trim_start_matches('/');
    if relative.is_empty() {
        return Vec::new();
    }
    let Ok(hierarchies) = std::fs::read_dir(CGROUP_FS) else {
        return Vec::new();
    };
    hierarchies
        .flatten()
        .map(|h| h.path().join(relative))
        .filter(|d| d.is_dir())
        .collect()
}

/// Removes cgroup `parent` and every cgroup below it in all hierarchies,
/// deepest first, waiting up to `timeout` for killed tasks to leave them
/// (a cgroup with tasks cannot be removed). Only directories are removed:
/// a cgroup's files go with its directory.
pub fn remove_cgroups(parent: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut left = Vec::new();
        for top in cgroup_dirs(parent) {
            let mut dirs = Vec::new();
            collect_dirs(&top, &mut dirs);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
            for d in dirs {
                if let Err(e) = std::fs::remove_dir(&d)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    left.push(format!("{}: {e}", d.display()));
                }
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("cannot remove cgroups {}", left.join(", "));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `dir` and every directory below it.
fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_matched_below_the_directory_only() {
        let info = "\
36 25 0:31 / /c/a rw - tmpfs tmpfs rw
37 25 0:32 / /c/a/state/x/rootfs rw - overlay overlay rw
38 25 0:33 / /c/ab/state/y rw - overlay overlay rw
39 25 0:34 / /c/a/with\\040space rw - tmpfs tmpfs rw
40 25 0:35 / /other rw - tmpfs tmpfs rw";
        assert_eq!(
            mounts_under(info, Path::new("/c/a")),
            vec![
                PathBuf::from("/c/a/state/x/rootfs"),
                PathBuf::from("/c/a/with space"),
                PathBuf::from("/c/a"),
            ]
        );
    }

    #[test]
    fn no_cgroup_dirs_for_an_empty_parent() {
        assert!(cgroup_dirs("/").is_empty());
        assert!(cgroup_dirs("").is_empty());
        assert!(cgroup_dirs("/capstan-no-such-cgroup-here").is_empty());
    }
}
