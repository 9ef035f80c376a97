//! The kernel side: applying a script with `nft -f -` (one atomic
//! transaction), and reading the node's local IPv4 addresses for
//! `--nodeport-addresses`.

use std::net::Ipv4Addr;
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;

use crate::rules::Existing;

/// An IPv4 CIDR from a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` (a bare address is a /32).
    pub fn parse(s: &str) -> Result<Self> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a
            .trim()
            .parse()
            .with_context(|| format!("{s:?} is not an IPv4 CIDR"))?;
        let len: u8 = l
            .trim()
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .with_context(|| format!("{s:?} has a bad prefix length"))?;
        Ok(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & Self::mask(len)),
            len,
        })
    }

    fn mask(len: u8) -> u32 {
        if len == 0 { 0 } else { u32::MAX << (32 - len) }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.len) == u32::from(self.addr)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Runs `nft -f -` with `script` on stdin; the whole script is one
/// transaction, so a failure changes nothing.
pub async fn apply(script: &str) -> Result<()> {
    apply_in(None, script).await
}

/// Like [`apply`], inside the named network namespace when one is given
/// (`ip netns exec`; the benchmark's throwaway namespace).
pub async fn apply_in(netns: Option<&str>, script: &str) -> Result<()> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => tokio::process::Command::new("nft"),
    };
    let mut child = cmd
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (is the nftables package installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .context("writing to nft")?;
    }
    let out = child.wait_with_output().await.context("waiting for nft")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let head: String = err.lines().take(20).collect::<Vec<_>>().join("\n");
        bail!("nft -f failed ({}): {head}", out.status);
    }
    Ok(())
}

/// The chains and named sets `table` (family `ip`) holds now; empty
/// when it does not exist. A full sync removes what it does not want.
pub async fn existing(netns: Option<&str>, table: &str) -> Result<Existing> {
    let chains = list(netns, &["list", "chains", "ip"]).await?;
    let sets = list(netns, &["list", "sets", "ip"]).await?;
    Ok(Existing {
        chains: parse_listing(&chains, table, "chain"),
        sets: parse_listing(&sets, table, "set"),
    })
}

async fn list(netns: Option<&str>, args: &[&str]) -> Result<String> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => tokio::process::Command::new("nft"),
    };
    let out = cmd
        .args(args)
        .output()
        .await
        .context("running nft (is the nftables package installed?)")?;
    if !out.status.success() {
        bail!(
            "nft {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Names of `kind` (`chain`, `set`) objects directly inside `table ip
/// <table>` of an `nft list` output.
fn parse_listing(text: &str, table: &str, kind: &str) -> Vec<String> {
    let header = format!("table ip {table} {{");
    let prefix = format!("\t{kind} ");
    let mut inside = false;
    let mut names = Vec::new();
    for line in text.lines() {
        if line.starts_with("table ") {
            inside = line == header;
        } else if inside
            && let Some(rest) = line.strip_prefix(&prefix)
            && let Some(name) = rest.strip_suffix(" {")
        {
            names.push(name.trim_matches('"').to_string());
        }
    }
    names
}

/// The node's IPv4 addresses (`ip -o -4 addr show`), loopback excluded,
/// that fall into one of `cidrs`.
pub async fn local_addresses(cidrs: &[Cidr]) -> Result<Vec<Ipv4Addr>> {
    let out = tokio::process::Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .await
        .context("running ip addr")?;
    if !out.status.success() {
        bail!("ip addr failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut ips = parse_addresses(&String::from_utf8_lossy(&out.stdout));
    ips.retain(|ip| !ip.is_loopback() && cidrs.iter().any(|c| c.contains(*ip)));
    ips.sort();
    ips.dedup();
    Ok(ips)
}

fn parse_addresses(text: &str) -> Vec<Ipv4Addr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_match() {
        let c = Cidr::parse("10.244.1.7/16").unwrap();
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert!(c.contains("10.244.200.1".parse().unwrap()));
        assert!(!c.contains("10.245.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("1.2.3.4".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("fd00::/8").is_err());
    }

    #[test]
    fn listings_name_the_tables_chains_and_sets() {
        let text = "table ip capstan-proxy {\n\tchain a/b__1.2.3.4/80 {\n\t}\n\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n}\ntable ip other {\n\tchain zz {\n\t}\n}\n";
        assert_eq!(
            parse_listing(text, "capstan-proxy", "chain"),
            vec!["a/b__1.2.3.4/80", "nat-output"]
        );
        let sets = "table ip capstan-proxy {\n\tset nodeport-ips {\n\t\ttype ipv4_addr\n\t\telements = { 1.2.3.4 }\n\t}\n}\n";
        assert_eq!(
            parse_listing(sets, "capstan-proxy", "set"),
            vec!["nodeport-ips"]
        );
        assert!(parse_listing(sets, "other", "set").is_empty());
    }

    #[test]
    fn ip_addr_output_parses() {
        let text = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                    2: eth0    inet 10.123.0.2/24 brd 10.123.0.255 scope global eth0\\       valid_lft forever\n";
        assert_eq!(
            parse_addresses(text),
            vec![
                "127.0.0.1".parse::<Ipv4Addr>().unwrap(),
                "10.123.0.2".parse().unwrap()
            ]
        );
    }
}
