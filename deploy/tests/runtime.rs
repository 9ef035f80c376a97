//! The private containerd of `runtime::containerd` with the images of
//! `runtime::images`: it runs a pod sandbox with a CNI address and a
//! busybox container through CRI, and dropping it leaves no process,
//! mount or bridge behind. Needs root and containerd, runc,
//! containernetworking-plugins and busybox-static installed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use capstan::runtime::containerd::{Containerd, Options};
use capstan::runtime::images;
use capstan_kubelet::cri::Cri;
use k8s_cri::v1 as cri;

async fn until<T, F: AsyncFnMut() -> Option<T>>(what: &str, mut f: F) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn leftovers(dir: &std::path::Path, socket: &str, bridge: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_string_lossy();
    found.extend(
        mounts
            .lines()
            .filter(|l| l.contains(&*d))
            .map(|l| format!("mount {l}")),
    );
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(socket) || (cmd.starts_with("containerd ") && cmd.contains(&*d)) {
                found.push(format!("process {cmd}"));
            }
        }
    }
    if std::path::Path::new("/sys/class/net").join(bridge).exists() {
        found.push(format!("bridge {bridge}"));
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_containerd_runs_a_pod_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::new(&dir.path().join("node"), images::PAUSE_IMAGE);
    let socket = opts.socket().to_string_lossy().into_owned();
    let bridge = opts.bridge.clone();
    let containerd = Containerd::start(opts).unwrap();
    images::load_base_images(&containerd.socket(), &dir.path().join("images")).unwrap();
    let cri = Cri::connect(&socket).unwrap();
    let v = cri.version().await.unwrap();
    assert_eq!(v.runtime_name, "containerd");
    cri.update_pod_cidr("10.213.7.0/24").await.unwrap();
    until("the network to be ready", async || {
        let conds = cri.status().await.ok()?;
        conds
            .iter()
            .any(|c| c.r#type == "NetworkReady" && c.status)
            .then_some(())
    })
    .await;

    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "p".into(),
            uid: "uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "p".into(),
        log_directory: logs.to_string_lossy().into_owned(),
        labels: HashMap::from([("io.kubernetes.pod.uid".into(), "uid-1".into())]),
        ..Default::default()
    };
    let sandbox = cri
        .run_pod_sandbox(sandbox_config.clone())
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", containerd.log_tail()));
    let status = cri.pod_sandbox_status(&sandbox).await.unwrap().unwrap();
    let ip = status.network.unwrap().ip;
    assert!(ip.starts_with("10.213.7."), "pod IP {ip}");
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "c".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: images::BUSYBOX_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), "echo hello; exit 3".into()],
        log_path: "c.log".into(),
        ..Default::default()
    };
    let id = cri
        .create_container(&sandbox, config, sandbox_config)
        .await
        .unwrap();
    cri.start_container(&id).await.unwrap();
    let exited = until("the container to exit", async || {
        let s = cri.container_status(&id).await.ok()??;
        (s.state == cri::ContainerState::ContainerExited as i32).then_some(s)
    })
    .await;
    assert_eq!(exited.exit_code, 3);
    assert_eq!(exited.reason, "Error");
    let log = std::fs::read_to_string(logs.join("c.log")).unwrap();
    assert!(log.contains("stdout F hello"), "{log}");

    drop(containerd);
    assert_eq!(
        leftovers(dir.path(), &socket, &bridge),
        Vec::<String>::new()
    );
}
