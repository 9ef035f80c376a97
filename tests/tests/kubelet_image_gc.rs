//! Image garbage collection on a real kubelet and containerd: with the
//! thresholds at 0% (every filesystem is "full"), an image no container
//! uses is removed, while the image of a running pod and the pinned
//! sandbox image stay. Needs root, containerd, runc, the CNI plugins and
//! busybox-static.

use std::time::Duration;

use anyhow::{Context, Result};
use capstan::runtime::images;
use capstan_tests::fixture::ControlPlane;
use capstan_tests::node::{BUSYBOX, Node};
use capstan_tests::wait;

#[tokio::test(flavor = "multi_thread")]
async fn unused_images_are_collected_and_used_ones_kept() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    // The pod runs before collection starts: the kubelet collects once at
    // start, so create the node's workload first with GC off, then restart
    // the kubelet with GC on.
    let mut node = Node::start(&cp, "gc-node", &[]).await?;
    node.wait_ready(&cp.client().await?).await?;
    let manifest = cp.write(
        "keep.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: keep}}\nspec:\n  nodeName: gc-node\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    imagePullPolicy: Never\n    command: [sleep, \"3600\"]\n"
        ),
    )?;
    cp.kubectl(&["apply", "-f", &manifest])?;
    cp.kubectl(&["wait", "--for=condition=Ready", "pod/keep", "--timeout=90s"])
        .with_context(|| node.logs())?;
    // An extra image nothing runs.
    let work = tempfile::tempdir()?;
    let archive = work.path().join("unused.tar");
    images::build(
        "localhost/capstan/unused:1",
        serde_json::json!({"Cmd": ["sh"]}),
        &work.path().join("build"),
        &archive,
    )?;
    images::import(&node.containerd.socket(), &archive)?;
    let names = |imgs: Vec<k8s_cri::v1::Image>| -> Vec<String> {
        imgs.into_iter().flat_map(|i| i.repo_tags).collect()
    };
    assert!(
        names(node.cri.list_images().await?)
            .iter()
            .any(|t| t.contains("unused"))
    );

    node.restart_with(&["--image-gc-high-threshold=0", "--image-gc-low-threshold=0"])?;
    let cri = node.cri.clone();
    let left = wait::until(
        "the unused image to be collected",
        Duration::from_secs(60),
        || {
            let cri = cri.clone();
            async move {
                let tags = names(cri.list_images().await.ok()?);
                (!tags.iter().any(|t| t.contains("unused"))).then_some(tags)
            }
        },
    )
    .await
    .with_context(|| node.logs())?;
    assert!(left.iter().any(|t| t == BUSYBOX), "{left:?}");
    assert!(left.iter().any(|t| t == images::PAUSE_IMAGE), "{left:?}");
    Ok(())
}
