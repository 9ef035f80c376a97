use clap::Parser;

#[tokio::main]
async fn main() {
    capstan_component_base::tls::install_crypto_provider();
    capstan_component_base::logging::init();
    let opts = capstan_controller_manager::options::Options::parse();
    // Exit at once when leadership is lost, as upstream does: controllers
    // must not keep acting after another replica may have started.
    match capstan_controller_manager::run(opts).await {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(1)
        }
    }
}
