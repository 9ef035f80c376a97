//! Kinds stored in another version's shape. events.k8s.io/v1 Events live
//! in the same storage as core/v1 Events (as upstream), so that what a
//! controller records through either API shows in `kubectl describe`
//! and `kubectl get events`. Values are stored in the core/v1 shape.

use std::sync::Arc;

use serde_json::{Map, Value};

/// One direction of a conversion.
pub type ConvertFn = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// How a kind's objects map onto their stored shape.
#[derive(Clone)]
pub struct Conversion {
    /// Served shape → stored shape.
    pub to_storage: ConvertFn,
    /// Stored shape → served shape.
    pub from_storage: ConvertFn,
}

impl Conversion {
    /// A version of a custom resource whose objects are stored as
    /// `storage_api_version`: conversion `None` only rewrites `apiVersion`,
    /// as upstream's nop converter.
    pub fn api_version_only(served: &str, storage: &str) -> Self {
        let (served, storage) = (served.to_string(), storage.to_string());
        Conversion {
            to_storage: Arc::new(move |v| with_api_version(v, &storage)),
            from_storage: Arc::new(move |v| with_api_version(v, &served)),
        }
    }
}

fn with_api_version(mut obj: Value, api_version: &str) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(api_version.into()));
    }
    obj
}

/// (events.k8s.io/v1 field, core/v1 field) pairs that differ in name;
/// every other field has the same name in both.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: Value, api_version: &str, to_core: bool) -> Value {
    let Value::Object(mut m) = obj else {
        return obj;
    };
    let mut out = Map::new();
    for (from, to) in EVENT_RENAMES {
        let (src, dst) = if to_core { (from, to) } else { (to, from) };
        if let Some(v) = m.remove(*src) {
            out.insert(dst.to_string(), v);
        }
    }
    out.extend(m);
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Value::Object(out)
}

/// events.k8s.io/v1 Event → core/v1 Event.
fn event_to_core(obj: Value) -> Value {
    rename(obj, "v1", true)
}

/// core/v1 Event → events.k8s.io/v1 Event.
fn event_from_core(obj: Value) -> Value {
    rename(obj, "events.k8s.io/v1", false)
}

/// The conversion of events.k8s.io/v1 Events.
pub fn events_v1() -> Conversion {
    Conversion {
        to_storage: Arc::new(event_to_core),
        from_storage: Arc::new(event_from_core),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_through_the_core_shape() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "Scheduled", "reason": "Scheduled",
            "reportingController": "capstan-scheduler", "reportingInstance": "s1", "type": "Normal", "action": "Binding"});
        let core = event_to_core(v1.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "Scheduled");
        assert_eq!(core["reportingComponent"], "capstan-scheduler");
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        assert_eq!(event_from_core(core), v1);
    }
}
