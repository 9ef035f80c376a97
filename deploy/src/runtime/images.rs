//! Images built on the machine from Debian's `busybox-static`, since no
//! registry is reachable: a pause image for sandboxes and a busybox image
//! for workloads, each an OCI image layout tar (`oci-layout`, `index.json`
//! naming the image with `io.containerd.image.name`, blobs) imported with
//! `ctr images import` into the CRI namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;

/// The sandbox image [`build_pause`] makes.
pub const PAUSE_IMAGE: &str = "localhost/capstan/pause:3.10";
/// The workload image [`build_busybox`] makes (a fixed tag, so the default
/// pull policy is IfNotPresent).
pub const BUSYBOX_IMAGE: &str = "localhost/capstan/busybox:1.35";
/// Where Debian's busybox-static installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

fn sha256(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .context("sha256sum printed nothing")?
        .to_string())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Adds `bytes` as a blob of the layout at `layout`; returns its descriptor.
fn add_blob(layout: &Path, media_type: &str, file: &Path) -> Result<serde_json::Value> {
    let digest = sha256(file)?;
    let size = std::fs::metadata(file)?.len();
    std::fs::copy(file, layout.join("blobs/sha256").join(&digest))?;
    Ok(json!({"mediaType": media_type, "digest": format!("sha256:{digest}"), "size": size}))
}

/// Builds a one-layer image named `name` from a busybox rootfs (every
/// applet linked in `/bin`), with `config` as the image config's `config`
/// (Entrypoint, Cmd, Env...), and writes it as an OCI layout tar at `out`.
pub fn build(name: &str, config: serde_json::Value, work: &Path, out: &Path) -> Result<()> {
    let rootfs = work.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in ["etc", "tmp", "proc", "sys", "dev", "root", "var", "usr"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(BUSYBOX, bin.join("busybox"))
        .with_context(|| format!("copying {BUSYBOX} (apt-get install busybox-static)"))?;
    let applets = Command::new(BUSYBOX).arg("--list").output()?;
    for a in String::from_utf8_lossy(&applets.stdout).lines() {
        let link = bin.join(a);
        if a != "busybox" && !link.exists() {
            std::os::unix::fs::symlink("busybox", link)?;
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let layer = work.join("layer.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("."))?;

    let layout = work.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    let layer_desc = add_blob(&layout, "application/vnd.oci.image.layer.v1.tar", &layer)?;
    let image_config = json!({
        "architecture": goarch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    });
    let config_file = work.join("config.json");
    std::fs::write(&config_file, serde_json::to_vec(&image_config)?)?;
    let config_desc = add_blob(
        &layout,
        "application/vnd.oci.image.config.v1+json",
        &config_file,
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let manifest_file = work.join("manifest.json");
    std::fs::write(&manifest_file, serde_json::to_vec(&manifest)?)?;
    let mut manifest_desc = add_blob(
        &layout,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest_file,
    )?;
    let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    manifest_desc["annotations"] = json!({
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": tag,
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [manifest_desc]}))?,
    )?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(&layout)
        .arg("-cf")
        .arg(out)
        .arg("."))?;
    Ok(())
}

/// The GOARCH name of this machine, as image configs spell it.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The pause image: busybox sleeping forever as PID 1 (the sandbox is
/// stopped with SIGKILL, so it needs no signal handling).
pub fn build_pause(work: &Path) -> Result<PathBuf> {
    let out = work.join("pause.tar");
    let config = json!({"Entrypoint": ["/bin/sleep", "infinity"]});
    build(PAUSE_IMAGE, config, &work.join("pause"), &out)?;
    Ok(out)
}

/// The busybox workload image (`sh` by default).
pub fn build_busybox(work: &Path) -> Result<PathBuf> {
    let out = work.join("busybox.tar");
    let config = json!({
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["sh"],
    });
    build(BUSYBOX_IMAGE, config, &work.join("busybox"), &out)?;
    Ok(out)
}

/// Imports an image archive into the containerd at `socket`, in the
/// namespace CRI uses.
pub fn import(socket: &Path, archive: &Path) -> Result<()> {
    run(Command::new("ctr")
        .arg("-a")
        .arg(socket)
        .args(["-n", "k8s.io", "images", "import"])
        .arg(archive))
}

/// Builds the pause and busybox images under `work` and imports both.
pub fn load_base_images(socket: &Path, work: &Path) -> Result<()> {
    for archive in [build_pause(work)?, build_busybox(work)?] {
        import(socket, &archive)?;
    }
    Ok(())
}

/// The image names in the CRI namespace of the containerd at `socket`.
pub fn list(socket: &Path) -> Result<Vec<String>> {
    let out = Command::new("ctr")
        .arg("-a")
        .arg(socket)
        .args(["-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .context("running ctr images ls")?;
    if !out.status.success() {
        bail!(
            "ctr images ls failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Like [`load_base_images`], but only when one of them is missing, so a
/// repeated `capstan create cluster` does not rebuild them.
pub fn ensure_base_images(socket: &Path, work: &Path) -> Result<()> {
    let present = list(socket)?;
    if [PAUSE_IMAGE, BUSYBOX_IMAGE]
        .iter()
        .all(|name| present.iter().any(|p| p == name))
    {
        return Ok(());
    }
    load_base_images(socket, work)
}
