//! The table of built-in kinds served by the apiserver.

use std::any::TypeId;
use std::sync::Arc;

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, policy::v1 as policy,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::{NamespaceResourceScope, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ResourceInfo;
use super::conversion::{self, Conversion};
use super::strategies::{self as s, Printer as P};
use super::strategy::Strategy;

/// Round-trips a JSON object through the typed form of `K`.
fn codec<K: DeserializeOwned + Serialize>(value: Value) -> Result<Value, String> {
    let typed: K = serde_json::from_value(value).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

fn schema<K: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<K>()
}

/// Names and behaviour of one kind beyond what its type already says.
struct Row {
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    storage_resource: Option<&'static str>,
    conversion: Option<Conversion>,
    strategy: Arc<dyn Strategy>,
}

fn row(strategy: impl Strategy) -> Row {
    Row {
        short_names: &[],
        categories: &[],
        subresources: &[],
        storage_resource: None,
        conversion: None,
        strategy: Arc::new(strategy),
    }
}

impl Row {
    fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    fn all(mut self) -> Self {
        self.categories = &["all"];
        self
    }
    fn subs(mut self, subs: &'static [&'static str]) -> Self {
        self.subresources = subs;
        self
    }
    /// Objects live under another storage key than the plural, as
    /// upstream keys some kinds by group (`apiextensions.k8s.io/...`).
    fn storage_key(mut self, resource: &'static str) -> Self {
        self.storage_resource = Some(resource);
        self
    }
    fn stored_as(mut self, resource: &'static str, conversion: Conversion) -> Self {
        self.storage_resource = Some(resource);
        self.conversion = Some(conversion);
        self
    }
}

fn info<K>(row: Row) -> ResourceInfo
where
    K: Resource
        + k8s_openapi::ListableResource
        + DeserializeOwned
        + Serialize
        + schemars::JsonSchema
        + 'static,
    K::Scope: 'static,
{
    ResourceInfo {
        group: K::GROUP,
        version: K::VERSION,
        kind: K::KIND,
        list_kind: K::LIST_KIND,
        plural: K::URL_PATH_SEGMENT,
        namespaced: TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>(),
        short_names: row.short_names,
        categories: row.categories,
        subresources: row.subresources,
        storage_resource: row.storage_resource.unwrap_or(K::URL_PATH_SEGMENT),
        strategy: row.strategy,
        codec: Arc::new(codec::<K>),
        schema: Arc::new(schema::<K>),
        conversion: row.conversion,
    }
}

const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["status", "scale"];

/// Every built-in kind, grouped as upstream's discovery lists them.
pub fn all() -> Vec<ResourceInfo> {
    vec![
        // core/v1
        info::<core::ConfigMap>(row(s::ConfigMapStrategy).short(&["cm"])),
        info::<core::Endpoints>(row(s::Plain::default().printer(P::Endpoints)).short(&["ep"])),
        info::<core::Event>(row(s::EventStrategy).short(&["ev"])),
        info::<core::LimitRange>(row(s::Plain::default()).short(&["limits"])),
        info::<core::Namespace>(
            row(s::NamespaceStrategy)
                .short(&["ns"])
                .subs(&["status", "finalize"]),
        ),
        info::<core::Node>(row(s::NodeStrategy).short(&["no"]).subs(STATUS)),
        info::<core::PersistentVolumeClaim>(
            row(s::Plain::with_status()
                .initial_phase("Pending")
                .defaults(s::defaults::persistent_volume_claim)
                .printer(P::PersistentVolumeClaim))
            .short(&["pvc"])
            .subs(STATUS),
        ),
        info::<core::PersistentVolume>(
            row(s::Plain::with_status()
                .initial_phase("Pending")
                .defaults(s::defaults::persistent_volume)
                .printer(P::PersistentVolume))
            .short(&["pv"])
            .subs(STATUS),
        ),
        info::<core::Pod>(row(s::PodStrategy).short(&["po"]).all().subs(&[
            "status",
            "binding",
            "eviction",
            "log",
            "exec",
            "attach",
            "portforward",
        ])),
        info::<core::ReplicationController>(
            row(s::Workload::replicated())
                .short(&["rc"])
                .all()
                .subs(STATUS_SCALE),
        ),
        info::<core::ResourceQuota>(
            row(s::Plain::with_status().printer(P::ResourceQuota))
                .short(&["quota"])
                .subs(STATUS),
        ),
        info::<core::Secret>(row(s::SecretStrategy)),
        info::<core::ServiceAccount>(
            row(s::Plain::default().printer(P::ServiceAccount)).short(&["sa"]),
        ),
        info::<core::Service>(row(s::ServiceStrategy).short(&["svc"]).all().subs(STATUS)),
        // apiextensions.k8s.io/v1
        info::<apiextensions::CustomResourceDefinition>(
            row(s::CrdStrategy)
                .short(&["crd", "crds"])
                .subs(STATUS)
                .storage_key(crate::crd::CRD_STORAGE),
        ),
        // apps/v1
        info::<apps::ControllerRevision>(row(s::Plain::default().printer(P::ControllerRevision))),
        info::<apps::DaemonSet>(
            row(s::Workload::daemon_set())
                .short(&["ds"])
                .all()
                .subs(STATUS),
        ),
        info::<apps::Deployment>(
            row(s::Workload::deployment())
                .short(&["deploy"])
                .all()
                .subs(STATUS_SCALE),
        ),
        info::<apps::ReplicaSet>(
            row(s::Workload::replicated())
                .short(&["rs"])
                .all()
                .subs(STATUS_SCALE),
        ),
        info::<apps::StatefulSet>(
            row(s::Workload::stateful_set())
                .short(&["sts"])
                .all()
                .subs(STATUS_SCALE),
        ),
        // autoscaling/v2
        info::<autoscaling::HorizontalPodAutoscaler>(
            row(s::Plain::with_status()
                .generation()
                .defaults(s::defaults::horizontal_pod_autoscaler)
                .printer(P::HorizontalPodAutoscaler))
            .short(&["hpa"])
            .all()
            .subs(STATUS),
        ),
        // batch/v1
        info::<batch::CronJob>(
            row(s::Workload::cron_job())
                .short(&["cj"])
                .all()
                .subs(STATUS),
        ),
        info::<batch::Job>(row(s::Workload::job()).all().subs(STATUS)),
        // coordination.k8s.io/v1
        info::<coordination::Lease>(row(s::Plain::default().printer(P::Lease))),
        // discovery.k8s.io/v1
        info::<discovery::EndpointSlice>(row(s::Plain::default().printer(P::EndpointSlice))),
        // events.k8s.io/v1, stored with core/v1 events in their shape
        info::<events::Event>(
            row(s::EventStrategy)
                .short(&["ev"])
                .stored_as("events", conversion::events_v1()),
        ),
        // networking.k8s.io/v1
        info::<networking::Ingress>(
            row(s::Plain::with_status().generation().printer(P::Ingress))
                .short(&["ing"])
                .subs(STATUS),
        ),
        // policy/v1
        info::<policy::PodDisruptionBudget>(
            row(s::Plain::with_status()
                .generation()
                .printer(P::PodDisruptionBudget))
            .short(&["pdb"])
            .subs(STATUS),
        ),
        // scheduling.k8s.io/v1
        info::<scheduling::PriorityClass>(row(s::PriorityClassStrategy).short(&["pc"])),
        // storage.k8s.io/v1
        info::<storage::StorageClass>(
            row(s::Plain::default().printer(P::StorageClass)).short(&["sc"]),
        ),
    ]
}
