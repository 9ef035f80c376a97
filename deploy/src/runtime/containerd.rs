//! A private containerd: its own root, state, socket, runc root, CNI
//! config directory and bridge under one directory, so several can run
//! side by side with other containerds. The config follows the facts in
//! RUNTIME-NOTES: `restrict_oom_score_adj = true` (root here may not lower
//! an oom_score_adj), runc with cgroupfs (no systemd), the locally built
//! pause image, CNI plugins from `/usr/lib/cni` and a `conf_template` that
//! containerd renders once the kubelet hands it the pod CIDR.
//!
//! [`Options::write_files`] writes the config; `capstan create cluster`
//! runs containerd on it as a detached component, and the tests through
//! [`Containerd`], which stops everything it started when dropped, also
//! when a test fails, with the same [`super::cleanup`] steps `capstan
//! delete cluster` uses.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::cleanup;

/// The CNI network name in the rendered config.
pub const CNI_NETWORK: &str = "capstan";

/// Eight hex digits derived from `dir` (FNV-1a of the path), naming what
/// one node owns outside its directory (its bridge, its pods' cgroup) so
/// two nodes never share them.
pub fn dir_token(dir: &Path) -> String {
    let mut h: u32 = 2166136261;
    for b in dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(16777619);
    }
    format!("{h:08x}")
}

/// How to set up one containerd.
#[derive(Debug, Clone)]
pub struct Options {
    /// Everything of this containerd lives under here.
    pub dir: PathBuf,
    /// The sandbox (pause) image, already imported or importable.
    pub sandbox_image: String,
    /// The Linux bridge pods attach to; unique per containerd, at most 15
    /// characters.
    pub bridge: String,
}

impl Options {
    /// Options for a containerd under `dir` with a bridge name derived
    /// from the directory, so two nodes never share a bridge.
    pub fn new(dir: &Path, sandbox_image: &str) -> Self {
        Options {
            dir: dir.to_path_buf(),
            sandbox_image: sandbox_image.into(),
            bridge: format!("cap{}", dir_token(dir)),
        }
    }

    /// The config file [`Options::write_files`] writes (`--config`).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("containerd.toml")
    }

    /// Writes containerd's config, the CNI config template and the
    /// directories they name; idempotent. Returns the config's path.
    pub fn write_files(&self) -> Result<PathBuf> {
        let cni = self.dir.join("cni");
        let mkdir = |d: &Path| {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))
        };
        mkdir(&cni.join("net.d"))?;
        mkdir(&self.dir.join("certs.d"))?;
        let write = |path: &Path, text: String| {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        };
        write(&cni.join("template.json"), self.cni_template())?;
        let config = self.config_path();
        write(&config, self.config_toml())?;
        Ok(config)
    }

    /// The CRI socket (`--container-runtime-endpoint`).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// runc's state root (one directory per containerd namespace).
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("state").join("runc")
    }

    /// containerd's config (version 2, as 1.6 reads it).
    pub fn config_toml(&self) -> String {
        let d = self.dir.display();
        let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
        format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[{cri}]
  sandbox_image = "{sandbox}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  netns_mounts_under_state_dir = true

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{runc}"

[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{d}/cni/net.d"
  conf_template = "{d}/cni/template.json"

[{cri}.registry]
  config_path = "{d}/certs.d"
"#,
            sandbox = self.sandbox_image,
            runc = self.runc_root().display(),
        )
    }

    /// The CNI config template: bridge + host-local (addresses kept under
    /// this containerd's state) + portmap; containerd adds loopback itself
    /// and fills `{{.PodCIDR}}` from the kubelet's UpdateRuntimeConfig.
    pub fn cni_template(&self) -> String {
        format!(
            r#"{{
  "cniVersion": "0.4.0",
  "name": "{CNI_NETWORK}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{bridge}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "dataDir": "{ipam}",
        "ranges": [[{{"subnet": "{{{{.PodCIDR}}}}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"#,
            bridge = self.bridge,
            ipam = self.state().join("cni-ipam").display(),
        )
    }
}

/// A running private containerd; torn down on drop.
pub struct Containerd {
    opts: Options,
    child: Option<Child>,
}

impl Containerd {
    /// Writes the config under `opts.dir` and starts containerd, waiting
    /// until its CRI socket answers.
    pub fn start(opts: Options) -> Result<Self> {
        let config = opts.write_files()?;
        let log = std::fs::File::create(opts.dir.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting containerd")?;
        let mut c = Containerd {
            opts,
            child: Some(child),
        };
        c.wait_ready()?;
        Ok(c)
    }

    /// The options it was started with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The CRI socket path.
    pub fn socket(&self) -> PathBuf {
        self.opts.socket()
    }

    /// Lets CRI pull from the registry at `host` (`127.0.0.1:5000`) over
    /// plain HTTP, through a `certs.d/<host>/hosts.toml` under this
    /// containerd's `config_path` (read at each pull, no restart needed).
    pub fn trust_plain_http_registry(&self, host: &str) -> Result<()> {
        let dir = self.opts.dir.join("certs.d").join(host);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("hosts.toml"),
            format!(
                "server = \"http://{host}\"\n\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )?;
        Ok(())
    }

    /// The last lines of containerd's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.opts.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("--- containerd log ---\n{}", lines[from..].join("\n"))
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("containerd exited with {status}\n{}", self.log_tail());
            }
            let ok = Command::new("ctr")
                .arg("-a")
                .arg(self.socket())
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("containerd did not answer within 30s\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops everything; also done on drop.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        cleanup::before_stop(&self.opts);
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        cleanup::after_stop(&self.opts, &self.opts.dir);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_private_paths_and_required_settings() {
        let o = Options::new(Path::new("/tmp/x"), "localhost/pause:1");
        let t = o.config_toml();
        assert!(t.contains("restrict_oom_score_adj = true"));
        assert!(t.contains(r#"address = "/tmp/x/containerd.sock""#));
        assert!(t.contains(r#"sandbox_image = "localhost/pause:1""#));
        assert!(t.contains("SystemdCgroup = false"));
        assert!(o.bridge.len() <= 15);
        let cni: serde_json::Value = serde_json::from_str(&o.cni_template()).unwrap();
        assert_eq!(cni["plugins"][0]["bridge"], o.bridge.as_str());
        assert_eq!(
            cni["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "{{.PodCIDR}}"
        );
    }
}
