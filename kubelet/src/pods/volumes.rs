//! Pod volumes the kubelet can provide without a volume plugin, laid out
//! as upstream lays them out under `<root-dir>/pods/<uid>/volumes/`:
//! `emptyDir` (a directory, or a tmpfs for `medium: Memory`), `hostPath`
//! (with its `type` checks and `*OrCreate`), `downwardAPI` (pod fields and
//! container resources as files), and `configMap` / `secret`
//! (keys or `items` written as files with `defaultMode`/`mode`, replaced
//! atomically, refreshed when a container starts and every
//! `--sync-frequency` while the pod runs, so updates reach running
//! containers). Containers get them as CRI mounts from
//! their `volumeMounts` (`subPath`, `readOnly`).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use super::env::{PodFacts, Sources, field_ref, resource_field_ref};

/// `<root>/pods/<uid>`, the pod's own directory.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

fn volume_dir(root: &Path, uid: &str, plugin: &str, name: &str) -> PathBuf {
    pod_dir(root, uid)
        .join("volumes")
        .join(format!("kubernetes.io~{plugin}"))
        .join(name)
}

fn is_mounted(path: &Path) -> bool {
    let p = path.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&*p))
}

fn mount_tmpfs(path: &Path) -> Result<(), String> {
    if is_mounted(path) {
        return Ok(());
    }
    let target =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let fstype = c"tmpfs";
    // SAFETY: mount(2) with valid NUL-terminated strings and no data.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mounting tmpfs at {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn write_files(
    dir: &Path,
    data: &BTreeMap<String, String>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    what: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let files: Vec<(String, String, i32)> = match items {
        Some(items) => {
            let mut out = Vec::new();
            for i in items {
                let v = data
                    .get(&i.key)
                    .ok_or_else(|| format!("configuration key {:?} not found in {what}", i.key))?;
                out.push((i.path.clone(), v.clone(), i.mode.unwrap_or(default_mode)));
            }
            out
        }
        None => data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect(),
    };
    let mut written = std::collections::HashSet::new();
    for (rel, content, mode) in files {
        if rel.split('/').any(|part| part == "..") {
            return Err(format!("invalid path {rel:?} in {what}"));
        }
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let unchanged = std::fs::read(&path).is_ok_and(|old| old == content.as_bytes())
            && std::fs::metadata(&path)
                .is_ok_and(|m| m.permissions().mode() & 0o777 == mode as u32 & 0o777);
        if !unchanged {
            // Write beside it and rename, so a reader in the container
            // sees the old file or the new one, never half of one.
            let tmp = path.with_file_name(format!(
                ".{}.tmp",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ));
            std::fs::write(&tmp, &content).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode as u32 & 0o777))
                .map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        }
        written.insert(path);
    }
    remove_unlisted(dir, &written);
    Ok(())
}

/// Removes files under `dir` that are no longer among `keep` (a key
/// deleted from the ConfigMap or Secret).
fn remove_unlisted(dir: &Path, keep: &std::collections::HashSet<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_unlisted(&path, keep);
        } else if !keep.contains(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

async fn prepare_one(
    root: &Path,
    pod: &Pod,
    v: &Volume,
    facts: &PodFacts,
    sources: &impl Sources,
) -> Result<Option<PathBuf>, String> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(e) = &v.empty_dir {
        let dir = volume_dir(root, uid, "empty-dir", &v.name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| e.to_string())?;
        if e.medium.as_deref() == Some("Memory") {
            mount_tmpfs(&dir)?;
        }
        return Ok(Some(dir));
    }
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        match h.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => std::fs::create_dir_all(&path).map_err(|e| e.to_string())?,
            "FileOrCreate" if !path.exists() => {
                std::fs::write(&path, "").map_err(|e| e.to_string())?;
            }
            "Directory" if !path.is_dir() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a directory",
                    h.path
                ));
            }
            "File" if !path.is_file() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a file",
                    h.path
                ));
            }
            _ => {}
        }
        return Ok(Some(path));
    }
    if let Some(c) = &v.config_map {
        let dir = volume_dir(root, uid, "configmap", &v.name);
        let data = sources.config_map(ns, &c.name).await?;
        let what = format!("ConfigMap {ns}/{}", c.name);
        match data {
            Some(data) => write_files(
                &dir,
                &data,
                c.items.as_ref(),
                c.default_mode.unwrap_or(0o644),
                &what,
            )?,
            None if c.optional.unwrap_or(false) => {
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?
            }
            None => return Err(format!("configmap {:?} not found", c.name)),
        }
        return Ok(Some(dir));
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let dir = volume_dir(root, uid, "secret", &v.name);
        let data = sources.secret(ns, &name).await?;
        let what = format!("Secret {ns}/{name}");
        match data {
            Some(data) => write_files(
                &dir,
                &data,
                s.items.as_ref(),
                s.default_mode.unwrap_or(0o644),
                &what,
            )?,
            None if s.optional.unwrap_or(false) => {
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?
            }
            None => return Err(format!("secret {name:?} not found")),
        }
        return Ok(Some(dir));
    }
    if let Some(d) = &v.downward_api {
        let dir = volume_dir(root, uid, "downward-api", &v.name);
        let default_mode = d.default_mode.unwrap_or(0o644);
        let mut data = BTreeMap::new();
        let mut items = Vec::new();
        for item in d.items.iter().flatten() {
            let value = if let Some(f) = &item.field_ref {
                field_ref(pod, facts, &f.field_path).map_err(|e| e.0)?
            } else if let Some(r) = &item.resource_field_ref {
                let name = r.container_name.as_deref().unwrap_or_default();
                let c = pod
                    .spec
                    .iter()
                    .flat_map(|s| s.containers.iter())
                    .find(|c| c.name == name)
                    .ok_or_else(|| format!("container {name:?} not found"))?;
                let divisor = r.divisor.as_ref().map(|q| q.0.as_str());
                resource_field_ref(c, facts, &r.resource, divisor).map_err(|e| e.0)?
            } else {
                continue;
            };
            data.insert(item.path.clone(), value);
            items.push(KeyToPath {
                key: item.path.clone(),
                path: item.path.clone(),
                mode: item.mode,
            });
        }
        let what = format!("downwardAPI volume {}", v.name);
        write_files(&dir, &data, Some(&items), default_mode, &what)?;
        return Ok(Some(dir));
    }
    // Volume types this kubelet does not provide yet are left out.
    Ok(None)
}

/// Sets up every volume of `pod` it can; returns the host path of each by
/// volume name, or upstream-style `MountVolume.SetUp failed` text.
pub async fn prepare(
    root: &Path,
    pod: &Pod,
    facts: &PodFacts,
    sources: &impl Sources,
) -> Result<HashMap<String, PathBuf>, String> {
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        match prepare_one(root, pod, v, facts, sources).await {
            Ok(Some(path)) => {
                out.insert(v.name.clone(), path);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "MountVolume.SetUp failed for volume {:?} : {e}",
                    v.name
                ));
            }
        }
    }
    Ok(out)
}

/// The CRI mounts of `c`'s `volumeMounts` over the prepared volumes.
pub fn mounts(c: &Container, volumes: &HashMap<String, PathBuf>) -> Vec<cri::Mount> {
    c.volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| {
            let base = volumes.get(&m.name)?;
            let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => {
                    let p = base.join(sub);
                    if !p.exists() {
                        let _ = std::fs::create_dir_all(&p);
                    }
                    p
                }
                None => base.clone(),
            };
            Some(cri::Mount {
                container_path: m.mount_path.clone(),
                host_path: host.to_string_lossy().into_owned(),
                readonly: m.read_only.unwrap_or(false),
                ..Default::default()
            })
        })
        .collect()
}

/// Unmounts and removes the pod's directory once its containers are gone.
pub fn cleanup(root: &Path, uid: &str) {
    let dir = pod_dir(root, uid);
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.clone()) {
            // SAFETY: umount2(2) with a valid NUL-terminated path.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), "removing the pod directory failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Maps;
    impl Sources for Maps {
        async fn config_map(
            &self,
            _: &str,
            name: &str,
        ) -> Result<Option<BTreeMap<String, String>>, String> {
            Ok((name == "cm")
                .then(|| BTreeMap::from([("a.conf".into(), "A".into()), ("b".into(), "B".into())])))
        }
        async fn secret(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<BTreeMap<String, String>>, String> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn volumes_are_laid_out_and_mounted_as_upstream() {
        let root = tempfile::tempdir().unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x", "tier": "web"}},
            "spec": {
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "conf", "configMap": {"name": "cm", "items": [{"key": "a.conf", "path": "sub/a.conf", "mode": 0o600}]}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    ]}},
                ],
                "containers": [{"name": "c", "volumeMounts": [
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "conf", "mountPath": "/etc/app", "readOnly": true},
                ]}],
            }
        }))
        .unwrap();
        let vols = prepare(root.path(), &pod, &PodFacts::default(), &Maps)
            .await
            .unwrap();
        let scratch = &vols["scratch"];
        assert!(scratch.ends_with("pods/u1/volumes/kubernetes.io~empty-dir/scratch"));
        let conf = &vols["conf"];
        assert_eq!(
            std::fs::read_to_string(conf.join("sub/a.conf")).unwrap(),
            "A"
        );
        assert!(!conf.join("b").exists());
        let mode = std::fs::metadata(conf.join("sub/a.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let info = &vols["info"];
        assert_eq!(std::fs::read_to_string(info.join("name")).unwrap(), "p");
        assert_eq!(
            std::fs::read_to_string(info.join("labels")).unwrap(),
            "app=\"x\"\ntier=\"web\""
        );
        let m = mounts(&pod.spec.as_ref().unwrap().containers[0], &vols);
        assert_eq!(m.len(), 2);
        assert!(m[1].readonly);
        cleanup(root.path(), "u1");
        assert!(!pod_dir(root.path(), "u1").exists());
    }
}
