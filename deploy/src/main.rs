//! `capstan`: deployment tooling for Capstan clusters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use capstan::cluster::{self, CreateOptions, DEFAULT_CLUSTER_NAME};
use capstan::pki::{self, PkiOptions};
use capstan_component_base::duration::parse_duration;

#[derive(Debug, Parser)]
#[command(
    name = "capstan",
    version,
    about = "Capstan cluster deployment tooling"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the cluster PKI (CA, serving and client certificates).
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Create a local cluster (`capstan create cluster`).
    Create {
        #[command(subcommand)]
        command: CreateCommand,
    },
    /// List local clusters (`capstan get clusters`).
    Get {
        #[command(subcommand)]
        command: GetCommand,
    },
    /// Delete a local cluster (`capstan delete cluster`).
    Delete {
        #[command(subcommand)]
        command: DeleteCommand,
    },
    /// Load images into a local cluster's node (`capstan load
    /// image-archive`).
    Load {
        #[command(subcommand)]
        command: LoadCommand,
    },
}

#[derive(Debug, Subcommand)]
enum LoadCommand {
    /// Import a docker or OCI image archive into the cluster's containerd
    /// (namespace k8s.io), so pods can use the image without pulling it.
    ImageArchive {
        /// The image archive (`docker save`, `ctr images export` or an OCI
        /// layout tar).
        #[arg(value_name = "TAR")]
        archive: PathBuf,
        /// The cluster's name.
        #[arg(long, default_value = DEFAULT_CLUSTER_NAME)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum CreateCommand {
    /// Start a local cluster (etcd, apiserver, scheduler,
    /// controller-manager, and nodes, each a network namespace running
    /// containerd, capstan-kubelet and capstan-proxy, plus cluster DNS)
    /// with its state in $CAPSTAN_HOME/clusters/NAME
    /// and a kubeconfig context capstan-NAME; does nothing when it already
    /// runs, and restarts whatever stopped.
    Cluster {
        /// The cluster's name.
        #[arg(long, default_value = DEFAULT_CLUSTER_NAME)]
        name: String,
        /// Kubeconfig file to add the context to (default: the first file
        /// in $KUBECONFIG, else ~/.kube/config).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// How long the components may take, in total, to become ready;
        /// creating fails with the lagging component's log after it.
        #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
        wait: Duration,
        /// How many nodes (the first also runs the control plane; the
        /// others are workers); default 1, or an existing cluster's.
        #[arg(long, value_name = "N")]
        nodes: Option<usize>,
    },
}

#[derive(Debug, Subcommand)]
enum GetCommand {
    /// List the local clusters, one name per line.
    Clusters,
}

#[derive(Debug, Subcommand)]
enum DeleteCommand {
    /// Stop everything a cluster runs, remove its state directory and its
    /// kubeconfig entries; succeeds when it does not exist.
    Cluster {
        /// The cluster's name.
        #[arg(long, default_value = DEFAULT_CLUSTER_NAME)]
        name: String,
        /// Kubeconfig file to remove the context from, besides the ones
        /// `create` added it to (default: as for create).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PkiCommand {
    /// Create the cluster CA (or reuse the one in DIR), issue the API server
    /// and admin certificates, and write an admin kubeconfig.
    Init {
        /// Directory to write certificates, keys and the kubeconfig into.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// API server URL clients will use, e.g. https://127.0.0.1:6443.
        #[arg(long, value_name = "URL")]
        server: String,
        /// Extra API server certificate SAN (IP address or DNS name); repeatable.
        #[arg(long = "host", value_name = "NAME_OR_IP", num_args = 1..)]
        hosts: Vec<String>,
    },
}

fn main() -> ExitCode {
    // Print the error chain on one line ourselves: returning the anyhow error
    // from main would also dump a backtrace whenever RUST_BACKTRACE is set.
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pki {
            command: PkiCommand::Init { dir, server, hosts },
        } => {
            let ca_cert = dir.join(pki::CA_CERT);
            let report = pki::init(&PkiOptions { dir, server, hosts })?;
            if report.ca_reused {
                println!("reusing existing CA {}", ca_cert.display());
            }
            for path in &report.written {
                println!("wrote {}", path.display());
            }
        }
        Command::Create {
            command:
                CreateCommand::Cluster {
                    name,
                    kubeconfig,
                    wait,
                    nodes,
                },
        } => cluster::create(&CreateOptions {
            name,
            kubeconfig,
            wait,
            nodes,
        })?,
        Command::Get {
            command: GetCommand::Clusters,
        } => {
            let names = cluster::list()?;
            if names.is_empty() {
                eprintln!("No capstan clusters found.");
            }
            for name in names {
                println!("{name}");
            }
        }
        Command::Delete {
            command: DeleteCommand::Cluster { name, kubeconfig },
        } => cluster::delete(&name, kubeconfig.as_deref())?,
        Command::Load {
            command: LoadCommand::ImageArchive { archive, name },
        } => cluster::load_image_archive(&name, &archive)?,
    }
    Ok(())
}
