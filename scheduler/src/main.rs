use clap::Parser;

#[tokio::main]
async fn main() {
    capstan_component_base::tls::install_crypto_provider();
    capstan_component_base::logging::init();
    let opts = capstan_scheduler::options::Options::parse();
    // Exit at once, as upstream does when leadership is lost: the
    // scheduling thread must not outlive the decision to stop.
    match capstan_scheduler::run(opts).await {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(1)
        }
    }
}
