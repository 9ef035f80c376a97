//! Getting a container's image as upstream's image manager does: by
//! `imagePullPolicy` (Always, IfNotPresent, Never → `ErrImageNeverPull`),
//! with the pod's `imagePullSecrets` as registry credentials, and a
//! back-off between failed pulls (`ImagePullBackOff`).

use std::collections::BTreeMap;

use base64::Engine;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::Api;

use capstan_component_base::events::EventSink;
use k8s_openapi::api::core::v1::ObjectReference;

use crate::cri::Cri;

/// Why a container is waiting for its image: (reason, message) as
/// upstream shows them.
pub type ImageError = (String, String);

/// The pull policy in force: the field, or upstream's default (Always for
/// `:latest` or no tag, else IfNotPresent).
pub fn pull_policy(c: &Container) -> String {
    if let Some(p) = &c.image_pull_policy {
        return p.clone();
    }
    let image = c.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    let tagged = last.contains(':') && !last.ends_with(":latest");
    if tagged || image.contains('@') {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

/// The registry host of an image reference (docker.io when none).
fn registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((host, _)) if host.contains(['.', ':']) || host == "localhost" => host,
        _ => "docker.io",
    }
}

/// Credentials for registry `host` in a pull secret's data
/// (`.dockerconfigjson` or the older `.dockercfg`).
pub fn auth_from_secret(data: &BTreeMap<String, Vec<u8>>, host: &str) -> Option<cri::AuthConfig> {
    let auths = if let Some(j) = data.get(".dockerconfigjson") {
        serde_json::from_slice::<serde_json::Value>(j)
            .ok()
            .and_then(|v| v.get("auths").cloned())
    } else if let Some(j) = data.get(".dockercfg") {
        serde_json::from_slice::<serde_json::Value>(j).ok()
    } else {
        None
    };
    let Some(serde_json::Value::Object(auths)) = auths else {
        return None;
    };
    for (server, entry) in auths {
        let server_host = server
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let matches =
            server_host == host || (host == "docker.io" && server_host == "index.docker.io");
        if !matches {
            continue;
        }
        let field = |k: &str| {
            entry
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let mut username = field("username");
        let mut password = field("password");
        let auth = field("auth");
        if username.is_empty()
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&auth)
            && let Some((u, p)) = String::from_utf8_lossy(&decoded).split_once(':')
        {
            username = u.to_string();
            password = p.to_string();
        }
        return Some(cri::AuthConfig {
            username,
            password,
            auth,
            // A URL: containerd parses it as one and compares its host
            // with the registry's ("127.0.0.1:5000" alone does not parse).
            server_address: format!("https://{server_host}"),
            ..Default::default()
        });
    }
    None
}

/// Credentials for `image` from the pod's pull secrets, the first that
/// names its registry.
pub async fn auth_for(client: &kube::Client, pod: &Pod, image: &str) -> Option<cri::AuthConfig> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let host = registry(image);
    for r in pod
        .spec
        .iter()
        .flat_map(|s| s.image_pull_secrets.iter().flatten())
    {
        let Ok(Some(secret)) = api.get_opt(&r.name).await else {
            continue;
        };
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        if let Some(auth) = auth_from_secret(&data, host) {
            return Some(auth);
        }
    }
    None
}

/// Makes sure the runtime has `c`'s image per its pull policy, with
/// upstream's Pulling/Pulled/Failed Events about `regarding`; returns the
/// image reference to create the container with.
pub async fn ensure(
    cri: &Cri,
    client: &kube::Client,
    pod: &Pod,
    c: &Container,
    sandbox_config: &cri::PodSandboxConfig,
    events: &EventSink,
    regarding: &ObjectReference,
) -> Result<String, ImageError> {
    let image = c.image.clone().unwrap_or_default();
    if image.is_empty() {
        return Err(("InvalidImageName".into(), "image name is empty".into()));
    }
    let policy = pull_policy(c);
    let present = cri
        .image_id(&image)
        .await
        .map_err(|e| ("ErrImagePull".to_string(), format!("{e:#}")))?;
    match (policy.as_str(), present) {
        ("Never", Some(_)) | ("IfNotPresent", Some(_)) => {
            events.normal(
                regarding.clone(),
                "Pulled",
                "PullImage",
                format!("Container image {image:?} already present on machine"),
            );
            return Ok(image);
        }
        ("Never", None) => {
            return Err((
                "ErrImageNeverPull".into(),
                format!("Container image {image:?} is not present with pull policy of Never"),
            ));
        }
        _ => {}
    }
    let auth = auth_for(client, pod, &image).await;
    events.normal(
        regarding.clone(),
        "Pulling",
        "PullImage",
        format!("Pulling image {image:?}"),
    );
    let started = std::time::Instant::now();
    match cri.pull_image(&image, auth, sandbox_config.clone()).await {
        Ok(_) => {
            let took = started.elapsed().as_secs_f64();
            events.normal(
                regarding.clone(),
                "Pulled",
                "PullImage",
                format!("Successfully pulled image {image:?} in {took:.3}s ({took:.3}s including waiting)"),
            );
            Ok(image)
        }
        Err(e) => {
            let message = format!("failed to pull and unpack image {image:?}: {e}");
            events.warning(
                regarding.clone(),
                "Failed",
                "PullImage",
                format!("Failed to pull image {image:?}: {message}"),
            );
            Err(("ErrImagePull".into(), message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn pull_secrets_give_the_registry_credentials() {
        let json = r#"{"auths":{"127.0.0.1:5000":{"username":"u","password":"p","auth":"dTpw"},
            "https://index.docker.io/v1/":{"auth":"YTpi"}}}"#;
        let data = BTreeMap::from([(".dockerconfigjson".to_string(), json.as_bytes().to_vec())]);
        let a = auth_from_secret(&data, "127.0.0.1:5000").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        assert_eq!(a.server_address, "https://127.0.0.1:5000");
        let hub = auth_from_secret(&data, "docker.io").unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("a", "b"));
        assert!(auth_from_secret(&data, "quay.io").is_none());
    }

    #[test]
    fn default_pull_policy_follows_the_tag() {
        assert_eq!(pull_policy(&c("busybox", None)), "Always");
        assert_eq!(pull_policy(&c("busybox:latest", None)), "Always");
        assert_eq!(
            pull_policy(&c("localhost:5000/busybox:1.35", None)),
            "IfNotPresent"
        );
        assert_eq!(pull_policy(&c("localhost:5000/busybox", None)), "Always");
        assert_eq!(pull_policy(&c("busybox", Some("Never"))), "Never");
        assert_eq!(registry("localhost:5000/x"), "localhost:5000");
        assert_eq!(registry("library/busybox"), "docker.io");
    }
}
