//! The Priority admission plugin, after upstream's
//! `plugin/pkg/admission/priority`: a new pod's `spec.priority` and
//! `spec.preemptionPolicy` come from the PriorityClass it names (or the
//! global default class), and at most one PriorityClass may be the global
//! default. Also the built-in system PriorityClasses.

use serde_json::{Value, json};

use super::{Attributes, Operation};
use crate::error::{ApiError, ApiResult, Subject};
use crate::registry::meta;
use crate::registry::store::Backend;

/// Names with this prefix are reserved for the system PriorityClasses.
pub const SYSTEM_PRIORITY_CLASS_PREFIX: &str = "system-";

/// The highest value a user-defined PriorityClass may have.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;

/// The value of `system-cluster-critical`; `system-node-critical` is
/// 1000 higher.
pub const SYSTEM_CRITICAL_PRIORITY: i64 = 2 * HIGHEST_USER_DEFINABLE_PRIORITY;

/// The preemption policy of classes that name none, and of pods when no
/// class applies.
pub const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";

/// The PriorityClasses' storage resource.
const RESOURCE: &str = "priorityclasses";

/// One built-in PriorityClass.
#[derive(Debug)]
pub struct SystemPriorityClass {
    /// Its name, e.g. `system-node-critical`.
    pub name: &'static str,
    /// Its priority.
    pub value: i64,
    /// Its `description`, as upstream's.
    pub description: &'static str,
}

/// The built-in PriorityClasses, created at start-up and valid for pods
/// even before they exist.
pub const SYSTEM_PRIORITY_CLASSES: &[SystemPriorityClass] = &[
    SystemPriorityClass {
        name: "system-node-critical",
        value: SYSTEM_CRITICAL_PRIORITY + 1000,
        description: "Used for system critical pods that must not be moved from their current node.",
    },
    SystemPriorityClass {
        name: "system-cluster-critical",
        value: SYSTEM_CRITICAL_PRIORITY,
        description: "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    },
];

impl SystemPriorityClass {
    /// The built-in class called `name`, if there is one.
    pub fn named(name: &str) -> Option<&'static SystemPriorityClass> {
        SYSTEM_PRIORITY_CLASSES.iter().find(|c| c.name == name)
    }

    /// The object created at start-up.
    pub fn object(&self) -> Value {
        json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": self.name},
            "value": self.value,
            "description": self.description,
        })
    }
}

/// What a new pod's priority resolves to.
struct Resolved {
    /// The class applied (empty when none is).
    class_name: String,
    /// `spec.priority`.
    value: i64,
    /// `spec.preemptionPolicy`, when the class sets one.
    preemption_policy: Option<String>,
}

impl Resolved {
    fn from_class(pc: &Value) -> Self {
        Resolved {
            class_name: meta::name(pc).to_string(),
            value: meta::int_at(pc, "/value"),
            preemption_policy: pc
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// The global default PriorityClass as the watch cache holds them: the
/// lowest-valued of those marked `globalDefault` (racing creates can leave
/// more than one), as upstream.
async fn global_default(backend: &Backend) -> Option<Value> {
    backend
        .cached_list(RESOURCE)
        .await
        .iter()
        .filter(|o| o.value.get("globalDefault") == Some(&Value::Bool(true)))
        .min_by_key(|o| meta::int_at(&o.value, "/value"))
        .map(|o| o.value.clone())
}

/// The priority of a new pod naming `class_name` (empty: none); an unknown
/// class refuses the pod (403).
async fn resolve(backend: &Backend, class_name: &str, pod: &Subject) -> ApiResult<Resolved> {
    if class_name.is_empty() {
        return Ok(match global_default(backend).await {
            Some(pc) => Resolved::from_class(&pc),
            None => Resolved {
                class_name: String::new(),
                value: 0,
                preemption_policy: Some(PREEMPT_LOWER_PRIORITY.to_string()),
            },
        });
    }
    if let Some(pc) = backend.lookup(RESOURCE, class_name, pod).await? {
        return Ok(Resolved::from_class(&pc));
    }
    match SystemPriorityClass::named(class_name) {
        Some(system) => Ok(Resolved {
            class_name: class_name.to_string(),
            value: system.value,
            preemption_policy: Some(PREEMPT_LOWER_PRIORITY.to_string()),
        }),
        None => Err(ApiError::forbidden(
            pod.clone(),
            &format!("no PriorityClass with name {class_name} was found"),
        )),
    }
}

/// Mutating half, for pods: a new pod gets its class's priority and
/// preemption policy (refused with 403 if it asks for different ones); an
/// update that leaves them out keeps the stored ones.
pub async fn admit(attrs: &Attributes<'_>, pod: &mut Value) -> ApiResult<()> {
    if !attrs.is("", "pods") {
        return Ok(());
    }
    if attrs.operation == Operation::Update {
        let old_spec = attrs.old.and_then(|o| o.get("spec"));
        if let (Some(spec), Some(old_spec)) =
            (pod.get_mut("spec").and_then(Value::as_object_mut), old_spec)
        {
            for field in ["priority", "preemptionPolicy"] {
                let unset = spec.get(field).is_none_or(Value::is_null);
                if let Some(v) = old_spec.get(field).filter(|_| unset) {
                    spec.insert(field.to_string(), v.clone());
                }
            }
        }
        return Ok(());
    }
    let subject = Subject::new(attrs.info.group, attrs.info.plural, meta::name(pod));
    let class_name = meta::pointer_string(pod, "/spec/priorityClassName");
    // A pod without a spec fails validation next.
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let resolved = resolve(attrs.backend, &class_name, &subject).await?;
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != resolved.value
    {
        return Err(ApiError::forbidden(
            subject,
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                resolved.value
            ),
        ));
    }
    if !resolved.class_name.is_empty() {
        spec.insert("priorityClassName".into(), json!(resolved.class_name));
    }
    spec.insert("priority".into(), json!(resolved.value));
    if let Some(policy) = resolved.preemption_policy {
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
            && given != policy
        {
            return Err(ApiError::forbidden(
                subject,
                &format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ),
            ));
        }
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// Validating half, for PriorityClasses: a class may become the global
/// default only while no other class is (403).
pub async fn validate(attrs: &Attributes<'_>, pc: &Value) -> ApiResult<()> {
    if !attrs.is("scheduling.k8s.io", "priorityclasses")
        || pc.get("globalDefault") != Some(&Value::Bool(true))
    {
        return Ok(());
    }
    let Some(current) = global_default(attrs.backend).await else {
        return Ok(());
    };
    let name = meta::name(pc);
    let current_name = meta::name(&current);
    if attrs.operation == Operation::Create || current_name != name {
        return Err(ApiError::forbidden(
            Subject::new(attrs.info.group, attrs.info.plural, name),
            &format!(
                "PriorityClass {current_name} is already marked as default. Only one default can exist"
            ),
        ));
    }
    Ok(())
}
