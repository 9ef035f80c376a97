//! `capstan`: deployment tooling for Capstan clusters.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use capstan::pki::{self, PkiOptions};

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
    }
    Ok(())
}
