//! Upstream's image garbage collection: every five minutes, when the
//! filesystem images live on is fuller than `--image-gc-high-threshold`
//! percent, images no container uses (running or dead) are removed,
//! largest first, until usage is under `--image-gc-low-threshold`.
//! Pinned images and the sandbox image (which containerd 1.6 does not mark
//! pinned, and which a node without a registry could not get back) are
//! never removed.

use std::collections::HashSet;
use std::time::Duration;

use k8s_cri::v1 as cri;

use crate::cri::Cri;

/// Upstream's `ImageGCPeriod`.
pub const PERIOD: Duration = Duration::from_secs(300);

/// The thresholds, in percent of the image filesystem.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Collect when usage is at or above this.
    pub high: u8,
    /// Collect until usage is below this.
    pub low: u8,
}

/// Which images to remove to bring `used` of `capacity` bytes below the
/// low threshold: unused, unpinned images, largest first. Empty while
/// usage is under the high threshold.
pub fn plan(
    images: &[cri::Image],
    in_use: &HashSet<String>,
    used: u64,
    capacity: u64,
    t: Thresholds,
) -> Vec<String> {
    if capacity == 0 || used * 100 < u64::from(t.high) * capacity {
        return Vec::new();
    }
    let target = u64::from(t.low) * capacity / 100;
    let mut candidates: Vec<&cri::Image> = images
        .iter()
        .filter(|i| !i.pinned && !in_use.contains(&i.id))
        .collect();
    candidates.sort_by_key(|i| std::cmp::Reverse(i.size));
    let mut freed = 0u64;
    let mut out = Vec::new();
    for image in candidates {
        if used.saturating_sub(freed) < target {
            break;
        }
        freed += image.size;
        out.push(image.id.clone());
    }
    out
}

/// Bytes used and total of the filesystem at `path` (statvfs).
fn usage(path: &str) -> Option<(u64, u64)> {
    let c = std::ffi::CString::new(path).ok()?;
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-pointer;
    // statvfs(3) only writes `st` during the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let total = st.f_blocks * st.f_frsize;
    let free = st.f_bfree * st.f_frsize;
    Some((total.saturating_sub(free), total))
}

/// One collection: removes what [`plan`] picks.
pub async fn collect(cri: &Cri, t: Thresholds) -> anyhow::Result<usize> {
    let filesystems = cri.image_filesystems().await?;
    let Some((used, capacity)) = filesystems
        .iter()
        .filter_map(|f| f.fs_id.as_ref())
        .find_map(|id| usage(&id.mountpoint))
    else {
        return Ok(0);
    };
    let mut in_use: HashSet<String> = cri
        .list_containers(Default::default())
        .await?
        .into_iter()
        .map(|c| c.image_ref)
        .collect();
    let Some(sandbox_image) = cri.sandbox_image().await? else {
        anyhow::bail!("the runtime does not say which sandbox image it uses; not collecting");
    };
    if let Some(id) = cri.image_id(&sandbox_image).await? {
        in_use.insert(id);
    }
    let images = cri.list_images().await?;
    let remove = plan(&images, &in_use, used, capacity, t);
    for id in &remove {
        tracing::info!(image = %id, "removing an unused image: the image filesystem is over the high threshold");
        cri.remove_image(id).await?;
    }
    Ok(remove.len())
}

/// Collects every [`PERIOD`] (the first time right away); never returns.
pub async fn run(cri: Cri, t: Thresholds) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        if let Err(e) = collect(&cri, t).await {
            tracing::warn!("image garbage collection failed: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, size: u64, pinned: bool) -> cri::Image {
        cri::Image {
            id: id.into(),
            size,
            pinned,
            ..Default::default()
        }
    }

    #[test]
    fn unused_unpinned_images_go_largest_first_until_under_the_low_mark() {
        let images = vec![
            image("pause", 50, true),
            image("used", 400, false),
            image("small", 10, false),
            image("big", 300, false),
            image("mid", 100, false),
        ];
        let in_use = HashSet::from(["used".to_string()]);
        let t = Thresholds { high: 85, low: 80 };
        // 90% used of 1000: must get under 800.
        assert_eq!(
            plan(&images, &in_use, 900, 1000, t),
            vec!["big".to_string()]
        );
        // 84%: under the high mark, nothing happens.
        assert!(plan(&images, &in_use, 840, 1000, t).is_empty());
        // Everything unused may go, the pinned and used never.
        let all = plan(&images, &in_use, 1000, 1000, Thresholds { high: 0, low: 0 });
        assert_eq!(all, vec!["big", "mid", "small"]);
    }
}
