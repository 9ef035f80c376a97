use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    capstan_component_base::tls::install_crypto_provider();
    capstan_component_base::logging::init();
    let opts = capstan_scheduler::options::Options::parse();
    capstan_scheduler::run(opts).await
}
