//! A local image registry for pull tests: Debian's `docker-registry` on a
//! free loopback port with filesystem storage under a temporary
//! directory, stopped on drop.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::fixture::{Process, free_port};
use crate::wait;

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:PORT`, the host part of image names it serves.
    pub host: String,
    process: Process,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the registry and waits until `/v2/` answers.
    pub async fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config);
        let process = Process::spawn("docker-registry", cmd, dir.path().join("registry.log"))
            .context("starting docker-registry (apt-get install docker-registry)")?;
        let registry = Registry {
            host,
            process,
            _dir: dir,
        };
        let url = format!("http://{}/v2/", registry.host);
        wait::until("the registry to answer", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                let out = tokio::process::Command::new("curl")
                    .args(["-sf", "--max-time", "2", &url])
                    .output()
                    .await
                    .ok()?;
                out.status.success().then_some(())
            }
        })
        .await
        .with_context(|| registry.process.log_tail())?;
        Ok(registry)
    }
}
