//! Pod volumes on the node, as upstream's volume manager prepares them
//! before a pod's containers start, under
//! `<root-dir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`:
//! emptyDir (on disk, or tmpfs for `medium: Memory`), hostPath with its
//! type checks, configMap, secret, downwardAPI and projected volumes
//! (written atomically, see [`atomic`], and rewritten every
//! `--sync-frequency` so updates reach running pods), and
//! persistentVolumeClaims bound to hostPath or local PersistentVolumes.
//! Containers get them as CRI bind mounts ([`mounts`]).

pub mod atomic;
pub mod contents;

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Container, HostPathVolumeSource, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use kube::api::Api;

use crate::pods::env::PodFacts;
use contents::Fetch;

/// Why a pod's volumes could not be set up: the message of upstream's
/// `FailedMount` event (`MountVolume.SetUp failed for volume "v" : ...`).
#[derive(Debug, Clone, PartialEq)]
pub struct MountError(pub String);

/// The node's pod volumes.
pub struct Volumes {
    fetch: Fetch,
    root: PathBuf,
    resync: Duration,
    refreshed: Mutex<HashMap<String, Instant>>,
}

/// Host paths of a pod's volumes, by volume name.
pub type PodVolumes = HashMap<String, PathBuf>;

impl Volumes {
    /// Volumes under `root_dir`, with sourced contents refreshed every
    /// `resync` (upstream's `--sync-frequency`).
    pub fn new(client: kube::Client, root_dir: &Path, resync: Duration) -> Self {
        Volumes {
            fetch: Fetch { client },
            root: root_dir.to_path_buf(),
            resync,
            refreshed: Mutex::new(HashMap::new()),
        }
    }

    /// The uids of the pods with volume directories on this node (for
    /// removing those of pods that are gone).
    pub fn pod_uids(&self) -> Vec<String> {
        std::fs::read_dir(self.root.join("pods"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// `<root-dir>/pods/<uid>`: the pod's directory on the node (its
    /// volumes, its managed `/etc/hosts`), removed by [`Volumes::cleanup`].
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }

    fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(uid)
            .join("volumes")
            .join(format!("kubernetes.io~{plugin}"))
            .join(name)
    }

    /// Sets up every volume of `pod` (idempotent; sourced contents are
    /// rewritten when `--sync-frequency` has passed) and returns where
    /// each is on the host.
    pub async fn prepare(&self, pod: &Pod, facts: &PodFacts) -> Result<PodVolumes, MountError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let refresh = {
            let seen = self
                .refreshed
                .lock()
                .map(|m| m.get(&uid).copied())
                .unwrap_or(None);
            seen.is_none_or(|t| t.elapsed() >= self.resync)
        };
        let mut out = PodVolumes::new();
        for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let fail = |e: String| {
                MountError(format!(
                    "MountVolume.SetUp failed for volume {:?} : {e}",
                    v.name
                ))
            };
            let path = self
                .prepare_one(pod, &uid, facts, v, refresh)
                .await
                .map_err(fail)?;
            out.insert(v.name.clone(), path);
        }
        if refresh && let Ok(mut m) = self.refreshed.lock() {
            m.insert(uid, Instant::now());
        }
        Ok(out)
    }

    async fn prepare_one(
        &self,
        pod: &Pod,
        uid: &str,
        facts: &PodFacts,
        v: &Volume,
        refresh: bool,
    ) -> Result<PathBuf, String> {
        if let Some(e) = &v.empty_dir {
            let dir = self.volume_dir(uid, "empty-dir", &v.name);
            create_dir_mode(&dir, 0o777)?;
            if e.medium.as_deref() == Some("Memory") && !is_mount_point(&dir) {
                mount_tmpfs(&dir, e.size_limit.as_ref().map(|q| q.0.as_str()))?;
            }
            return Ok(dir);
        }
        if let Some(h) = &v.host_path {
            return host_path(h);
        }
        if let Some(claim) = &v.persistent_volume_claim {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            return self.claim_path(ns, &claim.claim_name).await;
        }
        let plugin = if v.config_map.is_some() {
            "configmap"
        } else if v.secret.is_some() {
            "secret"
        } else if v.downward_api.is_some() {
            "downward-api"
        } else {
            "projected"
        };
        let dir = self.volume_dir(uid, plugin, &v.name);
        if !refresh && dir.join("..data").exists() {
            return Ok(dir);
        }
        match contents::of_volume(&self.fetch, pod, facts, v).await {
            Some(Ok(files)) => {
                atomic::write(&dir, &files).map_err(|e| e.to_string())?;
                Ok(dir)
            }
            Some(Err(e)) => Err(e),
            None => Err("unsupported volume type on this node".into()),
        }
    }

    /// The host path of a claim's PersistentVolume (hostPath or local).
    async fn claim_path(&self, ns: &str, claim: &str) -> Result<PathBuf, String> {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.fetch.client.clone(), ns);
        let pvc = claims
            .get_opt(claim)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("persistentvolumeclaim {claim:?} not found"))?;
        let pv_name = pvc
            .spec
            .and_then(|s| s.volume_name)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| format!("persistentvolumeclaim {claim:?} is not bound"))?;
        let pvs: Api<PersistentVolume> = Api::all(self.fetch.client.clone());
        let pv = pvs
            .get_opt(&pv_name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("persistentvolume {pv_name:?} not found"))?;
        let spec = pv.spec.unwrap_or_default();
        if let Some(h) = &spec.host_path {
            return host_path(&HostPathVolumeSource {
                path: h.path.clone(),
                type_: h.type_.clone(),
            });
        }
        if let Some(local) = &spec.local {
            let path = PathBuf::from(&local.path);
            return if path.exists() {
                Ok(path)
            } else {
                Err(format!("path {:?} does not exist", local.path))
            };
        }
        Err(format!(
            "persistentvolume {pv_name:?} is neither hostPath nor local"
        ))
    }

    /// Unmounts and removes everything of pod `uid`'s volumes (hostPath
    /// and claim contents are the user's and stay).
    pub fn cleanup(&self, uid: &str) {
        let dir = self.pod_dir(uid);
        let empty_dirs = dir.join("volumes").join("kubernetes.io~empty-dir");
        for entry in std::fs::read_dir(&empty_dirs)
            .into_iter()
            .flatten()
            .flatten()
        {
            if is_mount_point(&entry.path()) {
                unmount(&entry.path());
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(pod_uid = %uid, "removing the pod's volumes failed: {e}");
        }
        if let Ok(mut m) = self.refreshed.lock() {
            m.remove(uid);
        }
    }
}

fn create_dir_mode(dir: &Path, mode: u32) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))
}

/// A hostPath after upstream's type checks (creating what `*OrCreate`
/// asks for).
fn host_path(h: &HostPathVolumeSource) -> Result<PathBuf, String> {
    let path = PathBuf::from(&h.path);
    let meta = std::fs::metadata(&path);
    let kind = h.type_.as_deref().unwrap_or("");
    let failed = |what: &str| {
        Err(format!(
            "hostPath type check failed: {} is not a {what}",
            h.path
        ))
    };
    match kind {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                create_dir_mode(&path, 0o755)?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return failed("directory");
            }
        }
        "Directory" => {
            if !meta.is_ok_and(|m| m.is_dir()) {
                return failed("directory");
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("creating {}: {e}", h.path))?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                return failed("file");
            }
        }
        "File" => {
            if !meta.is_ok_and(|m| m.is_file()) {
                return failed("file");
            }
        }
        "Socket" => {
            if !meta.is_ok_and(|m| m.file_type().is_socket()) {
                return failed("socket file");
            }
        }
        "CharDevice" => {
            if !meta.is_ok_and(|m| m.file_type().is_char_device()) {
                return failed("character device");
            }
        }
        "BlockDevice" => {
            if !meta.is_ok_and(|m| m.file_type().is_block_device()) {
                return failed("block device");
            }
        }
        other => return Err(format!("unsupported hostPath type {other:?}")),
    }
    Ok(path)
}

/// Whether `dir` is the root of a mount (its device differs from its
/// parent's).
fn is_mount_point(dir: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (std::fs::metadata(dir), dir.parent().map(std::fs::metadata))
    else {
        return false;
    };
    me.dev() != parent.dev()
}

fn c_path(p: &Path) -> Result<std::ffi::CString, String> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())
}

/// Mounts a tmpfs (with `size=` from `sizeLimit`) for a memory emptyDir.
fn mount_tmpfs(dir: &Path, size_limit: Option<&str>) -> Result<(), String> {
    let target = c_path(dir)?;
    let source = c_path(Path::new("tmpfs"))?;
    let fstype = source.clone();
    let mut options = "mode=0777".to_string();
    if let Some(bytes) = size_limit.and_then(capstan_component_helpers::quantity::parse_milli) {
        options.push_str(&format!(",size={}", bytes / 1000));
    }
    let data = std::ffi::CString::new(options).map_err(|e| e.to_string())?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the
    // call; mount(2) reads them only during the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mounting tmpfs at {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn unmount(dir: &Path) {
    let Ok(target) = c_path(dir) else { return };
    // SAFETY: `target` is a NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
        tracing::warn!(path = %dir.display(), "unmounting failed: {}", std::io::Error::last_os_error());
    }
}

/// The CRI mounts of container `c`: each `volumeMount` as a bind mount of
/// its volume's host path (or `subPath` in it, created when missing).
pub fn mounts(c: &Container, volumes: &PodVolumes) -> Result<Vec<cri::Mount>, String> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = volumes
            .get(&m.name)
            .ok_or_else(|| format!("volume {:?} not found for mount {:?}", m.name, m.mount_path))?;
        let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            None => base.clone(),
            Some(sub) => {
                if !atomic::valid_path(sub) {
                    return Err(format!("invalid subPath {sub:?}"));
                }
                let p = base.join(sub);
                if std::fs::symlink_metadata(&p).is_err() {
                    create_dir_mode(&p, 0o755)?;
                }
                p
            }
        };
        let propagation = match m.mount_propagation.as_deref() {
            Some("HostToContainer") => cri::MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => cri::MountPropagation::PropagationBidirectional,
            _ => cri::MountPropagation::PropagationPrivate,
        };
        out.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.to_string_lossy().into_owned(),
            readonly: m.read_only.unwrap_or(false),
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_types_are_checked_and_created() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let made = dir.path().join("made");
        let src = |path: &Path, kind: &str| HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: Some(kind.to_string()),
        };
        host_path(&src(&made, "DirectoryOrCreate"))?;
        assert!(made.is_dir());
        let err = host_path(&src(&made, "File")).err().unwrap_or_default();
        assert!(err.ends_with("is not a file"), "{err}");
        let file = dir.path().join("f");
        host_path(&src(&file, "FileOrCreate"))?;
        assert!(file.is_file());
        assert!(host_path(&src(&dir.path().join("nope"), "Directory")).is_err());
        Ok(())
    }

    #[test]
    fn mounts_bind_volumes_and_sub_paths() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "volumeMounts": [
                {"name": "data", "mountPath": "/data", "readOnly": true},
                {"name": "data", "mountPath": "/logs", "subPath": "logs"},
            ]
        }))
        .map_err(|e| e.to_string())?;
        let vols = PodVolumes::from([("data".to_string(), dir.path().to_path_buf())]);
        let m = mounts(&c, &vols)?;
        assert_eq!(m.len(), 2);
        assert!(m[0].readonly);
        assert!(dir.path().join("logs").is_dir());
        let missing = PodVolumes::new();
        assert!(mounts(&c, &missing).is_err());
        Ok(())
    }
}
