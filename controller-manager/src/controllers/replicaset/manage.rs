//! Upstream's `manageReplicas`: one step toward `spec.replicas` — create
//! the missing pods from the template in slow-start batches (1, 2, 4, …,
//! stopping at the first failure so a broken template or quota does not
//! cause a storm), or delete the surplus in deletion order — with
//! expectations recorded before each request.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;

use super::expectations::Expectations;
use super::kind::Replicated;
use super::pod_control::{Report, create_in_batches, delete_all};
use super::status::ManageFailure;
use super::{pods, ranking};
use crate::recorder::EventSink;

/// At most this many pods are created or deleted in one sync (upstream's
/// `BurstReplicas`).
const BURST_REPLICAS: usize = 500;

/// Creates or deletes pods so that `owned` (its active pods) moves to
/// `spec.replicas`.
pub async fn manage<K: Replicated>(
    client: &kube::Client,
    expectations: &Expectations,
    events: &EventSink,
    key: &str,
    owner: &K,
    owned: &[Arc<Pod>],
) -> Result<(), ManageFailure> {
    let report = Report {
        events,
        regarding: owner.object_ref(&()),
    };
    let want = owner.replicas().max(0) as usize;
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    if owned.len() < want {
        let n = (want - owned.len()).min(BURST_REPLICAS);
        let pod = pod_from_template(owner).ok_or_else(|| ManageFailure {
            reason: "FailedCreate",
            message: "the pod template is missing".into(),
        })?;
        expectations.expect_creations(key, n);
        create_in_batches(&api, expectations, &report, key, vec![pod; n]).await
    } else if owned.len() > want {
        let n = (owned.len() - want).min(BURST_REPLICAS);
        let victims: Vec<Arc<Pod>> = ranking::deletion_order(owned, owned)
            .into_iter()
            .take(n)
            .collect();
        expectations.expect_deletions(key, victims.iter().map(|p| pods::key(p)));
        delete_all(&api, expectations, &report, key, &victims).await
    } else {
        Ok(())
    }
}

/// The pod the template describes, named `<owner>-<random>` by the
/// apiserver, controlled by `owner`.
pub fn pod_from_template<K: Replicated>(owner: &K) -> Option<Pod> {
    let template = owner.template()?;
    let meta = owner.meta();
    let tmeta = template.metadata.clone().unwrap_or_default();
    Some(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", meta.name.as_deref()?)),
            namespace: meta.namespace.clone(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![super::claim::controller_ref(owner)?]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    })
}
