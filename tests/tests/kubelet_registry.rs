//! Pulling an image from a registry through containerd with the pod's
//! `imagePullSecrets`, as a user of a private registry would: a local
//! Debian `docker-registry` with htpasswd authentication, an image pushed
//! to it with skopeo (built from busybox-static, nothing downloaded), a
//! pod without credentials refused (ErrImagePull / ImagePullBackOff), and
//! one with a `kubectl create secret docker-registry` secret running.
//! Needs root, containerd, runc, the CNI plugins, busybox-static,
//! docker-registry, skopeo and htpasswd (apache2-utils).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use capstan::runtime::images;
use capstan_tests::fixture::ControlPlane;
use capstan_tests::node::Node;
use capstan_tests::registry::Registry;
use capstan_tests::wait;

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_image_is_pulled_with_the_pods_pull_secret() -> Result<()> {
    let registry = Registry::start_with_login("puller", "pa55word").await?;
    let host = registry.host.clone();
    let image = format!("{host}/capstan/private:1.0");

    // Build an image locally and push it with the registry's credentials.
    let work = tempfile::tempdir()?;
    let archive = work.path().join("private.tar");
    images::build(
        &image,
        serde_json::json!({"Entrypoint": ["/bin/sh", "-c", "echo pulled and running; sleep 3600"]}),
        &work.path().join("build"),
        &archive,
    )?;
    run(Command::new("skopeo").args([
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-creds=puller:pa55word",
        &format!("oci-archive:{}", archive.display()),
        &format!("docker://{image}"),
    ]))?;

    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start(&cp, "pull-node", &[]).await?;
    node.wait_ready(&cp.client().await?).await?;
    node.containerd.trust_plain_http_registry(&host)?;

    cp.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={host}"),
        "--docker-username=puller",
        "--docker-password=pa55word",
    ])?;
    let pod = |name: &str, secret: bool| {
        let secrets = if secret {
            "\n  imagePullSecrets: [{name: regcred}]"
        } else {
            ""
        };
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: pull-node{secrets}\n  containers:\n  - name: main\n    image: {image}\n"
        )
    };
    let anonymous = cp.write("anonymous.yaml", &pod("anonymous", false))?;
    let authorized = cp.write("authorized.yaml", &pod("authorized", true))?;
    cp.kubectl(&["apply", "-f", &anonymous, "-f", &authorized])?;

    cp.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/authorized",
        "--timeout=90s",
    ])
    .with_context(|| node.logs())?;
    let logs = cp.kubectl(&["logs", "authorized"])?;
    assert_eq!(logs, "pulled and running\n");
    let pulled = cp.kubectl(&[
        "get",
        "events",
        "--field-selector=reason=Pulled,involvedObject.name=authorized",
        "-o",
        "jsonpath={.items[*].message}",
    ])?;
    assert!(pulled.contains(&image), "{pulled}");

    // Without the secret the registry refuses, and the pod says so.
    let reason = wait::until(
        "the anonymous pull to be refused",
        Duration::from_secs(60),
        || async {
            let r = cp
                .kubectl(&[
                    "get",
                    "pod",
                    "anonymous",
                    "-o",
                    "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
                ])
                .ok()?;
            matches!(r.as_str(), "ErrImagePull" | "ImagePullBackOff").then_some(r)
        },
    )
    .await
    .with_context(|| node.logs())?;
    assert!(!reason.is_empty());
    Ok(())
}
