//! Network namespaces, veth pairs and bridges for tests that need real
//! packets between "hosts" on one machine (the proxy's tests): each
//! namespace and host-side link is removed when its guard drops, also
//! when a test fails.

use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// Runs `ip` with `args`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    check(
        Command::new("ip")
            .args(args)
            .output()
            .context("running ip")?,
        &format!("ip {}", args.join(" ")),
    )
    .map(|_| ())
}

fn check(out: Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name (`ip netns` list).
    pub name: String,
}

impl Netns {
    /// Creates `name` (replacing a leftover of that name) with loopback up.
    pub fn create(name: &str) -> Result<Self> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.into() };
        ns.ok(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `args` inside the namespace and returns its output, whatever
    /// the exit status.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let (program, rest) = args.split_first().context("empty command")?;
        self.command(program)
            .args(rest)
            .output()
            .with_context(|| format!("running {args:?} in {}", self.name))
    }

    /// Runs `args` inside the namespace; fails with stderr unless it
    /// succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        check(
            self.run(args)?,
            &format!("{} (in netns {})", args.join(" "), self.name),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A link in the host's namespace, deleted on drop (with its veth peer).
pub struct HostLink {
    /// Interface name.
    pub name: String,
}

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

/// A veth pair: `host_if` stays in the host namespace with `host_cidr`,
/// the peer becomes `eth0` in `ns` with `ns_cidr`; both are up.
pub fn veth_to_host(host_if: &str, host_cidr: &str, ns: &Netns, ns_cidr: &str) -> Result<HostLink> {
    let _ = Command::new("ip").args(["link", "del", host_if]).output();
    let peer = format!("{host_if}p");
    ip(&[
        "link", "add", host_if, "type", "veth", "peer", "name", &peer,
    ])?;
    let link = HostLink {
        name: host_if.into(),
    };
    ip(&["link", "set", &peer, "netns", &ns.name])?;
    ns.ok(&["ip", "link", "set", &peer, "name", "eth0"])?;
    ns.ok(&["ip", "addr", "add", ns_cidr, "dev", "eth0"])?;
    ns.ok(&["ip", "link", "set", "eth0", "up"])?;
    ip(&["addr", "add", host_cidr, "dev", host_if])?;
    ip(&["link", "set", host_if, "up"])?;
    Ok(link)
}

/// A veth pair from a pod-like namespace into a bridge of another one:
/// `eth0` in `pod` with `pod_cidr` and a default route via `gateway`, the
/// peer `port` enslaved to `bridge` in `node` with hairpin mode on (as
/// the CNI bridge plugin's `hairpinMode: true` sets it).
pub fn veth_to_bridge(
    pod: &Netns,
    pod_cidr: &str,
    gateway: &str,
    node: &Netns,
    bridge: &str,
    port: &str,
) -> Result<()> {
    node.ok(&[
        "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ])?;
    node.ok(&["ip", "link", "set", port, "master", bridge])?;
    node.ok(&[
        "ip",
        "link",
        "set",
        port,
        "type",
        "bridge_slave",
        "hairpin",
        "on",
    ])?;
    node.ok(&["ip", "link", "set", port, "up"])?;
    pod.ok(&["ip", "addr", "add", pod_cidr, "dev", "eth0"])?;
    pod.ok(&["ip", "link", "set", "eth0", "up"])?;
    pod.ok(&["ip", "route", "add", "default", "via", gateway])?;
    Ok(())
}
