//! Command-line flags, named as upstream kube-apiserver's.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Parses durations like upstream's flags: `300ms`, `2s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!(
            "invalid duration unit in {s:?} (use ms, s, m or h)"
        )),
    }
}

/// `capstan-apiserver` flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "capstan-apiserver",
    version,
    about = "Kubernetes-compatible API server over etcd"
)]
pub struct Options {
    /// etcd endpoints, comma-separated (http://host:port).
    #[arg(long = "etcd-servers", value_delimiter = ',', required = true)]
    pub etcd_servers: Vec<String>,
    /// Key prefix of every object in etcd.
    #[arg(long = "etcd-prefix", default_value = "/registry")]
    pub etcd_prefix: String,
    /// How often old revisions are compacted away (0 disables).
    #[arg(long = "etcd-compaction-interval", default_value = "5m", value_parser = parse_duration)]
    pub etcd_compaction_interval: Duration,
    /// Address to listen on.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: String,
    /// HTTPS port.
    #[arg(long = "secure-port", default_value_t = 6443)]
    pub secure_port: u16,
    /// Serving certificate (PEM).
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: PathBuf,
    /// Serving key (PEM).
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: PathBuf,
    /// CA bundle that signs client certificates; without it every
    /// non-public request is unauthorized.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// Range Service cluster IPs are allocated from (allocation comes with
    /// the Services work; the flag is accepted now so unit files are stable).
    #[arg(long = "service-cluster-ip-range", default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_upstream_flags() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5x").is_err());
    }
}
