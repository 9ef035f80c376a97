//! `capstan-apiserver` entry point: flags, logging, run.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    capstan_component_base::tls::install_crypto_provider();
    capstan_component_base::logging::init();
    let opts = capstan_apiserver::options::Options::parse();
    capstan_apiserver::run(opts).await
}
