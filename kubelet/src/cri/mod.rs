//! The container runtime, spoken to only through CRI v1 over its unix
//! socket (containerd's `io.containerd.grpc.v1.cri` plugin). [`Cri`] wraps
//! the generated `RuntimeService` and `ImageService` clients with the calls
//! the kubelet makes, so the rest of the crate never builds raw requests or
//! interprets gRPC codes itself.

pub mod labels;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

pub use k8s_cri::v1::{
    AuthConfig, Container, ContainerConfig, ContainerState, ContainerStatus, PodSandbox,
    PodSandboxConfig, PodSandboxState, PodSandboxStatus,
};

/// A connection to one CRI runtime; cheap to clone (one HTTP/2 channel).
#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
}

/// The socket path of a `--container-runtime-endpoint`, which upstream
/// accepts as `unix:///path` or a bare path.
pub fn socket_path(endpoint: &str) -> PathBuf {
    PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

fn is_not_found(s: &tonic::Status) -> bool {
    s.code() == tonic::Code::NotFound
}

impl Cri {
    /// Connects lazily to the runtime at `endpoint` (see [`socket_path`]):
    /// calls fail, and are retried by their callers, while the runtime is
    /// down, and the channel reconnects when it comes back.
    pub fn connect(endpoint: &str) -> Result<Self> {
        let path = socket_path(endpoint);
        let channel = Endpoint::try_from("http://[::1]:0")
            .context("building the CRI endpoint")?
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }));
        Ok(Cri {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(16 * 1024 * 1024),
            images: ImageServiceClient::new(channel).max_decoding_message_size(16 * 1024 * 1024),
        })
    }

    /// The runtime's name and version (`containerd`, `v1.6.20`...).
    pub async fn version(&self) -> Result<cri::VersionResponse> {
        let req = cri::VersionRequest {
            version: "v1".into(),
        };
        Ok(self
            .runtime
            .clone()
            .version(req)
            .await
            .context("CRI Version")?
            .into_inner())
    }

    /// The runtime's conditions (RuntimeReady, NetworkReady).
    pub async fn status(&self) -> Result<Vec<cri::RuntimeCondition>> {
        let resp = self
            .runtime
            .clone()
            .status(cri::StatusRequest { verbose: false })
            .await
            .context("CRI Status")?
            .into_inner();
        Ok(resp.status.map(|s| s.conditions).unwrap_or_default())
    }

    /// The sandbox (pause) image the runtime is configured with, from its
    /// verbose status (containerd reports its CRI config there).
    pub async fn sandbox_image(&self) -> Result<Option<String>> {
        let resp = self
            .runtime
            .clone()
            .status(cri::StatusRequest { verbose: true })
            .await
            .context("CRI Status")?
            .into_inner();
        Ok(resp.info.get("config").and_then(|c| {
            serde_json::from_str::<serde_json::Value>(c)
                .ok()?
                .get("sandboxImage")?
                .as_str()
                .map(str::to_string)
        }))
    }

    /// Hands the node's pod CIDR to the runtime, whose CNI config template
    /// is rendered with it.
    pub async fn update_pod_cidr(&self, cidr: &str) -> Result<()> {
        let req = cri::UpdateRuntimeConfigRequest {
            runtime_config: Some(cri::RuntimeConfig {
                network_config: Some(cri::NetworkConfig {
                    pod_cidr: cidr.into(),
                }),
            }),
        };
        self.runtime
            .clone()
            .update_runtime_config(req)
            .await
            .context("CRI UpdateRuntimeConfig")?;
        Ok(())
    }

    /// Creates and starts a pod sandbox; returns its id.
    pub async fn run_pod_sandbox(&self, config: PodSandboxConfig) -> Result<String> {
        let req = cri::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        Ok(self
            .runtime
            .clone()
            .run_pod_sandbox(req)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .pod_sandbox_id)
    }

    /// Stops a sandbox (its containers and network); gone is fine.
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = cri::StopPodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        match self.runtime.clone().stop_pod_sandbox(req).await {
            Err(s) if !is_not_found(&s) => Err(s).context("CRI StopPodSandbox"),
            _ => Ok(()),
        }
    }

    /// Removes a stopped sandbox and its containers; gone is fine.
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<()> {
        let req = cri::RemovePodSandboxRequest {
            pod_sandbox_id: id.into(),
        };
        match self.runtime.clone().remove_pod_sandbox(req).await {
            Err(s) if !is_not_found(&s) => Err(s).context("CRI RemovePodSandbox"),
            _ => Ok(()),
        }
    }

    /// A sandbox's status (state, IPs); `None` when it is gone.
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<Option<PodSandboxStatus>> {
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        };
        match self.runtime.clone().pod_sandbox_status(req).await {
            Ok(r) => Ok(r.into_inner().status),
            Err(s) if is_not_found(&s) => Ok(None),
            Err(s) => Err(s).context("CRI PodSandboxStatus"),
        }
    }

    /// Sandboxes whose labels include all of `labels` (all when empty).
    pub async fn list_pod_sandboxes(
        &self,
        labels: HashMap<String, String>,
    ) -> Result<Vec<PodSandbox>> {
        let req = cri::ListPodSandboxRequest {
            filter: Some(cri::PodSandboxFilter {
                label_selector: labels,
                ..Default::default()
            }),
        };
        Ok(self
            .runtime
            .clone()
            .list_pod_sandbox(req)
            .await
            .context("CRI ListPodSandbox")?
            .into_inner()
            .items)
    }

    /// Creates a container in a sandbox; returns its id.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: ContainerConfig,
        sandbox_config: PodSandboxConfig,
    ) -> Result<String> {
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox_id.into(),
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        };
        Ok(self
            .runtime
            .clone()
            .create_container(req)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner()
            .container_id)
    }

    /// Starts a created container.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let req = cri::StartContainerRequest {
            container_id: id.into(),
        };
        self.runtime
            .clone()
            .start_container(req)
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        Ok(())
    }

    /// Stops a container: SIGTERM (or the image's stop signal), SIGKILL
    /// after `timeout_secs`; gone is fine.
    pub async fn stop_container(&self, id: &str, timeout_secs: i64) -> Result<()> {
        let req = cri::StopContainerRequest {
            container_id: id.into(),
            timeout: timeout_secs,
        };
        match self.runtime.clone().stop_container(req).await {
            Err(s) if !is_not_found(&s) => Err(s).context("CRI StopContainer"),
            _ => Ok(()),
        }
    }

    /// Removes a container; gone is fine.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let req = cri::RemoveContainerRequest {
            container_id: id.into(),
        };
        match self.runtime.clone().remove_container(req).await {
            Err(s) if !is_not_found(&s) => Err(s).context("CRI RemoveContainer"),
            _ => Ok(()),
        }
    }

    /// Containers whose labels include all of `labels`.
    pub async fn list_containers(&self, labels: HashMap<String, String>) -> Result<Vec<Container>> {
        let req = cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                label_selector: labels,
                ..Default::default()
            }),
        };
        Ok(self
            .runtime
            .clone()
            .list_containers(req)
            .await
            .context("CRI ListContainers")?
            .into_inner()
            .containers)
    }

    /// One container's status (state, exit code, reason, times); `None`
    /// when it is gone.
    pub async fn container_status(&self, id: &str) -> Result<Option<ContainerStatus>> {
        let req = cri::ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        match self.runtime.clone().container_status(req).await {
            Ok(r) => Ok(r.into_inner().status),
            Err(s) if is_not_found(&s) => Ok(None),
            Err(s) => Err(s).context("CRI ContainerStatus"),
        }
    }

    /// Runs `cmd` in a container and returns (exit code, stdout, stderr).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout_secs: i64,
    ) -> Result<(i32, Vec<u8>, Vec<u8>)> {
        let req = cri::ExecSyncRequest {
            container_id: id.into(),
            cmd,
            timeout: timeout_secs,
        };
        let r = self
            .runtime
            .clone()
            .exec_sync(req)
            .await
            .context("CRI ExecSync")?
            .into_inner();
        Ok((r.exit_code, r.stdout, r.stderr))
    }

    /// A one-time URL on the runtime's streaming server for an exec
    /// session (the client's connection is relayed there).
    pub async fn exec_url(&self, req: cri::ExecRequest) -> Result<String> {
        Ok(self
            .runtime
            .clone()
            .exec(req)
            .await
            .context("CRI Exec")?
            .into_inner()
            .url)
    }

    /// A one-time URL for attaching to a container's main process.
    pub async fn attach_url(&self, req: cri::AttachRequest) -> Result<String> {
        Ok(self
            .runtime
            .clone()
            .attach(req)
            .await
            .context("CRI Attach")?
            .into_inner()
            .url)
    }

    /// A one-time URL for forwarding ports into a sandbox's network
    /// namespace (the ports are named by the client's streams).
    pub async fn port_forward_url(&self, sandbox_id: &str) -> Result<String> {
        let req = cri::PortForwardRequest {
            pod_sandbox_id: sandbox_id.into(),
            port: Vec::new(),
        };
        Ok(self
            .runtime
            .clone()
            .port_forward(req)
            .await
            .context("CRI PortForward")?
            .into_inner()
            .url)
    }

    /// Every image the runtime holds.
    pub async fn list_images(&self) -> Result<Vec<cri::Image>> {
        Ok(self
            .images
            .clone()
            .list_images(cri::ListImagesRequest { filter: None })
            .await
            .context("CRI ListImages")?
            .into_inner()
            .images)
    }

    /// Removes an image (by id); gone already is success.
    pub async fn remove_image(&self, id: &str) -> Result<()> {
        let req = cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: id.into(),
                ..Default::default()
            }),
        };
        match self.images.clone().remove_image(req).await {
            Ok(_) => Ok(()),
            Err(s) if is_not_found(&s) => Ok(()),
            Err(s) => Err(anyhow::anyhow!("CRI RemoveImage: {}", s.message())),
        }
    }

    /// The filesystems images are stored on (mount point, bytes used).
    pub async fn image_filesystems(&self) -> Result<Vec<cri::FilesystemUsage>> {
        Ok(self
            .images
            .clone()
            .image_fs_info(cri::ImageFsInfoRequest {})
            .await
            .context("CRI ImageFsInfo")?
            .into_inner()
            .image_filesystems)
    }

    /// The image's id (`sha256:...`) if the runtime has it.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>> {
        let req = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        Ok(self
            .images
            .clone()
            .image_status(req)
            .await
            .context("CRI ImageStatus")?
            .into_inner()
            .image
            .map(|i| i.id))
    }

    /// Pulls an image (with registry credentials when given); returns the
    /// image reference the runtime resolved.
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<AuthConfig>,
        sandbox_config: PodSandboxConfig,
    ) -> std::result::Result<String, String> {
        let req = cri::PullImageRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            auth,
            sandbox_config: Some(sandbox_config),
        };
        self.images
            .clone()
            .pull_image(req)
            .await
            .map(|r| r.into_inner().image_ref)
            .map_err(|s| s.message().to_string())
    }
}
