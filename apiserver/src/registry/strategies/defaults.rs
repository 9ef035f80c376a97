//! Upstream's `SetDefaults_*` for kinds that have no strategy of their own
//! but whose defaults users see (in `kubectl get` columns and in the
//! objects controllers read).

use serde_json::{Value, json};

use crate::registry::meta;

/// PersistentVolume: `persistentVolumeReclaimPolicy: Retain`,
/// `volumeMode: Filesystem`.
pub fn persistent_volume(obj: &mut Value) {
    let spec = meta::ensure_object(&mut obj["spec"]);
    spec.entry("persistentVolumeReclaimPolicy")
        .or_insert_with(|| json!("Retain"));
    spec.entry("volumeMode")
        .or_insert_with(|| json!("Filesystem"));
}

/// PersistentVolumeClaim: `volumeMode: Filesystem`.
pub fn persistent_volume_claim(obj: &mut Value) {
    let spec = meta::ensure_object(&mut obj["spec"]);
    spec.entry("volumeMode")
        .or_insert_with(|| json!("Filesystem"));
}

/// HorizontalPodAutoscaler (autoscaling/v2): `minReplicas: 1`, and with no
/// metrics, 80% average CPU utilization.
pub fn horizontal_pod_autoscaler(obj: &mut Value) {
    let spec = meta::ensure_object(&mut obj["spec"]);
    spec.entry("minReplicas").or_insert_with(|| json!(1));
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(|m| m.is_empty());
    if no_metrics {
        spec.insert(
            "metrics".to_string(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_what_is_missing() {
        let mut pv = json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}});
        persistent_volume(&mut pv);
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        let mut hpa = json!({"spec": {"maxReplicas": 5}});
        horizontal_pod_autoscaler(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let mut custom = json!({"spec": {"minReplicas": 2, "metrics": [{"type": "Pods"}]}});
        horizontal_pod_autoscaler(&mut custom);
        assert_eq!(custom["spec"]["minReplicas"], 2);
        assert_eq!(custom["spec"]["metrics"], json!([{"type": "Pods"}]));
    }
}
