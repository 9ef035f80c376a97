//! The one way a Capstan component builds its API client: from a
//! kubeconfig file, or the in-cluster/default configuration when none is
//! given, with the `kube` crate.

use std::path::Path;

use anyhow::{Context, Result};

/// A client for the apiserver named in `kubeconfig` (its current context),
/// or kube's default discovery (`KUBECONFIG`, in-cluster) when `None`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("finding a kubeconfig")?,
    };
    kube::Client::try_from(config).context("building the API client")
}
