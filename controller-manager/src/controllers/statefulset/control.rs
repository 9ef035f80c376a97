//! Carries out a plan's steps (upstream's `StatefulPodControl`): claims
//! before pods, pods created, deleted (pinned to the uid the decision saw,
//! since names come back) and relabelled, each reported as an Event and
//! recorded as an expectation so the next sync waits for the watch.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use super::claims::Claims;
use super::events::Report;
use super::identity::{self, ordinal};
use super::plan::{Member, Slot, Step};
use super::revisions::Revisions;
use super::spec;
use crate::controllers::replicaset::expectations::Expectations;
use crate::controllers::replicaset::pods;

/// What carrying out a sync's steps needs.
pub struct Control<'a> {
    /// The set, as cached.
    pub set: &'a StatefulSet,
    /// Its queue key (the expectations' key).
    pub key: &'a str,
    /// Pods of its namespace.
    pub pods: Api<Pod>,
    /// Its claims.
    pub claims: Claims<'a>,
    /// Its events.
    pub report: Report<'a>,
    /// Pod creations and deletions not yet seen.
    pub expectations: &'a Expectations,
    /// Its revisions.
    pub revisions: &'a Revisions,
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

impl Control<'_> {
    /// Takes `steps` in order, stopping at the first failure.
    pub async fn run(&self, steps: &[Step], replicas: &[Slot], condemned: &[Member]) -> Result<()> {
        let start = spec::start_ordinal(self.set);
        let present = |index: usize| match replicas.get(index) {
            Some(Slot::Present(m)) => Some(m.pod.clone()),
            _ => None,
        };
        for step in steps {
            match *step {
                Step::Recreate { index, failed } => {
                    if let Some(p) = present(index) {
                        self.report.recreating(name(&p), failed);
                        self.delete(&p).await?;
                    }
                }
                Step::Create { index } => self.create(index, start + index as i32).await?,
                Step::CreateClaims { index } => {
                    if let Some(p) = present(index) {
                        self.claims
                            .create_missing(&self.report, self.set, name(&p), start + index as i32)
                            .await?;
                    }
                }
                Step::Fix { index } => {
                    if let Some(p) = present(index) {
                        self.fix(&p).await?;
                    }
                }
                Step::FixCondemned { pos } => {
                    if let Some(m) = condemned.get(pos)
                        && let Some(o) = ordinal(&m.pod)
                    {
                        self.claims.apply_retention(self.set, &m.pod, o).await?;
                    }
                }
                Step::Condemn { pos } => {
                    if let Some(m) = condemned.get(pos) {
                        self.delete(&m.pod).await?;
                    }
                }
                Step::Update { index } => {
                    if let Some(p) = present(index) {
                        tracing::info!(pod = name(&p), "deleting pod for update");
                        self.delete(&p).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Upstream's `CreateStatefulPod`: the claims, then the pod at
    /// `ordinal` (index below the partition: the current revision's
    /// template, else the update revision's).
    async fn create(&self, index: usize, ordinal: i32) -> Result<()> {
        let below_partition =
            !spec::on_delete(self.set) && (index as i64) < i64::from(spec::partition(self.set));
        let (template, revision) = if below_partition {
            (
                self.revisions.current_template(self.set),
                self.revisions.current_name(),
            )
        } else {
            (
                self.set.spec.as_ref().map(|s| s.template.clone()),
                self.revisions.update_name(),
            )
        };
        let pod = template
            .as_ref()
            .and_then(|t| identity::new_pod(self.set, t, revision, ordinal))
            .ok_or_else(|| anyhow!("the StatefulSet has no pod template"))?;
        let pod_name = name(&pod).to_string();
        if let Err(e) = self
            .claims
            .create_missing(&self.report, self.set, &pod_name, ordinal)
            .await
        {
            self.report.pod("create", &pod_name, Some(&e.to_string()));
            return Err(e);
        }
        self.expectations.raise(self.key, 1, []);
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                self.report.pod("create", &pod_name, None);
                self.claims
                    .apply_retention(self.set, &created, ordinal)
                    .await
            }
            Err(e) => {
                self.expectations.creations_observed(self.key, 1);
                let exists = matches!(&e, kube::Error::Api(s) if s.code == 409);
                if !exists {
                    self.report.pod("create", &pod_name, Some(&e.to_string()));
                }
                Err(anyhow!("creating pod {pod_name}: {e}"))
            }
        }
    }

    /// Upstream's `DeleteStatefulPod`, pinned to the pod's uid; a pod
    /// already gone counts as deleted.
    async fn delete(&self, pod: &Pod) -> Result<()> {
        let pod_name = name(pod);
        let key = pods::key(pod);
        self.expectations.raise(self.key, 0, [key.clone()]);
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.pods.delete(pod_name, &params).await {
            Ok(_) => {
                self.report.pod("delete", pod_name, None);
                Ok(())
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                self.expectations.deletion_observed(self.key, &key);
                Ok(())
            }
            Err(e) => {
                self.expectations.deletion_observed(self.key, &key);
                self.report.pod("delete", pod_name, Some(&e.to_string()));
                Err(anyhow!("deleting pod {pod_name}: {e}"))
            }
        }
    }

    /// Upstream's `UpdateStatefulPod`: restores the identity labels,
    /// creates missing claims (a pod's volumes cannot change, so a pod
    /// made without them keeps running as it is) and the claims' owners.
    async fn fix(&self, pod: &Arc<Pod>) -> Result<()> {
        let Some(o) = ordinal(pod) else {
            return Ok(());
        };
        let pod_name = name(pod);
        if !identity::identity_matches(self.set, pod)
            && let Some(labels) = identity::identity_label_patch(self.set, pod)
        {
            let patch = json!({"metadata": {
                "labels": labels,
                "resourceVersion": pod.metadata.resource_version,
            }});
            let result = self
                .pods
                .patch(pod_name, &PatchParams::default(), &Patch::Merge(patch))
                .await;
            let error = result.as_ref().err().map(|e| e.to_string());
            self.report.pod("update", pod_name, error.as_deref());
            result?;
        }
        if !identity::storage_matches(self.set, pod) {
            self.claims
                .create_missing(&self.report, self.set, pod_name, o)
                .await?;
        }
        self.claims.apply_retention(self.set, pod, o).await
    }
}
