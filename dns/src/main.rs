use clap::Parser;

#[tokio::main]
async fn main() {
    capstan_component_base::tls::install_crypto_provider();
    capstan_component_base::logging::init();
    let opts = capstan_dns::Options::parse();
    if let Err(e) = capstan_dns::run(opts).await {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
