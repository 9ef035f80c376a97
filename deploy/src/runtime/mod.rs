//! A container runtime for a node: a private containerd configured as these
//! machines need it ([`containerd`]) and the images it runs without a
//! registry ([`images`]). The local-cluster launcher and the end-to-end
//! tests start nodes with it.

pub mod containerd;
pub mod images;

/// Detaches every mount at or under `dir`, deepest first (overlay rootfs,
/// network namespaces, tmpfs volumes), so the directory can be removed.
pub fn unmount_under(dir: &std::path::Path) {
    let prefix = dir.to_string_lossy().into_owned();
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(|m| m.replace("\\040", " "))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = std::process::Command::new("umount")
            .args(["-l", &p])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
