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
    pack(name, config, &rootfs, work, out)
}

/// Packs the directory `rootfs` as the one layer of an image named `name`
/// with `config` as its image config's `config`, written as an OCI layout
/// tar at `out` (scratch files go to `work`).
pub fn pack(
    name: &str,
    config: serde_json::Value,
    rootfs: &Path,
    work: &Path,
    out: &Path,
) -> Result<()> {
    std::fs::create_dir_all(work)?;
    let layer = work.join("layer.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(rootfs)
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

/// The cluster DNS image [`build_binary_image`] makes from the
/// `capstan-dns` binary (tagged with the project version, so the default
/// pull policy is IfNotPresent).
pub const DNS_IMAGE: &str = concat!("localhost/capstan/dns:", env!("CARGO_PKG_VERSION"));

/// The files the dynamic loader maps for `binary`, as `ldd` names them:
/// its shared libraries and the loader itself (not the kernel's vDSO).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary: ldd says so and fails; it needs nothing.
        if text.contains("not a dynamic executable")
            || String::from_utf8_lossy(&out.stderr).contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.contains("not found") {
            bail!(
                "{} needs a library ldd cannot find: {line}",
                binary.display()
            );
        }
        // `libc.so.6 => /lib/.../libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line,
        };
        let path = path.split_whitespace().next().unwrap_or_default();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Builds a one-layer image named `name` that runs the dynamically linked
/// `binary`: the binary at `/usr/local/bin/<file name>` (the entrypoint)
/// plus every library [`shared_libraries`] finds and the dynamic loader,
/// each at its own absolute path, and an empty `/etc` and `/tmp` for the
/// runtime's mounts. Written as an OCI layout tar under `work`; returns
/// its path.
pub fn build_binary_image(name: &str, binary: &Path, work: &Path) -> Result<PathBuf> {
    let file_name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no file name", binary.display()))?
        .to_string();
    let dir = work.join(format!("{file_name}-image"));
    let rootfs = dir.join("rootfs");
    if rootfs.exists() {
        std::fs::remove_dir_all(&rootfs)?;
    }
    for d in ["etc", "tmp", "proc", "sys", "dev", "usr/local/bin"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    let entry = format!("/usr/local/bin/{file_name}");
    std::fs::copy(binary, rootfs.join(entry.trim_start_matches('/')))
        .with_context(|| format!("copying {}", binary.display()))?;
    for lib in shared_libraries(binary)? {
        let dest = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Copies the file a symlink points at, under the name ldd gave.
        std::fs::copy(&lib, &dest).with_context(|| format!("copying {}", lib.display()))?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    let config = json!({"Entrypoint": [entry]});
    let out = work.join(format!("{file_name}.tar"));
    pack(name, config, &rootfs, &dir, &out)?;
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(layout: &Path, digest: &serde_json::Value) -> PathBuf {
        let d = digest.as_str().unwrap().trim_start_matches("sha256:");
        layout.join("blobs/sha256").join(d)
    }

    #[test]
    fn binary_image_holds_the_binary_its_libraries_and_the_loader() {
        let work = tempfile::tempdir().unwrap();
        let bin = Path::new("/bin/ls");
        let libs = shared_libraries(bin).unwrap();
        assert!(
            libs.iter()
                .any(|l| l.to_string_lossy().contains("ld-linux")),
            "the loader is among {libs:?}"
        );
        let archive = build_binary_image("localhost/capstan/ls:1", bin, work.path()).unwrap();

        let layout = work.path().join("unpacked");
        std::fs::create_dir_all(&layout).unwrap();
        run(Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout))
        .unwrap();
        assert!(layout.join("oci-layout").is_file());
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let desc = &index["manifests"][0];
        assert_eq!(
            desc["annotations"]["io.containerd.image.name"],
            "localhost/capstan/ls:1"
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(blob(&layout, &desc["digest"])).unwrap())
                .unwrap();
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(blob(&layout, &manifest["config"]["digest"])).unwrap(),
        )
        .unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/ls");
        assert_eq!(config["os"], "linux");

        let listing = Command::new("tar")
            .arg("-tf")
            .arg(blob(&layout, &manifest["layers"][0]["digest"]))
            .output()
            .unwrap();
        let files = String::from_utf8_lossy(&listing.stdout);
        assert!(files.lines().any(|l| l == "./usr/local/bin/ls"), "{files}");
        for lib in &libs {
            let want = format!(".{}", lib.display());
            assert!(
                files.lines().any(|l| l == want),
                "{want} missing from {files}"
            );
        }
    }
}
