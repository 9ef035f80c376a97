//! Running the pods bound to this node. [`run`] watches pods with
//! `spec.nodeName=<node>` and gives each pod uid its own worker
//! ([`worker`]), fed the newest version of its pod; a pod gone from the API
//! tells its worker to tear down. Sandboxes of pods that are not (or no
//! longer) bound here — deleted while the kubelet was down, say — are
//! removed at start and every [`ORPHAN_SWEEP`].

pub mod backoff;
pub mod container;
pub mod dns;
pub mod env;
pub mod events;
pub mod hosts;
pub mod images;
pub mod lifecycle;
pub mod probes;
pub mod sandbox;
pub mod services;
pub mod static_pods;
pub mod view;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};

use crate::cri::labels;
use static_pods::SourceEvent;
use worker::Context;

/// How often sandboxes of unknown pods are looked for.
pub const ORPHAN_SWEEP: Duration = Duration::from_secs(30);

type Senders = HashMap<String, watch::Sender<Option<Arc<Pod>>>>;

/// Uids of the pods that have a worker, shared with the orphan sweep so
/// it decides on the set as it is when it looks, not as it was when it
/// started (a worker spawned meanwhile may have made a sandbox).
type Live = Arc<std::sync::Mutex<HashSet<String>>>;

fn is_live(live: &Live, uid: &str) -> bool {
    live.lock().map(|l| l.contains(uid)).unwrap_or(true)
}

fn uid(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

fn dispatch(ctx: &Arc<Context>, workers: &mut Senders, live: &Live, pod: Pod) {
    let Some(id) = uid(&pod) else { return };
    let pod = Arc::new(pod);
    if let Some(tx) = workers.get(&id)
        && tx.send(Some(pod.clone())).is_ok()
    {
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    if let Ok(mut l) = live.lock() {
        l.insert(id.clone());
    }
    tokio::spawn(worker::run(ctx.clone(), id.clone(), rx));
    workers.insert(id, tx);
}

fn gone(workers: &mut Senders, id: &str) {
    if let Some(tx) = workers.get(id) {
        let _ = tx.send(None);
    }
}

/// Removes sandboxes, and pod directories, whose pod uid is not in `known`.
async fn sweep_orphans(ctx: Arc<Context>, live: Live) {
    let sandboxes = match ctx.cri.list_pod_sandboxes(HashMap::new()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("listing sandboxes for cleanup failed: {e:#}");
            return;
        }
    };
    for s in sandboxes {
        let Some(owner) = s.labels.get(labels::POD_UID) else {
            continue;
        };
        if is_live(&live, owner) {
            continue;
        }
        tracing::info!(sandbox = %s.id, pod_uid = %owner, "removing the sandbox of a pod not bound to this node");
        if let Err(e) = ctx.cri.stop_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, "stopping orphaned sandbox failed: {e:#}");
            continue;
        }
        if let Err(e) = ctx.cri.remove_pod_sandbox(&s.id).await {
            tracing::warn!(sandbox = %s.id, "removing orphaned sandbox failed: {e:#}");
        }
    }
    // Volume directories (and tmpfs mounts) of pods that are gone.
    for uid in ctx.volumes.pod_uids() {
        if !is_live(&live, &uid) {
            ctx.volumes.cleanup(&uid);
        }
    }
}

/// Watches this node's pods (and the static pods `statics` announces) and
/// runs a worker per pod; never returns. Mirror pods in the API are the
/// static pods' reflections, not pods to run.
pub async fn run(
    ctx: Arc<Context>,
    node_name: String,
    mut statics: Option<mpsc::Receiver<SourceEvent>>,
) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let stream = watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut workers: Senders = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    let mut synced = false;
    let mut sweep = tokio::time::interval(ORPHAN_SWEEP);
    let mut static_uids: HashSet<String> = HashSet::new();
    let live: Live = Arc::default();
    loop {
        let next_static = async {
            match statics.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = next_static => match event {
                Some(SourceEvent::Upsert(p)) => {
                    static_uids.extend(uid(&p));
                    dispatch(&ctx, &mut workers, &live, *p);
                }
                Some(SourceEvent::Remove(id)) => {
                    static_uids.remove(&id);
                    gone(&mut workers, &id);
                }
                None => statics = None,
            },
            event = stream.next() => {
                let Some(event) = event else { return };
                let mirror = matches!(&event,
                    Ok(watcher::Event::Apply(p) | watcher::Event::Delete(p) | watcher::Event::InitApply(p))
                        if static_pods::is_mirror(p));
                if mirror {
                    continue;
                }
                match event {
                    Ok(watcher::Event::Apply(p)) => dispatch(&ctx, &mut workers, &live, p),
                    Ok(watcher::Event::Delete(p)) => {
                        if let Some(id) = uid(&p) {
                            gone(&mut workers, &id);
                        }
                    }
                    Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
                    Ok(watcher::Event::InitApply(p)) => {
                        if let (Some(set), Some(id)) = (listed.as_mut(), uid(&p)) {
                            set.insert(id);
                        }
                        dispatch(&ctx, &mut workers, &live, p);
                    }
                    Ok(watcher::Event::InitDone) => {
                        // Pods deleted while the watch was down.
                        let mut present = listed.take().unwrap_or_default();
                        present.extend(static_uids.iter().cloned());
                        for id in workers.keys().filter(|id| !present.contains(*id)).cloned().collect::<Vec<_>>() {
                            gone(&mut workers, &id);
                        }
                        if !synced {
                            synced = true;
                            tokio::spawn(sweep_orphans(ctx.clone(), live.clone()));
                        }
                    }
                    Err(e) => tracing::warn!("watching pods failed: {e}"),
                }
            }
            _ = sweep.tick() => {
                workers.retain(|_, tx| !tx.is_closed());
                if let Ok(mut l) = live.lock() {
                    l.retain(|id| workers.contains_key(id));
                }
                if synced {
                    tokio::spawn(sweep_orphans(ctx.clone(), live.clone()));
                }
            }
        }
    }
}
