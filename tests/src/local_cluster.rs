//! Driving the `capstan` tool's local clusters from tests: a private
//! `$CAPSTAN_HOME` and kubeconfig in a temporary directory, the built
//! `capstan` binary, and a guard that deletes every cluster it created when
//! dropped, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};
use capstan::cluster::process::{self, PidRecord};

use crate::fixture::{self, KUBECTL};

/// A `$CAPSTAN_HOME` of its own, with the clusters created through it.
pub struct CapstanHome {
    /// Holds `capstan/` (CAPSTAN_HOME), `home/` (HOME) and `kubeconfig`.
    pub dir: tempfile::TempDir,
    /// The kubeconfig `create` merges contexts into (`--kubeconfig`).
    pub kubeconfig: PathBuf,
    created: Vec<String>,
}

impl CapstanHome {
    /// A fresh, empty home.
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("home"))?;
        let kubeconfig = dir.path().join("kubeconfig");
        Ok(CapstanHome {
            dir,
            kubeconfig,
            created: Vec::new(),
        })
    }

    /// `$CAPSTAN_HOME`.
    pub fn capstan_home(&self) -> PathBuf {
        self.dir.path().join("capstan")
    }

    /// A cluster's state directory.
    pub fn cluster_dir(&self, name: &str) -> PathBuf {
        self.capstan_home().join("clusters").join(name)
    }

    /// Runs the built `capstan` with this home (and a private `HOME`, so
    /// nothing touches the real `~/.kube`).
    pub fn capstan(&self, args: &[&str]) -> Result<Output> {
        self.capstan_env(args, &[])
    }

    /// Like [`CapstanHome::capstan`] with extra environment variables
    /// (a `PATH` without etcd).
    pub fn capstan_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        Command::new(fixture::binary("capstan")?)
            .args(args)
            .env("CAPSTAN_HOME", self.capstan_home())
            .env("HOME", self.dir.path().join("home"))
            .env_remove("KUBECONFIG")
            .envs(env.iter().copied())
            .output()
            .context("running capstan")
    }

    /// Runs `capstan` and fails with its output unless it succeeds;
    /// returns stdout and stderr.
    pub fn capstan_ok(&self, args: &[&str]) -> Result<(String, String)> {
        let out = self.capstan(args)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            bail!("capstan {} failed:\n{stdout}{stderr}", args.join(" "));
        }
        Ok((stdout, stderr))
    }

    /// Deletes cluster `name` when this home is dropped (for clusters a
    /// test creates with [`CapstanHome::capstan_env`]).
    pub fn delete_on_drop(&mut self, name: &str) {
        if !self.created.iter().any(|n| n == name) {
            self.created.push(name.to_string());
        }
    }

    /// `capstan create cluster --name NAME --kubeconfig <ours>`; the
    /// cluster is deleted when this home is dropped. Returns stderr (the
    /// progress lines).
    pub fn create(&mut self, name: &str) -> Result<String> {
        self.create_with(name, &[])
    }

    /// [`CapstanHome::create`] with more flags (`--nodes 3`).
    pub fn create_with(&mut self, name: &str, flags: &[&str]) -> Result<String> {
        self.delete_on_drop(name);
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let mut args = vec![
            "create",
            "cluster",
            "--name",
            name,
            "--kubeconfig",
            &kubeconfig,
        ];
        args.extend_from_slice(flags);
        let (_, stderr) = self.capstan_ok(&args)?;
        Ok(stderr)
    }

    /// `capstan delete cluster --name NAME --kubeconfig <ours>`.
    pub fn delete(&mut self, name: &str) -> Result<String> {
        let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
        let (_, stderr) = self.capstan_ok(&[
            "delete",
            "cluster",
            "--name",
            name,
            "--kubeconfig",
            &kubeconfig,
        ])?;
        self.created.retain(|n| n != name);
        Ok(stderr)
    }

    /// The processes a cluster's pid files record, by component name.
    pub fn pids(&self, name: &str) -> Result<Vec<(String, PidRecord)>> {
        let run = self.cluster_dir(name).join("run");
        let mut records = Vec::new();
        for entry in
            std::fs::read_dir(&run).with_context(|| format!("reading {}", run.display()))?
        {
            let path = entry?.path();
            let Some(component) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pid"))
            else {
                continue;
            };
            let record = process::read_pid_file(&path)
                .with_context(|| format!("{} is not a pid file", path.display()))?;
            records.push((component.to_string(), record));
        }
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(records)
    }

    /// Runs kubectl against a cluster's context in our kubeconfig.
    pub fn kubectl(&self, name: &str, args: &[&str]) -> Result<String> {
        self.kubectl_stdin(name, args, "")
    }

    /// [`CapstanHome::kubectl`] with `input` on its stdin (`apply -f -`).
    pub fn kubectl_stdin(&self, name: &str, args: &[&str], input: &str) -> Result<String> {
        use std::io::Write as _;
        let context = format!("capstan-{name}");
        let mut child = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--context")
            .arg(&context)
            .args(args)
            .env("HOME", self.dir.path().join("home"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running kubectl")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output().context("running kubectl")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for CapstanHome {
    fn drop(&mut self) {
        for name in std::mem::take(&mut self.created) {
            let kubeconfig = self.kubeconfig.to_string_lossy().into_owned();
            if let Err(e) = self.capstan_ok(&[
                "delete",
                "cluster",
                "--name",
                &name,
                "--kubeconfig",
                &kubeconfig,
            ]) {
                eprintln!("cleaning up cluster {name}: {e:#}");
            }
        }
    }
}

/// True when `record`'s process is gone: no `/proc/<pid>`, a zombie with
/// no thread left (so its sockets are closed), or another process
/// (different start time) under the same pid. Reads `/proc` itself rather
/// than trusting the code under test.
pub fn process_gone(record: &PidRecord) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", record.pid)) else {
        return true;
    };
    let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return true;
    };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let threads = std::fs::read_dir(format!("/proc/{}/task", record.pid)).map_or(0, |d| d.count());
    let zombie = fields.first() == Some(&"Z") && threads <= 1;
    let start_time = fields.get(19).and_then(|f| f.parse::<u64>().ok());
    zombie || start_time != Some(record.start_time)
}

/// The kubeconfig at `path` as a kubectl-compatible model.
pub fn read_kubeconfig(path: &Path) -> Result<capstan::kubeconfig::Kubeconfig> {
    capstan::kubeconfig::Kubeconfig::from_yaml(&std::fs::read_to_string(path)?)
}

/// What a cluster's nodes put on the machine, read from `/proc`, `/sys`,
/// `/run/netns` and `ip` rather than from the code under test, so a test
/// can see that it exists while the cluster runs and is gone after
/// `delete`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTraces {
    /// Processes whose command line mentions the cluster directory.
    pub processes: Vec<String>,
    /// Mount points at or below the cluster directory (`/proc/mounts`).
    pub mounts: Vec<String>,
    /// Pids in the pods' cgroups.
    pub pod_pids: Vec<i32>,
    /// Directories of the pods' cgroups, in any hierarchy.
    pub cgroups: Vec<PathBuf>,
    /// The nodes' network namespaces (`/run/netns`).
    pub namespaces: Vec<String>,
    /// The pods' veths, on the pod bridges inside the nodes' namespaces.
    pub pod_veths: Vec<String>,
    /// The cluster's links in the host's namespace: its bridge and the
    /// nodes' veths.
    pub host_links: Vec<String>,
    /// Routes of the host through the cluster's bridge.
    pub host_routes: Vec<String>,
    /// Whether the state directory exists.
    pub state_dir: bool,
}

impl NodeTraces {
    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        *self == NodeTraces::default()
    }
}

impl CapstanHome {
    /// What cluster `name`'s nodes have on the machine now.
    pub fn node_traces(&self, name: &str) -> Result<NodeTraces> {
        use capstan::cluster::{netns, network, node};
        let dir = capstan::cluster::layout::ClusterDir::new(&self.capstan_home(), name)?;
        let root = dir.root.to_string_lossy().into_owned();
        let mut traces = NodeTraces {
            state_dir: dir.root.exists(),
            ..Default::default()
        };
        for p in std::fs::read_dir("/proc")?.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Ok(cmd) = std::fs::read(p.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(&root) {
                    traces.processes.push(format!("{pid}: {cmd}"));
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/mounts")?;
        traces.mounts = mounts
            .lines()
            .filter(|l| l.contains(&root))
            .map(str::to_string)
            .collect();
        for index in 0..network::MAX_NODES {
            let nd = dir.node("", index);
            let cgroups = capstan::runtime::cleanup::cgroup_dirs(&node::cgroup_root(&nd));
            for top in &cgroups {
                collect_procs(top, &mut traces.pod_pids);
            }
            traces.cgroups.extend(cgroups);
            let ns = netns::namespace(&dir, index);
            if Path::new("/run/netns").join(&ns).exists() {
                let bridge = node::runtime_options(&nd).bridge;
                let out = Command::new("ip")
                    .args(["-n", &ns, "-o", "link", "show", "master", &bridge])
                    .output()?;
                traces.pod_veths.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .filter_map(|l| l.split(": ").nth(1))
                        .map(|n| format!("{ns}/{}", n.split('@').next().unwrap_or(n))),
                );
                traces.namespaces.push(ns);
            }
        }
        traces.pod_pids.sort();
        traces.pod_pids.dedup();
        let bridge = netns::bridge(&dir);
        let host_veth_prefix = netns::host_veth(&dir, 0);
        let host_veth_prefix = &host_veth_prefix[..host_veth_prefix.len() - 1];
        for link in std::fs::read_dir("/sys/class/net")?.flatten() {
            let link = link.file_name().to_string_lossy().into_owned();
            if link == bridge || link.starts_with(host_veth_prefix) {
                traces.host_links.push(link);
            }
        }
        traces.host_links.sort();
        let routes = Command::new("ip").args(["-o", "route", "show"]).output()?;
        traces.host_routes = String::from_utf8_lossy(&routes.stdout)
            .lines()
            .filter(|l| {
                l.contains(&format!("dev {bridge} ")) || l.ends_with(&format!("dev {bridge}"))
            })
            .map(str::to_string)
            .collect();
        Ok(traces)
    }
}

/// Pids listed in `cgroup.procs` of `dir` and every cgroup below it.
fn collect_procs(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_procs(&e.path(), out);
            }
        }
    }
}
