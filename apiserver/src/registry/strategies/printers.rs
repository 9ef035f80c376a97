//! Upstream's `kubectl get` tables (pkg/printers/internalversion) for the
//! kinds whose strategy is otherwise [`Plain`](super::Plain): the columns
//! and how one object fills them.

use serde_json::{Value, json};

use crate::registry::meta;
use crate::registry::strategy::{Cells, Column};
use crate::table::{age, text_or_none};

/// A kind's table, chosen in `kinds.rs` with [`Plain::printer`](super::Plain::printer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printer {
    /// core/v1 Endpoints.
    Endpoints,
    /// core/v1 PersistentVolumeClaims.
    PersistentVolumeClaim,
    /// core/v1 PersistentVolumes.
    PersistentVolume,
    /// core/v1 ResourceQuotas.
    ResourceQuota,
    /// core/v1 ServiceAccounts.
    ServiceAccount,
    /// apps/v1 ControllerRevisions.
    ControllerRevision,
    /// autoscaling/v2 HorizontalPodAutoscalers.
    HorizontalPodAutoscaler,
    /// coordination.k8s.io/v1 Leases.
    Lease,
    /// discovery.k8s.io/v1 EndpointSlices.
    EndpointSlice,
    /// networking.k8s.io/v1 Ingresses.
    Ingress,
    /// policy/v1 PodDisruptionBudgets.
    PodDisruptionBudget,
    /// storage.k8s.io/v1 StorageClasses.
    StorageClass,
}

/// A string column shown by default.
const fn c(name: &'static str, description: &'static str) -> Column {
    Column::new(name, "string", 0, description)
}

impl Printer {
    /// The table's columns, in upstream's order.
    pub fn columns(self) -> Vec<Column> {
        let kind = match self {
            Printer::Endpoints => vec![c("Endpoints", "Endpoints of the service.")],
            Printer::PersistentVolumeClaim => vec![
                c("Status", "The phase of the claim."),
                c(
                    "Volume",
                    "The binding reference to the volume backing this claim.",
                ),
                c("Capacity", "The actual resources of the underlying volume."),
                c(
                    "Access Modes",
                    "The actual access modes the volume backing the claim has.",
                ),
                c("StorageClass", "StorageClass of the pvc"),
                c("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
            ],
            Printer::PersistentVolume => vec![
                c("Capacity", "The capacity of the volume."),
                c("Access Modes", "All ways the volume can be mounted."),
                c(
                    "Reclaim Policy",
                    "What happens to the volume when released from its claim.",
                ),
                c("Status", "The phase of the volume."),
                c("Claim", "The claim bound to the volume."),
                c("StorageClass", "StorageClass of the pv"),
                c("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
                c("Reason", "Why the volume is in its phase."),
            ],
            Printer::ResourceQuota => vec![
                c(
                    "Request",
                    "Request represents a minimum amount of cpu/memory that a container may consume.",
                ),
                c(
                    "Limit",
                    "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
                ),
            ],
            Printer::ServiceAccount => {
                vec![c("Secrets", "Secrets of the service account.")]
            }
            Printer::ControllerRevision => vec![
                c("Controller", "Controller of the object"),
                c(
                    "Revision",
                    "Revision indicates the revision of the state represented by Data.",
                ),
            ],
            Printer::HorizontalPodAutoscaler => vec![
                c("Reference", "The target resource to scale."),
                c("Targets", "The metrics to scale on."),
                c("MinPods", "The lower limit for the number of replicas."),
                c("MaxPods", "The upper limit for the number of replicas."),
                c("Replicas", "The current number of replicas."),
            ],
            Printer::Lease => vec![c("Holder", "The identity of the holder of the lease.")],
            Printer::EndpointSlice => vec![
                c("AddressType", "The type of address carried by the slice."),
                c("Ports", "The network ports exposed by the endpoints."),
                c("Endpoints", "The endpoints in the slice."),
            ],
            Printer::Ingress => vec![
                c(
                    "Class",
                    "The name of the IngressClass resource that should be used for additional configuration",
                ),
                c(
                    "Hosts",
                    "Hosts that incoming requests are matched against before the ingress rule",
                ),
                c(
                    "Address",
                    "Address is a list containing ingress points for the load-balancer",
                ),
                c("Ports", "Ports of TLS configurations that open"),
            ],
            Printer::PodDisruptionBudget => vec![
                c(
                    "Min Available",
                    "The minimum number of pods that must be available.",
                ),
                c(
                    "Max Unavailable",
                    "The maximum number of pods that may be unavailable.",
                ),
                Column::new(
                    "Allowed Disruptions",
                    "integer",
                    0,
                    "Calculated number of pods that may be disrupted at this time.",
                ),
            ],
            Printer::StorageClass => vec![
                c("Provisioner", "The provisioner of volumes of the class."),
                c(
                    "ReclaimPolicy",
                    "What happens to dynamically provisioned volumes when released.",
                ),
                c(
                    "VolumeBindingMode",
                    "When volumes are provisioned and bound.",
                ),
                c(
                    "AllowVolumeExpansion",
                    "Whether volumes of the class may be expanded.",
                ),
            ],
        };
        let mut columns = vec![Column::NAME];
        columns.extend(kind);
        columns.push(Column::AGE);
        if matches!(
            self,
            Printer::PersistentVolume | Printer::PersistentVolumeClaim
        ) {
            columns.push(Column::new(
                "VolumeMode",
                "string",
                1,
                "Whether the volume is a filesystem or a raw block device.",
            ));
        }
        columns
    }

    /// One object's cells, one per [`Printer::columns`].
    pub fn cells(self, obj: &Value) -> Cells {
        let text = |p: &str| json!(obj.pointer(p).and_then(Value::as_str).unwrap_or_default());
        let unset = |p: &str| json!(obj.pointer(p).and_then(Value::as_str).unwrap_or("<unset>"));
        let mut name = meta::name(obj).to_string();
        let kind = match self {
            Printer::Endpoints => vec![json!(endpoints(obj))],
            Printer::PersistentVolumeClaim => {
                // Capacity and modes are the bound volume's, once bound.
                let bound = obj
                    .pointer("/spec/volumeName")
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty());
                let (capacity, modes) = if bound {
                    (
                        quantity(obj.pointer("/status/capacity/storage")),
                        access_modes(obj.pointer("/status/accessModes")),
                    )
                } else {
                    (String::new(), String::new())
                };
                vec![
                    json!(volume_phase(obj)),
                    text("/spec/volumeName"),
                    json!(capacity),
                    json!(modes),
                    json!(storage_class(obj)),
                    unset("/spec/volumeAttributesClassName"),
                ]
            }
            Printer::PersistentVolume => {
                let claim = match obj.pointer("/spec/claimRef") {
                    Some(r) => format!(
                        "{}/{}",
                        r.get("namespace")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        r.get("name").and_then(Value::as_str).unwrap_or_default()
                    ),
                    None => String::new(),
                };
                vec![
                    json!(quantity(obj.pointer("/spec/capacity/storage"))),
                    json!(access_modes(obj.pointer("/spec/accessModes"))),
                    text("/spec/persistentVolumeReclaimPolicy"),
                    json!(volume_phase(obj)),
                    json!(claim),
                    json!(storage_class(obj)),
                    unset("/spec/volumeAttributesClassName"),
                    text("/status/reason"),
                ]
            }
            Printer::ResourceQuota => {
                let (request, limit) = quota_usage(obj);
                vec![json!(request), json!(limit)]
            }
            Printer::ServiceAccount => vec![json!(
                obj.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            )],
            Printer::ControllerRevision => vec![
                json!(controller_of(obj)),
                json!(meta::int_at(obj, "/revision")),
            ],
            Printer::HorizontalPodAutoscaler => vec![
                json!(format!(
                    "{}/{}",
                    text_at(obj, "/spec/scaleTargetRef/kind"),
                    text_at(obj, "/spec/scaleTargetRef/name")
                )),
                json!(hpa_targets(obj)),
                json!(
                    match obj.pointer("/spec/minReplicas").and_then(Value::as_i64) {
                        Some(n) => n.to_string(),
                        None => "<unset>".into(),
                    }
                ),
                json!(meta::int_at(obj, "/spec/maxReplicas")),
                json!(meta::int_at(obj, "/status/currentReplicas")),
            ],
            Printer::Lease => vec![text("/spec/holderIdentity")],
            Printer::EndpointSlice => {
                let ports: Vec<String> = list(obj, "/ports")
                    .map(
                        |p| match (p.get("port").and_then(Value::as_i64), p.get("name")) {
                            (Some(port), _) => port.to_string(),
                            (None, Some(Value::String(name))) => name.clone(),
                            _ => "*".into(),
                        },
                    )
                    .collect();
                let addresses: Vec<String> = list(obj, "/endpoints")
                    .flat_map(|e| {
                        e.get("addresses")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                    })
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect();
                vec![
                    text("/addressType"),
                    json!(or_unset(first_of(&ports, 3, ","))),
                    json!(or_unset(first_of(&addresses, 3, ","))),
                ]
            }
            Printer::Ingress => {
                let tls = obj
                    .pointer("/spec/tls")
                    .and_then(Value::as_array)
                    .is_some_and(|t| !t.is_empty());
                vec![
                    json!(text_or_none(obj, "/spec/ingressClassName")),
                    json!(ingress_hosts(obj)),
                    json!(load_balancer_addresses(obj)),
                    json!(if tls { "80, 443" } else { "80" }),
                ]
            }
            Printer::PodDisruptionBudget => {
                let int_or_string = |p: &str| match obj.pointer(p) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => "N/A".into(),
                };
                vec![
                    json!(int_or_string("/spec/minAvailable")),
                    json!(int_or_string("/spec/maxUnavailable")),
                    json!(meta::int_at(obj, "/status/disruptionsAllowed")),
                ]
            }
            Printer::StorageClass => {
                let annotation = |k: &str| {
                    obj.pointer("/metadata/annotations")
                        .and_then(|a| a.get(k))
                        .and_then(Value::as_str)
                };
                if [
                    "storageclass.kubernetes.io/is-default-class",
                    "storageclass.beta.kubernetes.io/is-default-class",
                ]
                .into_iter()
                .any(|k| annotation(k) == Some("true"))
                {
                    name.push_str(" (default)");
                }
                let or =
                    |p: &str, d: &str| json!(obj.pointer(p).and_then(Value::as_str).unwrap_or(d));
                vec![
                    text("/provisioner"),
                    or("/reclaimPolicy", "Delete"),
                    or("/volumeBindingMode", "Immediate"),
                    json!(
                        obj.get("allowVolumeExpansion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                ]
            }
        };
        let mut cells = vec![json!(name)];
        cells.extend(kind);
        cells.push(json!(age(obj)));
        if matches!(
            self,
            Printer::PersistentVolume | Printer::PersistentVolumeClaim
        ) {
            cells.push(unset("/spec/volumeMode"));
        }
        cells
    }
}

/// The string at a JSON pointer, "" when absent.
fn text_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The elements of the array at a JSON pointer.
fn list<'a>(obj: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The first `max` items joined by `sep`, then ` + N more...` for the rest,
/// as upstream shortens long lists.
fn first_of(items: &[String], max: usize, sep: &str) -> String {
    let shown = items[..items.len().min(max)].join(sep);
    if items.len() > max {
        format!("{shown} + {} more...", items.len() - max)
    } else {
        shown
    }
}

/// `<unset>` for an empty string.
fn or_unset(s: String) -> String {
    if s.is_empty() { "<unset>".into() } else { s }
}

/// A quantity as stored; `0` when absent (a Go zero quantity).
fn quantity(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("0").to_string()
}

/// Upstream's access-mode abbreviations, deduplicated, in upstream's order.
pub fn access_modes(modes: Option<&Value>) -> String {
    let modes: Vec<&str> = modes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| modes.contains(mode))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A volume's or claim's phase, `Terminating` once deleted.
fn volume_phase(obj: &Value) -> String {
    if meta::is_terminating(obj) {
        "Terminating".into()
    } else {
        text_at(obj, "/status/phase").to_string()
    }
}

/// A volume's or claim's class: the beta annotation, else
/// `spec.storageClassName`.
fn storage_class(obj: &Value) -> String {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .or_else(|| obj.pointer("/spec/storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Endpoints' `ip:port` pairs (bare IPs for port-less subsets), at most
/// three shown; `<none>` without subsets.
fn endpoints(obj: &Value) -> String {
    let subsets: Vec<&Value> = list(obj, "/subsets").collect();
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for subset in subsets {
        let ips: Vec<&str> = list(subset, "/addresses")
            .map(|a| text_at(a, "/ip"))
            .collect();
        let ports: Vec<i64> = list(subset, "/ports")
            .map(|p| meta::int_at(p, "/port"))
            .collect();
        if ports.is_empty() {
            all.extend(ips.iter().map(|ip| ip.to_string()));
        }
        for port in ports {
            all.extend(ips.iter().map(|ip| {
                if ip.contains(':') {
                    format!("[{ip}]:{port}")
                } else {
                    format!("{ip}:{port}")
                }
            }));
        }
    }
    first_of(&all, 3, ",")
}

/// A ResourceQuota's REQUEST and LIMIT cells: `resource: used/hard` for
/// each hard limit, `limits.*` in the second.
fn quota_usage(obj: &Value) -> (String, String) {
    let mut resources: Vec<(&String, &Value)> = obj
        .pointer("/status/hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .collect();
    resources.sort_by(|a, b| a.0.cmp(b.0));
    let (mut request, mut limit) = (Vec::new(), Vec::new());
    for (resource, hard) in resources {
        let used = quantity(
            obj.pointer("/status/used")
                .and_then(|u| u.get(resource.as_str())),
        );
        let entry = format!("{resource}: {used}/{}", quantity(Some(hard)));
        if resource.starts_with("limits.") {
            limit.push(entry);
        } else {
            request.push(entry);
        }
    }
    (request.join(", "), limit.join(", "))
}

/// The controller owner as `kind.group/name`, `<none>` without one.
fn controller_of(obj: &Value) -> String {
    let Some(owner) = list(obj, "/metadata/ownerReferences")
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
    else {
        return "<none>".into();
    };
    let kind = text_at(owner, "/kind");
    let name = text_at(owner, "/name");
    let group = text_at(owner, "/apiVersion")
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    match (kind, group) {
        ("", "") => name.to_string(),
        (k, "") => format!("{}/{name}", k.to_lowercase()),
        (k, g) => format!("{}.{}/{name}", k.to_lowercase(), g.to_lowercase()),
    }
}

/// An HPA's TARGETS cell: `current/target` per metric, two at most.
fn hpa_targets(obj: &Value) -> String {
    let specs: Vec<&Value> = list(obj, "/spec/metrics").collect();
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses: Vec<&Value> = list(obj, "/status/currentMetrics").collect();
    let q = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("<nil>")
            .to_string()
    };
    let percent = |v: &Value, p: &str| {
        v.pointer(p)
            .and_then(Value::as_i64)
            .map(|n| format!("{n}%"))
    };
    let entries: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let source = match text_at(spec, "/type") {
                "External" => "external",
                "Pods" => "pods",
                "Object" => "object",
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unknown type>".to_string(),
            };
            let spec = spec.get(source).unwrap_or(&Value::Null);
            let status = statuses.get(i).and_then(|s| s.get(source));
            let target = spec.get("target").unwrap_or(&Value::Null);
            let average = target.get("averageValue").is_some();
            let current = |p: &str| status.map_or_else(|| "<unknown>".to_string(), |s| q(s, p));
            match source {
                "pods" => format!(
                    "{}/{}",
                    current("/current/averageValue"),
                    q(target, "/averageValue")
                ),
                "external" | "object" if average => format!(
                    "{}/{} (avg)",
                    status
                        .and_then(|s| s.pointer("/current/averageValue"))
                        .and_then(Value::as_str)
                        .unwrap_or("<unknown>"),
                    q(target, "/averageValue")
                ),
                "external" | "object" => {
                    format!("{}/{}", current("/current/value"), q(target, "/value"))
                }
                _ => {
                    let resource = text_at(spec, "/name");
                    if average {
                        format!(
                            "{resource}: {}/{}",
                            current("/current/averageValue"),
                            q(target, "/averageValue")
                        )
                    } else {
                        format!(
                            "{resource}: {}/{}",
                            status
                                .and_then(|s| percent(s, "/current/averageUtilization"))
                                .unwrap_or_else(|| "<unknown>".into()),
                            percent(target, "/averageUtilization")
                                .unwrap_or_else(|| "<auto>".into())
                        )
                    }
                }
            }
        })
        .collect();
    first_of(&entries, 2, ", ")
}

/// An Ingress's HOSTS cell: the rules' hosts (three at most), `*` for none.
fn ingress_hosts(obj: &Value) -> String {
    let rules: Vec<&Value> = list(obj, "/spec/rules").collect();
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in &rules {
        more |= hosts.len() == 3;
        let host = text_at(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".into();
    }
    let shown = hosts.join(",");
    if more {
        format!("{shown} + {} more...", rules.len() - 3)
    } else {
        shown
    }
}

/// The load balancer's IPs (or host names), sorted and deduplicated.
fn load_balancer_addresses(obj: &Value) -> String {
    let addresses: std::collections::BTreeSet<&str> = list(obj, "/status/loadBalancer/ingress")
        .map(|i| match text_at(i, "/ip") {
            "" => text_at(i, "/hostname"),
            ip => ip,
        })
        .filter(|a| !a.is_empty())
        .collect();
    addresses.into_iter().collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(printer: Printer, obj: Value) -> Vec<Value> {
        let cells = printer.cells(&obj);
        assert_eq!(cells.len(), printer.columns().len(), "{printer:?}");
        cells
    }

    #[test]
    fn volumes_and_claims_print_like_upstream() {
        let pv = json!({"metadata": {"name": "pv1"}, "spec": {
            "capacity": {"storage": "5Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "fast"}, "status": {"phase": "Bound"}});
        let cells = row(Printer::PersistentVolume, pv);
        assert_eq!(
            cells[1..9],
            [
                json!("5Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("default/data"),
                json!("fast"),
                json!("<unset>"),
                json!("")
            ]
        );
        assert_eq!(cells[10], "<unset>");
        let pending = json!({"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOncePod"]}, "status": {"phase": "Pending"}});
        let cells = row(Printer::PersistentVolumeClaim, pending);
        assert_eq!(
            cells[1..7],
            [
                json!("Pending"),
                json!(""),
                json!(""),
                json!(""),
                json!(""),
                json!("<unset>")
            ]
        );
    }

    #[test]
    fn lists_are_shortened_as_upstream_does() {
        let ep = json!({"metadata": {"name": "e"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::1"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            row(Printer::Endpoints, ep)[1],
            "10.0.0.1:80,10.0.0.2:80,[fd00::1]:80 + 3 more..."
        );
        assert_eq!(
            row(Printer::Endpoints, json!({"metadata": {}}))[1],
            "<none>"
        );
        let slice = json!({"metadata": {"name": "s"}, "addressType": "IPv4", "ports": [{"name": "http"}, {}]});
        assert_eq!(
            row(Printer::EndpointSlice, slice)[1..4],
            [json!("IPv4"), json!("http,*"), json!("<unset>")]
        );
    }

    #[test]
    fn autoscaler_targets_read_current_over_target() {
        let hpa = json!({"metadata": {"name": "h"}, "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}]},
            "status": {"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12}}}]}});
        assert_eq!(
            row(Printer::HorizontalPodAutoscaler, hpa)[1..6],
            [
                json!("Deployment/web"),
                json!("cpu: 12%/80%, <unknown>/1k + 1 more..."),
                json!("<unset>"),
                json!(5),
                json!(0)
            ]
        );
    }

    #[test]
    fn quota_splits_requests_from_limits() {
        let quota = json!({"metadata": {"name": "q"}, "status": {
            "hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"},
            "used": {"pods": "3", "requests.cpu": "500m"}}});
        assert_eq!(
            row(Printer::ResourceQuota, quota)[1..3],
            [
                json!("pods: 3/10, requests.cpu: 500m/1"),
                json!("limits.cpu: 0/2")
            ]
        );
    }

    #[test]
    fn owners_classes_and_budgets() {
        let cr = json!({"metadata": {"name": "r", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]}, "revision": 2});
        assert_eq!(
            row(Printer::ControllerRevision, cr)[1..3],
            [json!("statefulset.apps/db"), json!(2)]
        );
        let sc = json!({"metadata": {"name": "fast", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "x.io/p"});
        assert_eq!(
            row(Printer::StorageClass, sc)[..5],
            [
                json!("fast (default)"),
                json!("x.io/p"),
                json!("Delete"),
                json!("Immediate"),
                json!(false)
            ]
        );
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            row(Printer::PodDisruptionBudget, pdb)[1..4],
            [json!("50%"), json!("N/A"), json!(1)]
        );
        let ing = json!({"metadata": {"name": "i"}, "spec": {"tls": [{}], "rules": [{"host": "a.io"}, {}]}, "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.9"}, {"hostname": "lb.io"}]}}});
        assert_eq!(
            row(Printer::Ingress, ing)[1..5],
            [
                json!("<none>"),
                json!("a.io"),
                json!("10.0.0.9,lb.io"),
                json!("80, 443")
            ]
        );
    }
}
