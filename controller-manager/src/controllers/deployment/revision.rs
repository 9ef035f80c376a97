//! Upstream's `getAllReplicaSetsAndSyncRevision`: find the ReplicaSet
//! whose template is the Deployment's (creating it when asked), make it
//! the newest revision (so `kubectl rollout undo` to an old ReplicaSet
//! reuses it and moves it to the top of the history), and mirror its
//! revision on the Deployment.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::annotations::{self, DESIRED_REPLICAS, MAX_REPLICAS, REVISION};
use super::claim::controller_ref;
use super::conditions::{self, PROGRESSING};
use super::context::{Ctx, created};
use super::hash::{self, POD_TEMPLATE_HASH};
use super::{rolling, spec};

/// Index of the oldest ReplicaSet whose template is `d`'s.
fn find_new(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let template = d.spec.as_ref().map(|s| &s.template)?;
    (0..rss.len())
        .filter(|&i| {
            rss[i]
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| hash::equal_ignore_hash(t, template))
        })
        .min_by(|&a, &b| created(&rss[a]).cmp(&created(&rss[b])))
}

/// Sets `ctx.new`; with `create`, creates the new ReplicaSet if missing.
pub async fn sync(ctx: &mut Ctx, create: bool) -> Result<()> {
    ctx.new = find_new(&ctx.d, &ctx.rss);
    let old_max = annotations::max_revision(ctx.old().into_iter().map(|i| &ctx.rss[i]));
    let new_revision = old_max + 1;
    match ctx.new {
        Some(i) => {
            let rs = &ctx.rss[i];
            let min_ready = spec::min_ready_seconds(&ctx.d);
            let rs_min_ready = rs
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            let mut ann = rs.metadata.annotations.clone().unwrap_or_default();
            if annotations::revision(rs) < new_revision {
                ann = annotations::for_revision(&ctx.d, rs, new_revision);
            } else {
                ann.extend(annotations::copied(&ctx.d));
            }
            if Some(&ann) != rs.metadata.annotations.as_ref() || rs_min_ready != min_ready {
                let name = rs.metadata.name.clone().unwrap_or_default();
                let patch = json!({
                    "metadata": {"annotations": ann, "resourceVersion": rs.metadata.resource_version},
                    "spec": {"minReadySeconds": min_ready},
                });
                let updated = ctx
                    .rs_api()
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
                ctx.written.record(&ctx.key, &updated);
                ctx.rss[i] = updated;
            }
            if spec::progress_deadline(&ctx.d).is_some()
                && conditions::get(&ctx.d, PROGRESSING).is_none()
            {
                let name = ctx.rss[i].metadata.name.clone().unwrap_or_default();
                conditions::set(
                    &mut ctx.d,
                    conditions::new(
                        PROGRESSING,
                        "True",
                        conditions::FOUND_NEW_RS,
                        format!("Found new replica set {name:?}"),
                    ),
                );
            }
        }
        None if create => {
            let rs = create_new(ctx, new_revision).await?;
            ctx.written.record(&ctx.key, &rs);
            ctx.rss.push(rs);
            ctx.new = Some(ctx.rss.len() - 1);
        }
        None => return Ok(()),
    }
    let revision = ctx
        .new_rs()
        .and_then(|rs| rs.metadata.annotations.as_ref()?.get(REVISION).cloned());
    set_deployment_revision(ctx, revision).await
}

/// Creates `<deployment>-<hash>` at its starting size (upstream's
/// `NewRSNewReplicas`), or finds the one a previous sync created.
async fn create_new(ctx: &mut Ctx, revision: i64) -> Result<ReplicaSet> {
    let d = &ctx.d;
    let spec = d.spec.clone().unwrap_or_default();
    let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = hash::compute(&spec.template, collision_count);
    let name = hash::replica_set_name(&ctx.name(), &hash);
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let labels = meta.labels.clone();
    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let replicas = if spec::is_recreate(d) {
        spec::replicas(d)
    } else {
        let current = ctx.sum(&ctx.all(), spec::rs_replicas);
        rolling::new_rs_replicas(d, current, 0)
    };
    let mut ann = annotations::copied(d);
    ann.insert(REVISION.into(), revision.to_string());
    ann.insert(DESIRED_REPLICAS.into(), spec::replicas(d).to_string());
    ann.insert(
        MAX_REPLICAS.into(),
        (spec::replicas(d) + spec::max_surge(d)).to_string(),
    );
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "namespace": ctx.ns(),
            "labels": labels,
            "annotations": ann,
            "ownerReferences": controller_ref(d).into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": spec::min_ready_seconds(d),
            "selector": selector,
            "template": template,
        },
    }))?;
    let api = ctx.rs_api();
    let created = match api.create(&PostParams::default(), &rs).await {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return adopt_existing(ctx, &api, &name).await;
        }
        Err(e) => return Err(e.into()),
    };
    if spec::progress_deadline(&ctx.d).is_some() {
        conditions::set(
            &mut ctx.d,
            conditions::new(
                PROGRESSING,
                "True",
                conditions::NEW_RS_CREATED,
                format!("Created new replica set {name:?}"),
            ),
        );
    }
    if replicas > 0 {
        ctx.scaling_event(format!("Scaled up replica set {name} to {replicas}"));
    }
    Ok(created)
}

/// The name is taken: ours from an earlier sync (same owner and
/// template) is the new ReplicaSet; anything else is a hash collision,
/// counted in `status.collisionCount` so the next hash differs.
async fn adopt_existing(ctx: &mut Ctx, api: &Api<ReplicaSet>, name: &str) -> Result<ReplicaSet> {
    let existing = api.get(name).await?;
    let ours = crate::controllers::replicaset::pods::controller_of(&existing.metadata)
        .is_some_and(|r| Some(&r.uid) == ctx.d.metadata.uid.as_ref());
    let same = match (
        existing.spec.as_ref().and_then(|s| s.template.as_ref()),
        ctx.d.spec.as_ref().map(|s| &s.template),
    ) {
        (Some(a), Some(b)) => hash::equal_ignore_hash(a, b),
        _ => false,
    };
    if ours && same {
        return Ok(existing);
    }
    let count = ctx
        .d
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0)
        + 1;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ctx.ns());
    deployments
        .patch_status(
            &ctx.name(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"collisionCount": count}})),
        )
        .await?;
    Err(anyhow!(
        "replica set {name} exists with another template; collision count now {count}"
    ))
}

/// Mirrors the new ReplicaSet's revision in the Deployment's annotation.
async fn set_deployment_revision(ctx: &mut Ctx, revision: Option<String>) -> Result<()> {
    let Some(revision) = revision else {
        return Ok(());
    };
    let current = ctx
        .d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION));
    if current == Some(&revision) {
        return Ok(());
    }
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ctx.ns());
    let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
    deployments
        .patch(&ctx.name(), &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    ctx.d
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION.into(), revision);
    Ok(())
}
