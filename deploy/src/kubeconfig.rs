//! A minimal, kubectl-compatible kubeconfig model.
//!
//! Only the fields Capstan writes (and a few commonly present ones) are
//! modelled; unknown fields are ignored when reading, so kubeconfigs written
//! by other tools still parse.

pub mod merge;

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// A kubeconfig document (`apiVersion: v1`, `kind: Config`), the file format
/// kubectl and client libraries use to find and authenticate to a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    /// Always `v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// Always `Config`.
    pub kind: String,
    /// Known clusters, referenced by name from contexts.
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    /// Known credentials, referenced by name from contexts.
    #[serde(default)]
    pub users: Vec<NamedUser>,
    /// Cluster/user pairings, one of which is current.
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    /// Name of the context clients use by default.
    #[serde(default)]
    pub current_context: String,
}

/// A cluster entry together with the name contexts refer to it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedCluster {
    /// Name contexts use to reference this cluster.
    pub name: String,
    /// How to reach and trust the cluster.
    pub cluster: Cluster,
}

/// How to reach an API server and which CA to trust for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    /// The API server URL, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    /// Base64 of the PEM CA bundle used to verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority_data: Option<String>,
    /// Name to verify the server certificate against instead of the URL host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Disable server certificate verification (never written by Capstan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_tls_verify: Option<bool>,
}

/// A user (client-go: "AuthInfo") entry together with its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedUser {
    /// Name contexts use to reference these credentials.
    pub name: String,
    /// The credentials themselves.
    pub user: User,
}

/// Client credentials presented to the API server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct User {
    /// Base64 of the PEM client certificate (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_data: Option<String>,
    /// Base64 of the PEM private key matching `client_certificate_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_data: Option<String>,
    /// Bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A context entry together with its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedContext {
    /// Name `current-context` refers to.
    pub name: String,
    /// The cluster/user pairing.
    pub context: Context,
}

/// Pairs a cluster with the credentials used against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Name of an entry in `clusters`.
    pub cluster: String,
    /// Name of an entry in `users`.
    pub user: String,
    /// Default namespace for this context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Kubeconfig {
    /// Builds a single-cluster kubeconfig authenticating with an embedded
    /// client certificate; the context is named after the cluster and made
    /// current. All PEMs are embedded (base64) so the file is self-contained.
    pub fn with_client_certificate(
        cluster_name: &str,
        server: &str,
        ca_pem: &str,
        user_name: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Self {
        Kubeconfig {
            api_version: "v1".to_string(),
            kind: "Config".to_string(),
            clusters: vec![NamedCluster {
                name: cluster_name.to_string(),
                cluster: Cluster {
                    server: server.to_string(),
                    certificate_authority_data: Some(BASE64.encode(ca_pem)),
                    tls_server_name: None,
                    insecure_skip_tls_verify: None,
                },
            }],
            users: vec![NamedUser {
                name: user_name.to_string(),
                user: User {
                    client_certificate_data: Some(BASE64.encode(cert_pem)),
                    client_key_data: Some(BASE64.encode(key_pem)),
                    token: None,
                },
            }],
            contexts: vec![NamedContext {
                name: cluster_name.to_string(),
                context: Context {
                    cluster: cluster_name.to_string(),
                    user: user_name.to_string(),
                    namespace: None,
                },
            }],
            current_context: cluster_name.to_string(),
        }
    }

    /// Serializes to YAML, the form kubectl writes and reads.
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        // Plain scalars like kubectl writes, rather than folded `>-` blocks
        // for the long base64 values.
        let mut options = serde_saphyr::SerializerOptions::default();
        options.prefer_block_scalars = false;
        serde_saphyr::to_string_with_options(self, options)
            .context("serializing kubeconfig to YAML")
    }

    /// Parses a kubeconfig from YAML (or JSON, which is valid YAML).
    pub fn from_yaml(text: &str) -> anyhow::Result<Self> {
        serde_saphyr::from_str(text).context("parsing kubeconfig")
    }

    /// Resolves `current-context` to its cluster and user entries, which is
    /// what a client needs to connect.
    pub fn current(&self) -> anyhow::Result<(&Cluster, &User)> {
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .ok_or_else(|| anyhow!("current-context {:?} not found", self.current_context))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == ctx.context.cluster)
            .ok_or_else(|| anyhow!("cluster {:?} not found", ctx.context.cluster))?;
        let user = self
            .users
            .iter()
            .find(|u| u.name == ctx.context.user)
            .ok_or_else(|| anyhow!("user {:?} not found", ctx.context.user))?;
        Ok((&cluster.cluster, &user.user))
    }
}

impl Cluster {
    /// Decoded `certificate-authority-data` (PEM bytes), if present.
    pub fn certificate_authority_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        decode_opt(
            &self.certificate_authority_data,
            "certificate-authority-data",
        )
    }
}

impl User {
    /// Decoded `client-certificate-data` (PEM bytes), if present.
    pub fn client_certificate_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        decode_opt(&self.client_certificate_data, "client-certificate-data")
    }

    /// Decoded `client-key-data` (PEM bytes), if present.
    pub fn client_key_pem(&self) -> anyhow::Result<Option<Vec<u8>>> {
        decode_opt(&self.client_key_data, "client-key-data")
    }
}

fn decode_opt(data: &Option<String>, field: &str) -> anyhow::Result<Option<Vec<u8>>> {
    data.as_deref()
        .map(|d| {
            BASE64
                .decode(d.trim())
                .with_context(|| format!("{field} is not valid base64"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trip_and_current_resolution() {
        let kc = Kubeconfig::with_client_certificate(
            "c",
            "https://h:1",
            "CA PEM\n",
            "u",
            "CERT\n",
            "KEY\n",
        );
        let yaml = kc.to_yaml().unwrap();
        assert!(yaml.contains("certificate-authority-data"), "{yaml}");
        assert!(yaml.contains("current-context"), "{yaml}");
        assert!(yaml.contains("apiVersion"), "{yaml}");
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(back, kc);
        let (cluster, user) = back.current().unwrap();
        assert_eq!(cluster.server, "https://h:1");
        assert_eq!(
            cluster.certificate_authority_pem().unwrap().unwrap(),
            b"CA PEM\n"
        );
        assert_eq!(user.client_certificate_pem().unwrap().unwrap(), b"CERT\n");
        assert_eq!(user.client_key_pem().unwrap().unwrap(), b"KEY\n");
    }

    #[test]
    fn parses_kubectl_style_file_with_unknown_fields() {
        let text = r#"
apiVersion: v1
kind: Config
preferences: {}
clusters:
- name: x
  cluster:
    server: https://10.0.0.1:6443
    insecure-skip-tls-verify: true
    extensions: []
contexts:
- name: x
  context: {cluster: x, user: y, namespace: ns}
users:
- name: y
  user: {token: abc}
current-context: x
"#;
        let kc = Kubeconfig::from_yaml(text).unwrap();
        let (cluster, user) = kc.current().unwrap();
        assert_eq!(cluster.insecure_skip_tls_verify, Some(true));
        assert_eq!(cluster.certificate_authority_pem().unwrap(), None);
        assert_eq!(user.token.as_deref(), Some("abc"));
    }

    #[test]
    fn missing_current_context_is_an_error() {
        let mut kc = Kubeconfig::with_client_certificate("c", "https://h", "a", "u", "b", "k");
        kc.current_context = "nope".into();
        assert!(kc.current().is_err());
    }
}
