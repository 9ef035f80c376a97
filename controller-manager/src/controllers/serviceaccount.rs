//! The ServiceAccount controller (upstream's `serviceaccount`): every
//! namespace that is not terminating has a `default` ServiceAccount, and
//! gets it back when it is deleted.

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::informer;
use crate::metrics::Metrics;
use crate::runner::{Outcome, Runner};

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "serviceaccount";
/// The ServiceAccount every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Watches namespaces and ServiceAccounts and keeps `default` in every
/// active namespace. Upstream runs one worker.
pub async fn run(client: kube::Client, metrics: Metrics) -> Result<()> {
    let runner = Runner::new(NAME, &metrics);
    let queue = runner.queue();
    let namespaces = informer::spawn(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let Some(ns) = informer::object(event)
                && !matches!(event, watcher::Event::Delete(_))
                && let Some(name) = &ns.metadata.name
            {
                queue.add(name.clone());
            }
        },
    );
    let queue = runner.queue();
    let accounts = informer::spawn(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default().fields("metadata.name=default"),
        move |event| {
            if let watcher::Event::Delete(sa) = event
                && let Some(ns) = &sa.metadata.namespace
            {
                queue.add(ns.clone());
            }
        },
    );
    namespaces.wait_until_ready().await?;
    accounts.wait_until_ready().await?;
    runner
        .run(1, move |key| {
            reconcile(client.clone(), namespaces.clone(), accounts.clone(), key)
        })
        .await;
    Err(anyhow!("the workers stopped"))
}

/// Creates `default` in namespace `name` if it is active and has none.
async fn reconcile(
    client: kube::Client,
    namespaces: Store<Namespace>,
    accounts: Store<ServiceAccount>,
    name: String,
) -> Outcome {
    let Some(ns) = namespaces.get(&ObjectRef::new(&name)) else {
        return Ok(None);
    };
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating
        || accounts
            .get(&ObjectRef::new(DEFAULT_SERVICE_ACCOUNT).within(&name))
            .is_some()
    {
        return Ok(None);
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT_SERVICE_ACCOUNT.into()),
            namespace: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<ServiceAccount>::namespaced(client, &name)
        .create(&PostParams::default(), &sa)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = %name, "created the default ServiceAccount");
            Ok(None)
        }
        // Created meanwhile, or the namespace began terminating: nothing
        // left to do (upstream ignores both).
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 || e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}
