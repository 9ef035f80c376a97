//! Static pods (upstream's file source): every Pod manifest (YAML or JSON)
//! in `--pod-manifest-path` runs on this node without the apiserver's say,
//! named `<name>-<node>` with a uid hashed from the node, the file and the
//! manifest, and the `kubernetes.io/config.*` annotations. Each is
//! reflected into the API as a mirror pod (annotation
//! `kubernetes.io/config.mirror`, owned by the Node) that carries its
//! status; a deleted or outdated mirror pod is re-created, and the mirror of
//! a removed manifest is deleted. The directory is re-read every
//! `--file-check-frequency`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use tokio::sync::mpsc;

/// Annotation naming the static pod's hash on it and on its mirror.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Annotation marking a mirror pod (its value is the static pod's hash).
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
/// Annotation naming where a pod came from (`file`, `api`).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// Annotation with when the kubelet first saw the pod.
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";

/// A change of the static pod set.
#[derive(Debug)]
pub enum SourceEvent {
    /// A static pod to run (new or changed).
    Upsert(Box<Pod>),
    /// The static pod with this uid is gone from the directory.
    Remove(String),
}

/// Whether an API pod is a mirror pod (run from a manifest, not by us).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR))
}

/// Whether a pod came from a manifest file.
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE))
        .is_some_and(|s| s == "file")
}

fn fnv64(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = seed;
    for p in parts {
        for b in *p {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
        h = (h ^ 0xff).wrapping_mul(0x100000001b3);
    }
    h
}

/// Reads one manifest as upstream's file source does: defaults the
/// namespace, names it `<name>-<node>`, binds it to the node, gives it a
/// uid from the node, path and content, and tolerates every NoExecute
/// taint.
pub fn read_manifest(path: &Path, node: &str) -> Result<Pod> {
    let text = std::fs::read_to_string(path)?;
    let mut pod: Pod = if text.trim_start().starts_with('{') {
        serde_json::from_str(&text)?
    } else {
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    let name = pod
        .metadata
        .name
        .clone()
        .context("static pod manifest has no metadata.name")?;
    let seed = 0xcbf29ce484222325;
    let parts: [&[u8]; 3] = [
        node.as_bytes(),
        path.as_os_str().as_encoded_bytes(),
        text.as_bytes(),
    ];
    let uid = format!(
        "{:016x}{:016x}",
        fnv64(seed, &parts),
        fnv64(seed ^ 0x5bd1e995, &parts)
    );
    let meta = &mut pod.metadata;
    meta.name = Some(format!("{name}-{node}"));
    meta.namespace.get_or_insert_with(|| "default".into());
    meta.uid = Some(uid.clone());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.into(), uid);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_SEEN.into(), crate::time::now().0.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    spec.tolerations
        .get_or_insert_with(Vec::new)
        .push(Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        });
    Ok(pod)
}

/// Every manifest in `dir` (hidden files skipped), by uid.
pub fn read_dir(dir: &Path, node: &str) -> HashMap<String, Pod> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || !path.is_file() {
            continue;
        }
        match read_manifest(&path, node) {
            Ok(pod) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    out.insert(uid, pod);
                }
            }
            Err(e) => tracing::warn!(path = %path.display(), "skipping static pod manifest: {e:#}"),
        }
    }
    out
}

/// The mirror pod of a static pod.
fn mirror_of(pod: &Pod, node: &Node) -> Pod {
    let m = &pod.metadata;
    let mut annotations = m.annotations.clone().unwrap_or_default();
    let hash = annotations.get(CONFIG_HASH).cloned().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.into(), hash);
    Pod {
        metadata: ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            labels: m.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.metadata.name.clone().unwrap_or_default(),
                uid: node.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: pod.spec.clone(),
        status: None,
    }
}

/// Makes the API's mirror pods match the static pods: creates missing
/// ones, replaces outdated or deleting ones, deletes those of removed
/// manifests.
async fn sync_mirrors(
    client: &kube::Client,
    node_name: &str,
    pods: &HashMap<String, Pod>,
    removed: &[Pod],
) -> Result<()> {
    let node = Api::<Node>::all(client.clone()).get(node_name).await?;
    let delete = |api: Api<Pod>, mirror: Pod| async move {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: mirror.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let name = mirror.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(anyhow::Error::from(e)),
        }
    };
    for pod in removed {
        let api: Api<Pod> = Api::namespaced(
            client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(mirror) = api.get_opt(&name).await?
            && is_mirror(&mirror)
        {
            delete(api, mirror).await?;
        }
    }
    for pod in pods.values() {
        let api: Api<Pod> = Api::namespaced(
            client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let hash = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONFIG_HASH))
            .cloned();
        match api.get_opt(&name).await? {
            Some(mirror) => {
                let current = mirror
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(CONFIG_MIRROR))
                    .cloned();
                if current != hash || mirror.metadata.deletion_timestamp.is_some() {
                    tracing::info!(pod = %name, "replacing an outdated or deleted mirror pod");
                    delete(api, mirror).await?;
                }
            }
            None => {
                match api
                    .create(&PostParams::default(), &mirror_of(pod, &node))
                    .await
                {
                    Ok(_) => tracing::info!(pod = %name, "created mirror pod"),
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Watches `dir` every `every`, sending changes of the static pod set to
/// the pod manager and keeping mirror pods in step; never returns.
pub async fn run(
    dir: PathBuf,
    node_name: String,
    client: kube::Client,
    every: Duration,
    tx: mpsc::Sender<SourceEvent>,
) {
    let mut known: HashMap<String, Pod> = HashMap::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = read_dir(&dir, &node_name);
        let mut removed = Vec::new();
        for (uid, pod) in &known {
            if !now.contains_key(uid) {
                removed.push(pod.clone());
                if tx.send(SourceEvent::Remove(uid.clone())).await.is_err() {
                    return;
                }
            }
        }
        for (uid, pod) in &now {
            if !known.contains_key(uid) {
                tracing::info!(pod = %pod.metadata.name.as_deref().unwrap_or_default(), "static pod found");
                if tx
                    .send(SourceEvent::Upsert(Box::new(pod.clone())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        // Keep the first-seen annotation of pods already known.
        for (uid, pod) in now {
            known.entry(uid).or_insert(pod);
        }
        known.retain(|_, p| !removed.iter().any(|r| r.metadata.uid == p.metadata.uid));
        if let Err(e) = sync_mirrors(&client, &node_name, &known, &removed).await {
            tracing::warn!("syncing mirror pods failed: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_become_node_bound_pods_with_stable_uids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
        )
        .unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "not: a pod").unwrap();
        let pods = read_dir(dir.path(), "n1");
        assert_eq!(pods.len(), 1);
        let pod = pods.values().next().unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert!(is_static(pod));
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        assert_eq!(
            read_manifest(&path, "n1").unwrap().metadata.uid,
            Some(uid.clone())
        );
        assert_ne!(read_manifest(&path, "n2").unwrap().metadata.uid, Some(uid));
    }
}
