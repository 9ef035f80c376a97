//! The Namespace controller (upstream's `namespace`): once a namespace is
//! being deleted (the apiserver has set its `deletionTimestamp` and phase
//! Terminating), everything in it is deleted, whatever kinds the
//! apiserver serves at that moment (found through discovery, custom ones
//! included), and when nothing is left the `kubernetes` finalizer is
//! removed through the `finalize` subresource, which lets the apiserver
//! remove the namespace.

mod conditions;
mod content;

use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::informer;
use crate::metrics::Metrics;
use crate::runner::{Outcome, Runner};

/// The controller's name, as upstream's `--controllers` spells it.
pub const NAME: &str = "namespace";
/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";
/// How soon a namespace whose content is still going is looked at again.
const REMAINING_RECHECK: Duration = Duration::from_secs(1);

/// Watches namespaces and empties those being deleted.
pub async fn run(client: kube::Client, metrics: Metrics, workers: usize) -> Result<()> {
    let runner = Runner::new(NAME, &metrics);
    let queue = runner.queue();
    let namespaces = informer::spawn(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let Some(ns) = informer::object(event)
                && !matches!(event, watcher::Event::Delete(_))
                && ns.metadata.deletion_timestamp.is_some()
                && let Some(name) = &ns.metadata.name
            {
                queue.add(name.clone());
            }
        },
    );
    namespaces.wait_until_ready().await?;
    runner
        .run(workers, move |name| {
            reconcile(client.clone(), namespaces.clone(), name)
        })
        .await;
    Err(anyhow!("the workers stopped"))
}

fn has_finalizer(ns: &Namespace) -> bool {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

/// One step of emptying namespace `name`: delete what is in it, report
/// progress in its conditions, and finalize it once it is empty.
async fn reconcile(client: kube::Client, namespaces: Store<Namespace>, name: String) -> Outcome {
    let Some(ns) = namespaces.get(&ObjectRef::new(&name)) else {
        return Ok(None);
    };
    if ns.metadata.deletion_timestamp.is_none() || !has_finalizer(&ns) {
        return Ok(None);
    }
    let report = content::delete_all(&client, &name).await;
    let api = Api::<Namespace>::all(client);
    conditions::update(&api, &ns, &report).await?;
    if let Some(e) = &report.discovery_error {
        return Err(anyhow!("discovering resources to delete: {e}"));
    }
    if !report.failures.is_empty() {
        return Err(anyhow!(
            "deleting content of namespace {name}: {}",
            report.failures.join("; ")
        ));
    }
    if !report.remaining.is_empty() {
        return Ok(Some(REMAINING_RECHECK));
    }
    finalize(&api, &name).await
}

/// Removes [`FINALIZER`] from the live namespace through `finalize`.
async fn finalize(api: &Api<Namespace>, name: &str) -> Outcome {
    let Some(mut ns) = api.get_opt(name).await? else {
        return Ok(None);
    };
    if !has_finalizer(&ns) {
        return Ok(None);
    }
    if let Some(f) = ns.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|f| f != FINALIZER);
    }
    match api
        .replace_subresource("finalize", name, &PostParams::default(), &ns)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = name, "namespace emptied and finalized");
            Ok(None)
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}
