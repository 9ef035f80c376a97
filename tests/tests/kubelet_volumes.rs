//! Pod volumes on a real kubelet and containerd, checked from inside the
//! containers with `kubectl exec`: ConfigMap and Secret files (items,
//! modes, updates reaching a running pod), an emptyDir shared by an init
//! container and the app (and one in memory), hostPath, the Downward API,
//! a projected volume, and a PersistentVolumeClaim bound to a hostPath
//! PersistentVolume. Needs root, containerd, runc, the CNI plugins and
//! busybox-static.

use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::ControlPlane;
use capstan_tests::node::{BUSYBOX, Node};
use capstan_tests::wait;

#[tokio::test(flavor = "multi_thread")]
async fn volumes_show_up_in_containers_as_upstream_lays_them_out() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start(&cp, "vol-node", &["--sync-frequency=1s"]).await?;
    node.wait_ready(&cp.client().await?).await?;
    let host_dir = tempfile::tempdir()?;
    let host = host_dir.path().join("made-by-kubelet");
    let pv_dir = tempfile::tempdir()?;
    std::fs::write(
        pv_dir.path().join("claimed.txt"),
        "from the persistent volume\n",
    )?;
    let manifest = cp.write(
        "volumes.yaml",
        &format!(
            r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello, color: blue}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: local-pv}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: {pv}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: claim}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  volumeName: local-pv
  storageClassName: ""
---
apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: demo, tier: web}}
spec:
  nodeName: vol-node
  initContainers:
  - name: prepare
    image: {BUSYBOX}
    command: ["sh", "-c", "echo written by init > /shared/note"]
    volumeMounts: [{{name: shared, mountPath: /shared}}]
  containers:
  - name: main
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    volumeMounts:
    - {{name: config, mountPath: /etc/config}}
    - {{name: picked, mountPath: /etc/picked}}
    - {{name: secret, mountPath: /etc/secret, readOnly: true}}
    - {{name: shared, mountPath: /shared}}
    - {{name: memory, mountPath: /scratch}}
    - {{name: host, mountPath: /host}}
    - {{name: info, mountPath: /etc/podinfo}}
    - {{name: all, mountPath: /etc/all}}
    - {{name: data, mountPath: /data}}
  volumes:
  - name: config
    configMap: {{name: settings}}
  - name: picked
    configMap:
      name: settings
      items: [{{key: color, path: nested/colour.txt, mode: 0400}}]
  - name: secret
    secret: {{secretName: creds, defaultMode: 0600}}
  - name: shared
    emptyDir: {{}}
  - name: memory
    emptyDir: {{medium: Memory, sizeLimit: 16Mi}}
  - name: host
    hostPath: {{path: {host}, type: DirectoryOrCreate}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
  - name: all
    projected:
      sources:
      - configMap: {{name: settings, items: [{{key: greeting, path: greeting}}]}}
      - secret: {{name: creds}}
      - downwardAPI: {{items: [{{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
  - name: data
    persistentVolumeClaim: {{claimName: claim}}
"#,
            pv = pv_dir.path().display(),
            host = host.display(),
        ),
    )?;
    cp.kubectl(&["apply", "-f", &manifest])?;
    cp.kubectl(&["wait", "--for=condition=Ready", "pod/vols", "--timeout=90s"])
        .with_context(|| node.logs())?;
    let exec = |script: &str| cp.kubectl(&["exec", "vols", "-c", "main", "--", "sh", "-c", script]);

    assert_eq!(
        exec("cat /etc/config/greeting /etc/config/color; echo")?,
        "helloblue\n"
    );
    assert_eq!(exec("cat /etc/picked/nested/colour.txt")?, "blue");
    assert_eq!(
        exec("stat -L -c %a /etc/picked/nested/colour.txt")?,
        "400\n"
    );
    assert_eq!(exec("ls /etc/picked")?, "nested\n");
    assert_eq!(exec("cat /etc/secret/password")?, "s3cret");
    assert_eq!(exec("stat -L -c %a /etc/secret/password")?, "600\n");
    assert_eq!(exec("cat /shared/note")?, "written by init\n");
    let mounts = exec("grep ' /scratch ' /proc/mounts")?;
    assert!(mounts.starts_with("tmpfs /scratch tmpfs"), "{mounts}");
    exec("echo from the container > /host/out.txt")?;
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt"))?,
        "from the container\n"
    );
    assert_eq!(
        exec("cat /etc/podinfo/labels")?,
        "app=\"demo\"\ntier=\"web\""
    );
    assert_eq!(exec("cat /etc/podinfo/name")?, "vols");
    assert_eq!(
        exec("cat /etc/all/greeting; echo; cat /etc/all/password; echo; cat /etc/all/namespace")?,
        "hello\ns3cret\ndefault"
    );
    assert_eq!(
        exec("cat /data/claimed.txt")?,
        "from the persistent volume\n"
    );
    // A read-only mount refuses writes.
    assert!(exec("touch /etc/secret/new").is_err());

    // A ConfigMap update reaches the running container's files.
    cp.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ])?;
    wait::until(
        "the updated ConfigMap in the pod",
        Duration::from_secs(60),
        || async { (exec("cat /etc/config/color").ok()? == "green").then_some(()) },
    )
    .await?;

    // Deleting the pod removes its volume directories (hostPath and claim
    // contents are the user's and stay).
    let uid = cp.kubectl(&["get", "pod", "vols", "-o", "jsonpath={.metadata.uid}"])?;
    let pod_dir = node
        .pod_log_dir
        .parent()
        .context("node dir")?
        .join("kubelet/pods")
        .join(&uid);
    assert!(
        pod_dir
            .join("volumes/kubernetes.io~empty-dir/shared")
            .is_dir()
    );
    cp.kubectl(&["delete", "pod", "vols", "--wait=true", "--timeout=60s"])?;
    assert!(!pod_dir.exists(), "{} is left", pod_dir.display());
    assert!(host.join("out.txt").exists());
    assert!(pv_dir.path().join("claimed.txt").exists());
    Ok(())
}
