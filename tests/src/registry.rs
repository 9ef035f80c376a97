//! A local image registry for pull tests: Debian's `docker-registry` on a
//! free loopback port with filesystem storage under a temporary
//! directory, open or behind an htpasswd login, stopped on drop.

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
    /// Starts an open registry and waits until `/v2/` answers.
    pub async fn start() -> Result<Self> {
        Self::start_with(None).await
    }

    /// Starts a registry that only serves `user` with `password` (htpasswd
    /// auth; `htpasswd` is in apache2-utils).
    pub async fn start_with_login(user: &str, password: &str) -> Result<Self> {
        Self::start_with(Some((user, password))).await
    }

    async fn start_with(login: Option<(&str, &str)>) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = login {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .context("running htpasswd (apt-get install apache2-utils)")?;
            anyhow::ensure!(out.status.success(), "htpasswd failed");
            std::fs::write(&htpasswd, out.stdout)?;
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: capstan\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, text)?;
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
                // Any HTTP answer will do (401 behind a login).
                let out = tokio::process::Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "--max-time",
                        "2",
                        &url,
                    ])
                    .output()
                    .await
                    .ok()?;
                (!out.stdout.is_empty() && out.stdout != b"000").then_some(())
            }
        })
        .await
        .with_context(|| registry.process.log_tail())?;
        Ok(registry)
    }
}
