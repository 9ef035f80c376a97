//! Flag groups several components share, with upstream's names: leader
//! election (`--leader-elect*`) and the HTTPS health/metrics endpoint
//! (`--bind-address`, `--secure-port`, TLS files). A component flattens
//! them into its own flags and sets the defaults that differ between
//! components (the lease name, the port) with `mut_arg`.

use std::path::PathBuf;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::health::ServingConfig;
use crate::leader::LeaderElectionConfig;

/// `--leader-elect` and the lease settings.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaderElectionFlags {
    /// Run only while holding the leader lease (on by default, as
    /// upstream).
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// How long a lease lasts without renewal.
    #[arg(long = "leader-elect-lease-duration", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up.
    #[arg(long = "leader-elect-renew-deadline", default_value = "10s", value_parser = parse_duration)]
    pub renew_deadline: Duration,
    /// How often candidates retry.
    #[arg(long = "leader-elect-retry-period", default_value = "2s", value_parser = parse_duration)]
    pub retry_period: Duration,
    /// The Lease's name (each component sets its own default).
    #[arg(long = "leader-elect-resource-name")]
    pub resource_name: String,
    /// The Lease's namespace.
    #[arg(
        long = "leader-elect-resource-namespace",
        default_value = "kube-system"
    )]
    pub resource_namespace: String,
}

impl LeaderElectionFlags {
    /// The lease settings, checked as client-go checks them; `None` when
    /// election is off.
    pub fn config(&self) -> anyhow::Result<Option<LeaderElectionConfig>> {
        if !self.leader_elect {
            return Ok(None);
        }
        let mut cfg = LeaderElectionConfig::new(&self.resource_namespace, &self.resource_name);
        cfg.lease_duration = self.lease_duration;
        cfg.renew_deadline = self.renew_deadline;
        cfg.retry_period = self.retry_period;
        cfg.validate()?;
        Ok(Some(cfg))
    }
}

/// Where `/healthz` and `/metrics` are served.
#[derive(Debug, Clone, clap::Args)]
pub struct ServingFlags {
    /// Address for /healthz and /metrics.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: String,
    /// HTTPS port for /healthz and /metrics (0 disables; each component
    /// sets its own default).
    #[arg(long = "secure-port")]
    pub secure_port: u16,
    /// Serving certificate; a self-signed one is generated when absent.
    #[arg(long = "tls-cert-file", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Key of `--tls-cert-file`.
    #[arg(long = "tls-private-key-file", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// When given, /metrics requires a client certificate signed by this
    /// CA (health endpoints stay open, as upstream's always-allow paths).
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
}

impl ServingFlags {
    /// The endpoint settings.
    pub fn config(&self) -> ServingConfig {
        ServingConfig {
            bind_address: self.bind_address.clone(),
            secure_port: self.secure_port,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_private_key_file: self.tls_private_key_file.clone(),
            client_ca_file: self.client_ca_file.clone(),
        }
    }
}
