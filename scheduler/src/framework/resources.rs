//! Resource amounts as the scheduler counts them: CPU in millicores, memory
//! and storage in bytes, pods as a count, extended resources as integers;
//! and a pod's effective request, computed the way upstream's
//! `resource.PodRequests` does (init containers, sidecars, overhead).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU assumed for a container that requests none, when scoring (upstream's
/// `DefaultMilliCPURequest`), so empty pods still spread.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container that requests none, when scoring
/// (upstream's `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler knows of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Pods a node allows (`pods` in allocatable); unused in requests.
    pub allowed_pods: i64,
    /// Extended and hugepages resources by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a ResourceList (`requests`, `allocatable`, `overhead`).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list {
            r.set(name, quantity_for(name, &q.0));
        }
        r
    }

    /// The amount of the named resource.
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pods,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }

    /// Sets the named resource.
    pub fn set(&mut self, name: &str, value: i64) {
        match name {
            "cpu" => self.milli_cpu = value,
            "memory" => self.memory = value,
            "ephemeral-storage" => self.ephemeral_storage = value,
            "pods" => self.allowed_pods = value,
            other => {
                self.scalar.insert(other.to_string(), value);
            }
        }
    }

    /// Adds `other` to this amount.
    pub fn add(&mut self, other: &Resources) {
        self.combine(other, |a, b| a.saturating_add(b));
    }

    /// Subtracts `other` from this amount.
    pub fn sub(&mut self, other: &Resources) {
        self.combine(other, |a, b| a.saturating_sub(b));
    }

    /// Raises every resource to at least `other`'s amount.
    pub fn set_max(&mut self, other: &Resources) {
        self.combine(other, i64::max);
    }

    fn combine(&mut self, other: &Resources, f: impl Fn(i64, i64) -> i64) {
        self.milli_cpu = f(self.milli_cpu, other.milli_cpu);
        self.memory = f(self.memory, other.memory);
        self.ephemeral_storage = f(self.ephemeral_storage, other.ephemeral_storage);
        self.allowed_pods = f(self.allowed_pods, other.allowed_pods);
        for (name, v) in &other.scalar {
            let mine = self.scalar.entry(name.clone()).or_insert(0);
            *mine = f(*mine, *v);
        }
    }
}

/// Upstream's `IsExtendedResourceName`: a domain-prefixed name outside
/// `kubernetes.io/`.
pub fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Upstream's `IsScalarResourceName`: extended, hugepages, prefixed native
/// or attachable-volume resources.
pub fn is_scalar(name: &str) -> bool {
    is_extended(name)
        || name.starts_with("hugepages-")
        || name.contains("kubernetes.io/")
        || name.starts_with("attachable-volumes-")
}

/// A pod's requests: what the scheduler reserves on a node for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// Effective requests (upstream's `PodRequests`).
    pub requests: Resources,
    /// The same with CPU and memory defaulted where a container names none
    /// (upstream's non-zero requests), used only by scoring.
    pub non_zero: Resources,
}

/// Computes a pod's effective requests: app containers and sidecars summed,
/// the largest init step, plus overhead.
pub fn pod_requests(pod: &Pod) -> PodRequests {
    let Some(spec) = pod.spec.as_ref() else {
        return PodRequests::default();
    };
    let overhead = spec
        .overhead
        .as_ref()
        .map(Resources::from_list)
        .unwrap_or_default();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let compute = |non_zero: bool| {
        let mut total = Resources::default();
        for c in &spec.containers {
            total.add(&container_requests(c, non_zero));
        }
        let mut sidecars = Resources::default();
        let mut init_max = Resources::default();
        for c in init {
            let mut step = container_requests(c, non_zero);
            if c.restart_policy.as_deref() == Some("Always") {
                total.add(&step);
                sidecars.add(&step);
                step = sidecars.clone();
            } else {
                step.add(&sidecars);
            }
            init_max.set_max(&step);
        }
        total.set_max(&init_max);
        total.add(&overhead);
        total
    };
    PodRequests {
        requests: compute(false),
        non_zero: compute(true),
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let mut r = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default();
    if non_zero {
        let named = |n: &str| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .is_some_and(|m| m.contains_key(n))
        };
        if !named("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !named("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// A quantity in the unit the scheduler counts `name` in: millicores for
/// CPU, whole units (rounded up) for everything else. Unparseable text
/// counts as zero; the apiserver has validated it already.
pub fn quantity_for(name: &str, text: &str) -> i64 {
    let Some(milli) = parse_milli(text) else {
        return 0;
    };
    let value = if name == "cpu" {
        milli
    } else {
        // Whole units, rounded up like resource.Quantity.Value().
        (milli + 999).div_euclid(1000)
    };
    value.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

pub use capstan_component_helpers::quantity::parse_milli;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_parse_like_resource_quantity() {
        assert_eq!(quantity_for("cpu", "500m"), 500);
        assert_eq!(quantity_for("cpu", "2"), 2000);
        assert_eq!(quantity_for("cpu", "0.1"), 100);
        assert_eq!(quantity_for("cpu", "1u"), 1, "rounds up to a millicore");
        assert_eq!(quantity_for("memory", "1Gi"), 1 << 30);
        assert_eq!(quantity_for("memory", "1.5Gi"), 3 << 29);
        assert_eq!(quantity_for("memory", "128974848"), 128_974_848);
        assert_eq!(quantity_for("memory", "129e6"), 129_000_000);
        assert_eq!(quantity_for("memory", "123M"), 123_000_000);
        assert_eq!(quantity_for("pods", "110"), 110);
        assert_eq!(quantity_for("memory", "bogus"), 0);
        assert_eq!(
            quantity_for("memory", "1e2147483647"),
            0,
            "absurd exponents are refused"
        );
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn init_containers_and_sidecars_count_as_upstream() {
        let p = pod(json!({"spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}}
            ],
            "initContainers": [
                {"name": "big-init", "resources": {"requests": {"cpu": "1", "memory": "100Mi"}}},
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
                {"name": "after", "resources": {"requests": {"cpu": "400m"}}}
            ],
            "overhead": {"cpu": "10m"}
        }}));
        let r = pod_requests(&p);
        // Apps 300m + sidecar 50m = 350m; init steps: 1000m, 50m, 400m+50m.
        assert_eq!(r.requests.milli_cpu, 1000 + 10);
        assert_eq!(r.requests.memory, 1 << 30);
        // Non-zero: b gets 200Mi memory by default.
        assert_eq!(r.non_zero.memory, (1 << 30) + DEFAULT_MEMORY_REQUEST * 2);
    }

    #[test]
    fn a_pod_without_requests_scores_as_default_but_reserves_nothing() {
        let r = pod_requests(&pod(json!({"spec": {"containers": [{"name": "a"}]}})));
        assert_eq!(r.requests, Resources::default());
        assert_eq!(r.non_zero.milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.non_zero.memory, DEFAULT_MEMORY_REQUEST);
    }
}
