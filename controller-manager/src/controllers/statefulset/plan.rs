//! The decision of one sync (upstream's `updateStatefulSet`), pure: from
//! the pods at each index and the condemned ones beyond the range, the
//! steps to take, in order. `OrderedReady` stops at the first step that
//! must be waited on (a pod created, one not yet Running, Ready and
//! available, one terminating); `Parallel` takes every step at once.
//! Scaling goes first; then a RollingUpdate deletes the highest-index pod
//! at or above the partition that is not at the update revision, one at a
//! time, waiting for each replacement to be healthy.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::identity::pod_revision;
use crate::controllers::replicaset::pods::{is_available, is_ready};

/// What the plan needs to know of a pod that exists.
#[derive(Clone, Debug)]
pub struct Member {
    /// The pod as cached.
    pub pod: Arc<Pod>,
    /// Its identity labels, volumes and claims' owners are as they should
    /// be (upstream's `identityMatches && storageMatches && retention`).
    pub consistent: bool,
    /// Some of its claims do not exist.
    pub claims_missing: bool,
}

/// One index of the ordinal range.
#[derive(Clone, Debug)]
pub enum Slot {
    /// No pod yet. `stale_claims`: a claim still belongs to an earlier pod
    /// (whenScaled=Delete), so wait for it to go before creating.
    Missing {
        /// A claim is still owned by a pod that is gone.
        stale_claims: bool,
    },
    /// A pod exists.
    Present(Member),
}

/// The set's settings and revisions, as the plan needs them.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    /// `OrderedReady`.
    pub monotonic: bool,
    /// `minReadySeconds`.
    pub min_ready_seconds: i32,
    /// The clock for availability.
    pub now: jiff::Timestamp,
    /// The update revision's name.
    pub update_revision: &'a str,
    /// `Some(partition)` for RollingUpdate, `None` for OnDelete.
    pub rolling_partition: Option<i32>,
    /// The set is being deleted: nothing but status.
    pub deleting: bool,
}

/// One step of a sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Delete the finished (Failed or Succeeded) pod at `index` to create
    /// it again.
    Recreate {
        /// Index into the range.
        index: usize,
        /// It Failed (a Warning event) rather than Succeeded.
        failed: bool,
    },
    /// Create the pod (and first its claims) at `index`.
    Create {
        /// Index into the range.
        index: usize,
    },
    /// Create the missing claims of the pending pod at `index`.
    CreateClaims {
        /// Index into the range.
        index: usize,
    },
    /// Restore the identity labels, claims and claim owners of the pod at
    /// `index`.
    Fix {
        /// Index into the range.
        index: usize,
    },
    /// Set the claim owners of a condemned pod (whenScaled).
    FixCondemned {
        /// Position in the condemned list.
        pos: usize,
    },
    /// Delete a condemned pod (scale down).
    Condemn {
        /// Position in the condemned list.
        pos: usize,
    },
    /// Delete the pod at `index` so it comes back at the update revision.
    Update {
        /// Index into the range.
        index: usize,
    },
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Being deleted.
pub fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running with the Ready condition True.
pub fn running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// Running and Ready for `minReadySeconds`.
pub fn running_and_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    phase(pod) == "Running" && is_available(pod, min_ready_seconds, now)
}

/// Upstream's `isHealthy`: Running, Ready and not terminating.
pub fn healthy(pod: &Pod) -> bool {
    running_and_ready(pod) && !terminating(pod)
}

/// The state of an index after this sync's replica steps, for the
/// rolling update: the pod, or one just created at the update revision
/// (never healthy yet).
enum After<'a> {
    Pod(&'a Pod),
    Fresh,
}

/// The steps one sync takes (see the module docs). `condemned` is sorted
/// by descending ordinal.
pub fn plan(facts: &Facts<'_>, replicas: &[Slot], condemned: &[Member]) -> Vec<Step> {
    let mut steps = Vec::new();
    if facts.deleting {
        return steps;
    }
    let mono = facts.monotonic;
    let available = |p: &Pod| running_and_available(p, facts.min_ready_seconds, facts.now);
    let mut after: Vec<After<'_>> = Vec::with_capacity(replicas.len());
    for (index, slot) in replicas.iter().enumerate() {
        let (member, stale) = match slot {
            Slot::Missing { stale_claims } => (None, *stale_claims),
            Slot::Present(m) => {
                let p = m.pod.as_ref();
                let finished = matches!(phase(p), "Failed" | "Succeeded");
                if finished {
                    steps.push(Step::Recreate {
                        index,
                        failed: phase(p) == "Failed",
                    });
                    // Any claim still owned by a pod now belongs to a gone one.
                    (None, false)
                } else {
                    (Some(m), false)
                }
            }
        };
        let Some(m) = member else {
            after.push(After::Fresh);
            if stale {
                // Wait for the old claims to be removed.
                if mono {
                    return steps;
                }
                continue;
            }
            steps.push(Step::Create { index });
            if mono {
                return steps;
            }
            continue;
        };
        let p = m.pod.as_ref();
        after.push(After::Pod(p));
        if phase(p) == "Pending" && m.claims_missing {
            steps.push(Step::CreateClaims { index });
        }
        if mono && (terminating(p) || !running_and_ready(p) || !available(p)) {
            return steps;
        }
        if !m.consistent {
            steps.push(Step::Fix { index });
        }
    }
    for (pos, m) in condemned.iter().enumerate() {
        if !m.consistent {
            steps.push(Step::FixCondemned { pos });
        }
    }
    // The first unhealthy pod: a replica (a fresh one counts), else the
    // lowest condemned ordinal.
    let first_unhealthy_replica = after.iter().any(|a| match a {
        After::Fresh => true,
        After::Pod(p) => !healthy(p),
    });
    let first_unhealthy_condemned = if first_unhealthy_replica {
        None
    } else {
        condemned.iter().rposition(|m| !healthy(&m.pod))
    };
    for (pos, m) in condemned.iter().enumerate() {
        let p = m.pod.as_ref();
        if terminating(p) {
            if mono {
                return steps;
            }
            continue;
        }
        let first = first_unhealthy_condemned == Some(pos);
        if mono && !first && (!running_and_ready(p) || !available(p)) {
            return steps;
        }
        steps.push(Step::Condemn { pos });
        if mono {
            return steps;
        }
    }
    let Some(partition) = facts.rolling_partition else {
        return steps;
    };
    let min = usize::try_from(partition).unwrap_or(0);
    for index in (min..after.len()).rev() {
        let After::Pod(p) = after[index] else {
            // A fresh pod is at the update revision and not yet healthy.
            return steps;
        };
        if pod_revision(p) != Some(facts.update_revision) && !terminating(p) {
            steps.push(Step::Update { index });
            return steps;
        }
        if !healthy(p) {
            return steps;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2024-01-01T00:10:00Z";

    /// A pod at `revision`: `state` is "pending", "ready", "failed",
    /// "succeeded", "terminating" or "running" (not ready).
    fn pod(name: &str, revision: &str, state: &str) -> Member {
        let (phase, ready) = match state {
            "pending" => ("Pending", false),
            "ready" | "terminating" => ("Running", true),
            "failed" => ("Failed", false),
            "succeeded" => ("Succeeded", false),
            _ => ("Running", false),
        };
        let deletion = (state == "terminating").then_some("2024-01-01T00:00:00Z");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "deletionTimestamp": deletion,
                         "labels": {"controller-revision-hash": revision}},
            "status": {"phase": phase, "conditions": [{"type": "Ready",
                "status": if ready {"True"} else {"False"},
                "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
        }))
        .unwrap();
        Member {
            pod: Arc::new(pod),
            consistent: true,
            claims_missing: false,
        }
    }

    fn present(name: &str, revision: &str, state: &str) -> Slot {
        Slot::Present(pod(name, revision, state))
    }

    fn missing() -> Slot {
        Slot::Missing {
            stale_claims: false,
        }
    }

    fn facts(monotonic: bool, partition: Option<i32>) -> Facts<'static> {
        Facts {
            monotonic,
            min_ready_seconds: 0,
            now: NOW.parse().unwrap(),
            update_revision: "new",
            rolling_partition: partition,
            deleting: false,
        }
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_after_its_predecessors() {
        let f = facts(true, Some(0));
        let steps = plan(&f, &[missing(), missing(), missing()], &[]);
        assert_eq!(steps, [Step::Create { index: 0 }]);
        let pending = [present("web-0", "new", "pending"), missing(), missing()];
        assert!(plan(&f, &pending, &[]).is_empty(), "web-0 is not Ready yet");
        let ready = [present("web-0", "new", "ready"), missing(), missing()];
        assert_eq!(plan(&f, &ready, &[]), [Step::Create { index: 1 }]);
        // Parallel creates every missing pod at once.
        let p = plan(&facts(false, Some(0)), &pending, &[]);
        assert_eq!(p, [Step::Create { index: 1 }, Step::Create { index: 2 }]);
    }

    #[test]
    fn min_ready_seconds_holds_the_next_pod_back() {
        let mut f = facts(true, Some(0));
        f.min_ready_seconds = 3600;
        let ready = [present("web-0", "new", "ready"), missing()];
        assert!(plan(&f, &ready, &[]).is_empty());
        f.min_ready_seconds = 60;
        assert_eq!(plan(&f, &ready, &[]), [Step::Create { index: 1 }]);
    }

    #[test]
    fn finished_pods_are_recreated() {
        let f = facts(true, Some(0));
        let slots = [present("web-0", "new", "failed"), missing()];
        assert_eq!(
            plan(&f, &slots, &[]),
            [
                Step::Recreate {
                    index: 0,
                    failed: true
                },
                Step::Create { index: 0 }
            ]
        );
        let slots = [present("web-0", "new", "succeeded")];
        assert!(matches!(
            plan(&f, &slots, &[])[0],
            Step::Recreate { failed: false, .. }
        ));
    }

    #[test]
    fn scale_down_goes_from_the_highest_ordinal_one_at_a_time() {
        let f = facts(true, Some(0));
        let replicas = [present("web-0", "new", "ready")];
        let condemned = [pod("web-2", "new", "ready"), pod("web-1", "new", "ready")];
        assert_eq!(plan(&f, &replicas, &condemned), [Step::Condemn { pos: 0 }]);
        // Waits for the termination before the next.
        let condemned = [
            pod("web-2", "new", "terminating"),
            pod("web-1", "new", "ready"),
        ];
        assert!(plan(&f, &replicas, &condemned).is_empty());
        // An unready condemned pod other than the first unhealthy one waits.
        let condemned = [
            pod("web-2", "new", "running"),
            pod("web-1", "new", "running"),
        ];
        assert!(plan(&f, &replicas, &condemned).is_empty());
        let condemned = [pod("web-2", "new", "running"), pod("web-1", "new", "ready")];
        assert_eq!(plan(&f, &replicas, &condemned), [Step::Condemn { pos: 0 }]);
        // Parallel deletes them all.
        let condemned = [pod("web-2", "new", "ready"), pod("web-1", "new", "pending")];
        assert_eq!(
            plan(&facts(false, Some(0)), &replicas, &condemned),
            [Step::Condemn { pos: 0 }, Step::Condemn { pos: 1 }]
        );
    }

    #[test]
    fn a_rolling_update_goes_down_from_the_top_to_the_partition() {
        let f = facts(true, Some(1));
        let all_old = [
            present("web-0", "old", "ready"),
            present("web-1", "old", "ready"),
            present("web-2", "old", "ready"),
        ];
        assert_eq!(plan(&f, &all_old, &[]), [Step::Update { index: 2 }]);
        let top_new_unready = [
            present("web-0", "old", "ready"),
            present("web-1", "old", "ready"),
            present("web-2", "new", "running"),
        ];
        assert!(
            plan(&facts(false, Some(1)), &top_new_unready, &[]).is_empty(),
            "waits for the updated pod to be healthy"
        );
        let top_new = [
            present("web-0", "old", "ready"),
            present("web-1", "old", "ready"),
            present("web-2", "new", "ready"),
        ];
        assert_eq!(plan(&f, &top_new, &[]), [Step::Update { index: 1 }]);
        let done = [
            present("web-0", "old", "ready"),
            present("web-1", "new", "ready"),
            present("web-2", "new", "ready"),
        ];
        assert!(
            plan(&f, &done, &[]).is_empty(),
            "web-0 is below the partition"
        );
        assert!(
            plan(&facts(true, None), &all_old, &[]).is_empty(),
            "OnDelete"
        );
        let mut deleting = facts(true, Some(0));
        deleting.deleting = true;
        assert!(plan(&deleting, &[missing()], &[]).is_empty());
    }

    #[test]
    fn inconsistent_pods_are_fixed_and_stale_claims_wait() {
        let f = facts(false, Some(0));
        let mut m = pod("web-0", "new", "pending");
        m.consistent = false;
        m.claims_missing = true;
        assert_eq!(
            plan(&f, &[Slot::Present(m)], &[]),
            [Step::CreateClaims { index: 0 }, Step::Fix { index: 0 }]
        );
        let stale = [Slot::Missing { stale_claims: true }, missing()];
        assert_eq!(plan(&f, &stale, &[]), [Step::Create { index: 1 }]);
        assert!(plan(&facts(true, Some(0)), &stale, &[]).is_empty());
    }
}
