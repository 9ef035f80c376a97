//! Events (core/v1 and events.k8s.io/v1): path-segment names, upstream's
//! field labels, and `kubectl get events`' LAST SEEN TYPE REASON OBJECT
//! MESSAGE table. Both API shapes are read, since the two share storage.

use serde_json::{Value, json};

use crate::registry::strategy::{Column, NameRule, Strategy};
use crate::table::since;

/// Events of either API.
pub struct EventStrategy;

/// The first string found at any of `pointers`.
fn first<'a>(obj: &'a Value, pointers: &[&str]) -> &'a str {
    pointers
        .iter()
        .find_map(|p| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("")
}

impl Strategy for EventStrategy {
    fn name_rule(&self) -> NameRule {
        NameRule::Path
    }

    fn field_labels(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("involvedObject.kind", "/involvedObject/kind"),
            ("involvedObject.namespace", "/involvedObject/namespace"),
            ("involvedObject.name", "/involvedObject/name"),
            ("involvedObject.uid", "/involvedObject/uid"),
            ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
            (
                "involvedObject.resourceVersion",
                "/involvedObject/resourceVersion",
            ),
            ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
            ("regarding.kind", "/regarding/kind"),
            ("regarding.name", "/regarding/name"),
            ("regarding.namespace", "/regarding/namespace"),
            ("regarding.uid", "/regarding/uid"),
            ("reason", "/reason"),
            ("reportingComponent", "/reportingComponent"),
            ("reportingController", "/reportingController"),
            ("source", "/source/component"),
            ("type", "/type"),
        ]
    }

    fn columns(&self) -> Vec<Column> {
        let c = |name, type_, priority, description| Column {
            name,
            type_,
            priority,
            description,
        };
        vec![
            c(
                "Last Seen",
                "string",
                0,
                "Time when this event was last observed.",
            ),
            c("Type", "string", 0, "Type of this event (Normal, Warning)."),
            c("Reason", "string", 0, "Why the action was taken."),
            c("Object", "string", 0, "The object this event is about."),
            c(
                "Subobject",
                "string",
                1,
                "The part of the object this event is about.",
            ),
            c("Source", "string", 1, "The component reporting this event."),
            c(
                "Message",
                "string",
                0,
                "A human-readable description of the status of this operation.",
            ),
            c(
                "First Seen",
                "string",
                1,
                "The time at which the event was first recorded.",
            ),
            c(
                "Count",
                "string",
                1,
                "The number of times this event has occurred.",
            ),
            c("Name", "string", 1, "Name of the event."),
        ]
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let last = first(
            obj,
            &[
                "/series/lastObservedTime",
                "/lastTimestamp",
                "/deprecatedLastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ],
        );
        let first_seen = first(
            obj,
            &[
                "/firstTimestamp",
                "/deprecatedFirstTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ],
        );
        let kind = first(obj, &["/involvedObject/kind", "/regarding/kind"]).to_ascii_lowercase();
        let name = first(obj, &["/involvedObject/name", "/regarding/name"]);
        let source = first(
            obj,
            &[
                "/source/component",
                "/deprecatedSource/component",
                "/reportingComponent",
                "/reportingController",
            ],
        );
        let host = first(obj, &["/source/host", "/deprecatedSource/host"]);
        let count = obj
            .pointer("/series/count")
            .or_else(|| obj.pointer("/count"))
            .or_else(|| obj.pointer("/deprecatedCount"))
            .and_then(Value::as_i64)
            .unwrap_or(1);
        vec![
            json!(since(last)),
            json!(first(obj, &["/type"])),
            json!(first(obj, &["/reason"])),
            json!(format!("{kind}/{name}")),
            json!(first(
                obj,
                &["/involvedObject/fieldPath", "/regarding/fieldPath"]
            )),
            json!(if host.is_empty() {
                source.to_string()
            } else {
                format!("{source}, {host}")
            }),
            json!(first(obj, &["/message", "/note"])),
            json!(since(first_seen)),
            json!(count.to_string()),
            json!(first(obj, &["/metadata/name"])),
        ]
    }
}
