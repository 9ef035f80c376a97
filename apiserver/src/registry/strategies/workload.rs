//! Workload kinds that carry a pod template: Deployment, ReplicaSet,
//! ReplicationController, DaemonSet, StatefulSet, Job, CronJob. They share
//! generation tracking, template defaulting and selector validation; their
//! own defaults and columns differ by kind.

use serde_json::{Value, json};

use super::podspec::{default_pod_spec, validate_pod_spec};
use crate::error::FieldError;
use crate::registry::meta::{self, default_at};
use crate::registry::scale::selector_string;
use crate::registry::strategy::{Column, Strategy};
use crate::table::{age, between, or_none, since, text_or_none};
use crate::validation::validate_label_map;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    Replicated,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
}

/// A workload kind.
pub struct Workload {
    kind: Kind,
}

impl Workload {
    /// Deployments.
    pub fn deployment() -> Self {
        Workload {
            kind: Kind::Deployment,
        }
    }
    /// ReplicaSets and ReplicationControllers.
    pub fn replicated() -> Self {
        Workload {
            kind: Kind::Replicated,
        }
    }
    /// DaemonSets.
    pub fn daemon_set() -> Self {
        Workload {
            kind: Kind::DaemonSet,
        }
    }
    /// StatefulSets.
    pub fn stateful_set() -> Self {
        Workload {
            kind: Kind::StatefulSet,
        }
    }
    /// Jobs.
    pub fn job() -> Self {
        Workload { kind: Kind::Job }
    }
    /// CronJobs.
    pub fn cron_job() -> Self {
        Workload {
            kind: Kind::CronJob,
        }
    }

    /// JSON pointer of the pod template.
    fn template_pointer(&self) -> &'static str {
        match self.kind {
            Kind::CronJob => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        }
    }

    fn template_path(&self) -> &'static str {
        match self.kind {
            Kind::CronJob => "spec.jobTemplate.spec.template",
            _ => "spec.template",
        }
    }
}

/// Whether a selector (apps `LabelSelector` or a ReplicationController's
/// map) selects `labels`.
fn selector_matches(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    crate::selectors::LabelSelector::from_json(selector).is_ok_and(|s| s.matches_labels(&labels))
}

impl Strategy for Workload {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn has_status(&self) -> bool {
        true
    }

    fn apply_defaults(&self, obj: &mut Value) {
        match self.kind {
            Kind::Deployment => {
                default_at(obj, &["spec", "replicas"], json!(1));
                default_at(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
                if obj.pointer("/spec/strategy/type") == Some(&json!("RollingUpdate")) {
                    default_at(
                        obj,
                        &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                        json!("25%"),
                    );
                    default_at(
                        obj,
                        &["spec", "strategy", "rollingUpdate", "maxSurge"],
                        json!("25%"),
                    );
                }
                default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
                default_at(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            }
            Kind::Replicated => {
                default_at(obj, &["spec", "replicas"], json!(1));
                // A ReplicationController's selector defaults to its
                // template's labels (apps kinds require one).
                if obj.get("kind") == Some(&json!("ReplicationController"))
                    && let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned()
                {
                    default_at(obj, &["spec", "selector"], labels.clone());
                    default_at(obj, &["metadata", "labels"], labels);
                }
            }
            Kind::DaemonSet => {
                default_at(
                    obj,
                    &["spec", "updateStrategy", "type"],
                    json!("RollingUpdate"),
                );
                if obj.pointer("/spec/updateStrategy/type") == Some(&json!("RollingUpdate")) {
                    default_at(
                        obj,
                        &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"],
                        json!(1),
                    );
                    default_at(
                        obj,
                        &["spec", "updateStrategy", "rollingUpdate", "maxSurge"],
                        json!(0),
                    );
                }
                default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
            }
            Kind::StatefulSet => {
                default_at(obj, &["spec", "replicas"], json!(1));
                default_at(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
                default_at(
                    obj,
                    &["spec", "updateStrategy", "type"],
                    json!("RollingUpdate"),
                );
                if obj.pointer("/spec/updateStrategy/type") == Some(&json!("RollingUpdate")) {
                    default_at(
                        obj,
                        &["spec", "updateStrategy", "rollingUpdate", "partition"],
                        json!(0),
                    );
                }
                default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
                default_at(
                    obj,
                    &["spec", "persistentVolumeClaimRetentionPolicy"],
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            Kind::Job => default_job_spec(obj.get_mut("spec")),
            Kind::CronJob => {
                default_at(obj, &["spec", "concurrencyPolicy"], json!("Allow"));
                default_at(obj, &["spec", "suspend"], json!(false));
                default_at(obj, &["spec", "successfulJobsHistoryLimit"], json!(3));
                default_at(obj, &["spec", "failedJobsHistoryLimit"], json!(1));
                default_job_spec(obj.pointer_mut("/spec/jobTemplate/spec"));
            }
        }
        if let Some(spec) = obj.pointer_mut(&format!("{}/spec", self.template_pointer())) {
            default_pod_spec(spec);
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({});
        if self.kind == Kind::Job && obj.pointer("/spec/manualSelector") != Some(&json!(true)) {
            // Upstream's job strategy selects the job's pods by its uid.
            let uid = obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
            let name = obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null);
            obj["spec"]["selector"] =
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
            for (k, v) in [
                ("batch.kubernetes.io/controller-uid", &uid),
                ("batch.kubernetes.io/job-name", &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                default_at(
                    obj,
                    &["spec", "template", "metadata", "labels", k],
                    v.clone(),
                );
            }
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        let tp = self.template_path();
        let mut errs = Vec::new();
        let template = obj.pointer(self.template_pointer());
        let Some(template) = template else {
            return vec![FieldError::required(tp, "")];
        };
        match template.get("spec") {
            Some(spec) => errs.extend(validate_pod_spec(&format!("{tp}.spec"), spec)),
            None => errs.push(FieldError::required(format!("{tp}.spec"), "")),
        }
        let labels_value = template.pointer("/metadata/labels");
        errs.extend(validate_label_map(
            &format!("{tp}.metadata.labels"),
            labels_value,
        ));
        let empty = serde_json::Map::new();
        let labels = labels_value.and_then(Value::as_object).unwrap_or(&empty);
        if self.kind != Kind::CronJob {
            match obj.pointer("/spec/selector") {
                None if self.kind != Kind::Replicated => {
                    errs.push(FieldError::required("spec.selector", ""))
                }
                Some(sel) if sel.as_object().is_none_or(|m| m.is_empty()) => {
                    errs.push(FieldError::invalid(
                        "spec.selector",
                        sel,
                        "empty selector is invalid for deployment",
                    ))
                }
                Some(sel) if !selector_matches(sel, labels) => errs.push(FieldError::invalid(
                    format!("{tp}.metadata.labels"),
                    &Value::Object(labels.clone()),
                    "`selector` does not match template `labels`",
                )),
                _ => {}
            }
        }
        let restart = template
            .pointer("/spec/restartPolicy")
            .and_then(Value::as_str)
            .unwrap_or("Always");
        let allowed: &[&str] = match self.kind {
            Kind::Job | Kind::CronJob => &["OnFailure", "Never"],
            _ => &["Always"],
        };
        if !allowed.contains(&restart) {
            errs.push(FieldError::not_supported(
                format!("{tp}.spec.restartPolicy"),
                &json!(restart),
                allowed,
            ));
        }
        for field in ["replicas", "parallelism", "completions", "backoffLimit"] {
            if let Some(n) = obj
                .pointer(&format!("/spec/{field}"))
                .and_then(Value::as_i64)
                && n < 0
            {
                errs.push(FieldError::invalid(
                    format!("spec.{field}"),
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
        if self.kind == Kind::CronJob
            && obj
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .is_empty()
        {
            errs.push(FieldError::required("spec.schedule", ""));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate(new);
        let immutable_selector = matches!(
            self.kind,
            Kind::Deployment | Kind::DaemonSet | Kind::StatefulSet | Kind::Job
        ) || new.get("apiVersion") == Some(&json!("apps/v1"));
        if immutable_selector && new.pointer("/spec/selector") != old.pointer("/spec/selector") {
            errs.push(FieldError::immutable(
                "spec.selector",
                new.pointer("/spec/selector").unwrap_or(&Value::Null),
            ));
        }
        if self.kind == Kind::Job && new.pointer("/spec/template") != old.pointer("/spec/template")
        {
            errs.push(FieldError::immutable(
                "spec.template",
                new.pointer("/spec/template").unwrap_or(&Value::Null),
            ));
        }
        errs
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        match self.kind {
            Kind::Replicated => &[("status.replicas", "/status/replicas")],
            Kind::Job => &[("status.successful", "/status/succeeded")],
            _ => &[],
        }
    }

    fn columns(&self) -> Vec<Column> {
        let c = |name, type_, priority, description| Column {
            name,
            type_,
            priority,
            description,
        };
        let mut cols = vec![Column::NAME];
        cols.extend(match self.kind {
            Kind::Deployment => vec![
                c("Ready", "string", 0, "Number of the pod with ready state"),
                c("Up-to-date", "string", 0, "Pods with the desired template."),
                c(
                    "Available",
                    "string",
                    0,
                    "Pods available for minReadySeconds.",
                ),
            ],
            Kind::Replicated => vec![
                c("Desired", "integer", 0, "The number of desired replicas."),
                c("Current", "integer", 0, "The observed number of replicas."),
                c("Ready", "integer", 0, "The number of ready replicas."),
            ],
            Kind::DaemonSet => vec![
                c(
                    "Desired",
                    "integer",
                    0,
                    "Nodes that should run the daemon pod.",
                ),
                c(
                    "Current",
                    "integer",
                    0,
                    "Nodes running the daemon pod that should.",
                ),
                c("Ready", "integer", 0, "Nodes with the daemon pod ready."),
                c(
                    "Up-to-date",
                    "integer",
                    0,
                    "Nodes running the updated daemon pod.",
                ),
                c(
                    "Available",
                    "integer",
                    0,
                    "Nodes with the daemon pod available.",
                ),
                c(
                    "Node Selector",
                    "string",
                    0,
                    "The node selector of the pod template.",
                ),
            ],
            Kind::StatefulSet => vec![c(
                "Ready",
                "string",
                0,
                "Number of the pod with ready state",
            )],
            Kind::Job => vec![
                c("Status", "string", 0, "Status of the job."),
                c(
                    "Completions",
                    "string",
                    0,
                    "Succeeded pods of the completions.",
                ),
                c(
                    "Duration",
                    "string",
                    0,
                    "Time required to complete the job.",
                ),
            ],
            Kind::CronJob => vec![
                c("Schedule", "string", 0, "The schedule in Cron format."),
                c(
                    "Timezone",
                    "string",
                    0,
                    "The time zone name for the given schedule.",
                ),
                c(
                    "Suspend",
                    "boolean",
                    0,
                    "Whether subsequent executions are suspended.",
                ),
                c("Active", "integer", 0, "The number of running jobs."),
                c(
                    "Last Schedule",
                    "string",
                    0,
                    "When a job was last scheduled.",
                ),
            ],
        });
        cols.extend([
            Column::AGE,
            c(
                "Containers",
                "string",
                1,
                "Names of each container in the template.",
            ),
            c(
                "Images",
                "string",
                1,
                "Images referenced by each container in the template.",
            ),
        ]);
        if self.kind != Kind::StatefulSet {
            cols.push(c("Selector", "string", 1, "A label query over pods."));
        }
        cols
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let n = |f: &str| meta::int_at(obj, &format!("/status/{f}"));
        let spec_n = |f: &str, d: i64| {
            obj.pointer(&format!("/spec/{f}"))
                .and_then(Value::as_i64)
                .unwrap_or(d)
        };
        let mut cells = vec![json!(meta::name(obj))];
        cells.extend(match self.kind {
            Kind::Deployment => vec![
                json!(format!("{}/{}", n("readyReplicas"), spec_n("replicas", 1))),
                json!(n("updatedReplicas")),
                json!(n("availableReplicas")),
            ],
            Kind::Replicated => vec![
                json!(spec_n("replicas", 1)),
                json!(n("replicas")),
                json!(n("readyReplicas")),
            ],
            Kind::DaemonSet => vec![
                json!(n("desiredNumberScheduled")),
                json!(n("currentNumberScheduled")),
                json!(n("numberReady")),
                json!(n("updatedNumberScheduled")),
                json!(n("numberAvailable")),
                json!(or_none(selector_string(
                    obj.pointer("/spec/template/spec/nodeSelector")
                ))),
            ],
            Kind::StatefulSet => vec![json!(format!(
                "{}/{}",
                n("readyReplicas"),
                spec_n("replicas", 1)
            ))],
            Kind::Job => vec![
                json!(job_status(obj)),
                json!(job_completions(obj)),
                json!(job_duration(obj)),
            ],
            Kind::CronJob => vec![
                obj.pointer("/spec/schedule").cloned().unwrap_or(json!("")),
                json!(text_or_none(obj, "/spec/timeZone")),
                json!(
                    match obj.pointer("/spec/suspend").and_then(Value::as_bool) {
                        Some(true) => "True",
                        Some(false) => "False",
                        None => "<unset>",
                    }
                ),
                json!(
                    obj.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, |a| a.len())
                ),
                json!(match obj.pointer("/status/lastScheduleTime") {
                    Some(Value::String(t)) => since(t),
                    _ => "<none>".to_string(),
                }),
            ],
        });
        cells.push(json!(age(obj)));
        let template = obj.pointer(self.template_pointer());
        let containers = template
            .and_then(|t| t.pointer("/spec/containers"))
            .and_then(Value::as_array);
        let field = |f: &str| {
            containers
                .into_iter()
                .flatten()
                .map(|c| c.get(f).and_then(Value::as_str).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        };
        cells.extend([json!(field("name")), json!(field("image"))]);
        let selector = match self.kind {
            Kind::StatefulSet => return cells,
            Kind::CronJob => obj.pointer("/spec/jobTemplate/spec/selector"),
            _ => obj.pointer("/spec/selector"),
        };
        // Deployments print the bare selector; the rest `<none>` for none.
        let selector = selector_string(selector);
        cells.push(json!(if self.kind == Kind::Deployment {
            selector
        } else {
            or_none(selector)
        }));
        cells
    }
}

fn default_job_spec(spec: Option<&mut Value>) {
    let Some(spec) = spec else { return };
    if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
        default_at(spec, &["completions"], json!(1));
    }
    default_at(spec, &["parallelism"], json!(1));
    default_at(spec, &["backoffLimit"], json!(6));
    default_at(spec, &["completionMode"], json!("NonIndexed"));
    default_at(spec, &["suspend"], json!(false));
    default_at(
        spec,
        &["podReplacementPolicy"],
        json!("TerminatingOrFailed"),
    );
}

/// A Job's STATUS cell, in upstream's order of precedence.
fn job_status(obj: &Value) -> &'static str {
    let conditions = obj.pointer("/status/conditions").and_then(Value::as_array);
    // Upstream reads the first condition of a type.
    let is = |t: &str| {
        conditions
            .into_iter()
            .flatten()
            .find(|c| c.get("type") == Some(&json!(t)))
            .is_some_and(|c| c.get("status") == Some(&json!("True")))
    };
    if is("Complete") {
        "Complete"
    } else if is("Failed") {
        "Failed"
    } else if meta::is_terminating(obj) {
        "Terminating"
    } else if is("Suspended") {
        "Suspended"
    } else if is("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// A Job's COMPLETIONS cell: `succeeded/completions`, or for a work queue
/// `succeeded/1` (`of <parallelism>` when that is above 1).
fn job_completions(obj: &Value) -> String {
    let succeeded = meta::int_at(obj, "/status/succeeded");
    match obj.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match meta::int_at(obj, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// A Job's DURATION cell: from its start to its completion, or to now
/// while it runs; empty before it starts.
fn job_duration(obj: &Value) -> String {
    let at = |p: &str| obj.pointer(p).and_then(Value::as_str);
    match (at("/status/startTime"), at("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => since(start),
        (Some(start), Some(end)) => between(start, end).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(selector: Value, labels: Value) -> Value {
        json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d"}, "spec": {
            "selector": selector,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
        }})
    }

    #[test]
    fn deployment_defaults_are_upstreams() {
        let mut d = deployment(json!({"matchLabels": {"a": "b"}}), json!({"a": "b"}));
        Workload::deployment().apply_defaults(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert!(Workload::deployment().validate(&d).is_empty());
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut d = deployment(json!({"matchLabels": {"a": "b"}}), json!({"a": "c"}));
        Workload::deployment().apply_defaults(&mut d);
        let errs = Workload::deployment().validate(&d);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
    }
}
