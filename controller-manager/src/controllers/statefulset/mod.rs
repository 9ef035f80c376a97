//! The StatefulSet controller (upstream's `statefulset`): pods with a
//! stable identity, `<set>-<ordinal>` for ordinals
//! `spec.ordinals.start..start+replicas`, each with its own claims from
//! `volumeClaimTemplates`; created in order and each waiting for its
//! predecessors to be Running and Ready (`OrderedReady`) or all at once
//! (`Parallel`), removed from the highest ordinal down; rolled to a new
//! template by RollingUpdate (highest ordinal first, down to the
//! partition) or OnDelete, between ControllerRevisions (`history.rs`)
//! that `kubectl rollout history|undo` read.
//!
//! Modules: `spec` (the spec with defaults), `identity` (names, labels,
//! claims of a pod), `revisions` (current and update revision), `plan`
//! (the pure decision), `control` (carrying it out), `claims` (claims and
//! their retention policy), `status`, `events`.

mod claims;
mod control;
mod events;
mod identity;
mod plan;
mod revisions;
mod spec;
mod status;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::Api;
use kube::core::Selector;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

use crate::controllers::replicaset::claim::{self, Owner, non_empty};
use crate::controllers::replicaset::expectations::Expectations;
use crate::controllers::replicaset::pod_events::{PodEvents, owner_ref};
use crate::controllers::replicaset::pods::controller_of;
use crate::history;
use crate::informer;
use crate::metrics::Metrics;
use crate::recorder::EventSink;
use crate::runner::{self, Outcome, Runner};
use plan::{Facts, Member, Slot};

/// Upstream's name for the controller.
const CONTROLLER: &str = "statefulset";

impl Owner for StatefulSet {
    fn selector(&self) -> Option<Selector> {
        let ls = self.spec.as_ref()?.selector.clone();
        Selector::try_from(ls).ok().and_then(non_empty)
    }
}

/// What every worker shares.
struct Shared {
    client: kube::Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    claims: Store<PersistentVolumeClaim>,
    expectations: Arc<Expectations>,
    events: EventSink,
}

/// Watches StatefulSets, their pods, revisions and claims, and syncs each
/// set with `workers` workers.
pub async fn run(
    client: kube::Client,
    metrics: Metrics,
    workers: usize,
    identity: &str,
) -> Result<()> {
    let runner = Runner::new(CONTROLLER, &metrics);
    let expectations = Arc::new(Expectations::default());
    let sets = informer::spawn(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
        informer::enqueue_own_key(runner.queue()),
    );
    let handler = Arc::new(Mutex::new(PodEvents::<StatefulSet>::new(
        sets.clone(),
        runner.queue(),
        expectations.clone(),
    )));
    let pods = informer::spawn(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            handler
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handle(event)
        },
    );
    // A revision's change wakes the set controlling it.
    let queue = runner.queue();
    let revisions = informer::spawn(
        Api::<ControllerRevision>::all(client.clone()),
        watcher::Config::default(),
        move |event| {
            if let Some(r) = informer::object(event)
                && let Some(owner) = controller_of(&r.metadata)
                && owner.kind == "StatefulSet"
            {
                queue.add(runner::key(r.metadata.namespace.as_deref(), &owner.name));
            }
        },
    );
    let claims = informer::spawn(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
        |_| {},
    );
    sets.wait_until_ready().await?;
    pods.wait_until_ready().await?;
    revisions.wait_until_ready().await?;
    claims.wait_until_ready().await?;
    let shared = Arc::new(Shared {
        events: EventSink::new(client.clone(), "statefulset-controller", identity),
        client,
        sets,
        pods,
        revisions,
        claims,
        expectations,
    });
    runner
        .run(workers, move |key| reconcile(shared.clone(), key))
        .await;
    Err(anyhow!("the workers stopped"))
}

/// The pods of the range by index (gaps where none exists) and the
/// condemned ones beyond it, highest ordinal first.
fn partition_pods(
    set: &StatefulSet,
    owned: &[Arc<Pod>],
    claims: &claims::Claims<'_>,
) -> (Vec<Slot>, Vec<Member>) {
    let start = spec::start_ordinal(set);
    let n = spec::replicas(set) as usize;
    let mut replicas: Vec<Option<Member>> = vec![None; n];
    let mut condemned: Vec<(i32, Member)> = Vec::new();
    for pod in owned {
        let Some(o) = identity::ordinal(pod) else {
            continue;
        };
        let in_range = spec::in_range(set, o);
        let consistent = claims.retention_matches(set, pod, o)
            && (!in_range
                || (identity::identity_matches(set, pod) && identity::storage_matches(set, pod)));
        let member = Member {
            pod: pod.clone(),
            consistent,
            claims_missing: claims.missing(set, o),
        };
        if in_range {
            replicas[(o - start) as usize] = Some(member);
        } else {
            condemned.push((o, member));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let slots = replicas
        .into_iter()
        .enumerate()
        .map(|(i, m)| match m {
            Some(m) => Slot::Present(m),
            None => Slot::Missing {
                stale_claims: claims.stale(set, start + i as i32, None),
            },
        })
        .collect();
    (slots, condemned.into_iter().map(|(_, m)| m).collect())
}

/// One level-triggered sync of the StatefulSet `key` (upstream's
/// `syncStatefulSet`): claim pods, resolve revisions, take the planned
/// steps if earlier ones have been observed, write status, trim history.
async fn reconcile(shared: Arc<Shared>, key: String) -> Outcome {
    let Some(set) = shared.sets.get(&owner_ref::<StatefulSet>(&key)) else {
        shared.expectations.delete(&key);
        return Ok(None);
    };
    let Some(selector) = set.selector() else {
        tracing::warn!(key, "a StatefulSet with an empty selector selects nothing");
        return Ok(None);
    };
    let (ns, _) = runner::split_key(&key);
    let Some(revisions) =
        revisions::resolve(&shared.client, &shared.revisions, &set, &selector).await?
    else {
        return Ok(None);
    };
    let candidates: Vec<Arc<Pod>> = shared
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .collect();
    let owned = claim::claim(&shared.client, set.as_ref(), &selector, candidates, |p| {
        identity::is_member_of(&set, p)
    })
    .await?;
    let claims = claims::Claims {
        cache: &shared.claims,
        api: Api::namespaced(shared.client.clone(), ns),
    };
    let (replicas, condemned) = partition_pods(&set, &owned, &claims);
    let now = jiff::Timestamp::now();
    let min_ready = spec::min_ready_seconds(&set);
    let facts = Facts {
        monotonic: spec::monotonic(&set),
        min_ready_seconds: min_ready,
        now,
        update_revision: revisions.update_name(),
        rolling_partition: (!spec::on_delete(&set)).then(|| spec::partition(&set)),
        deleting: set.metadata.deletion_timestamp.is_some(),
    };
    let steps = if shared.expectations.satisfied(&key) {
        plan::plan(&facts, &replicas, &condemned)
    } else {
        Vec::new()
    };
    let control = control::Control {
        set: &set,
        key: &key,
        pods: Api::namespaced(shared.client.clone(), ns),
        claims,
        report: events::Report::new(&shared.events, &set),
        expectations: &shared.expectations,
        revisions: &revisions,
    };
    let failure = control.run(&steps, &replicas, &condemned).await.err();
    let mut counts = status::count(
        owned.iter().map(|p| p.as_ref()),
        min_ready,
        now,
        revisions.current_name(),
        revisions.update_name(),
    );
    if steps.iter().any(|s| matches!(s, plan::Step::Update { .. })) && failure.is_none() {
        // Upstream counts the pod deleted for update out of the current ones.
        counts.current -= 1;
    }
    let new_status = status::calculate(&set, counts, &revisions);
    let api: Api<StatefulSet> = Api::namespaced(shared.client.clone(), ns);
    status::write_if_changed(&api, &set, &new_status).await?;
    let live: HashSet<&str> = [revisions.current_name(), revisions.update_name()]
        .into_iter()
        .chain(owned.iter().filter_map(|p| identity::pod_revision(p)))
        .collect();
    let revision_api: Api<ControllerRevision> = Api::namespaced(shared.client.clone(), ns);
    history::truncate(
        &revision_api,
        &revisions.all,
        &live,
        spec::history_limit(&set),
    )
    .await?;
    if let Some(e) = failure {
        return Err(e);
    }
    let wanted = spec::replicas(&set);
    if min_ready > 0 && new_status.available_replicas.unwrap_or(0) != wanted {
        return Ok(Some(Duration::from_secs(min_ready as u64)));
    }
    Ok(None)
}
