use serde_json::{Value, json};

use super::fieldset::{self, FieldSet};
use super::managed::{self, Operation};
use super::*;
use crate::registry::{ResourceInfo, kinds};

fn info(kind: &str) -> ResourceInfo {
    kinds::all()
        .into_iter()
        .find(|i| i.kind == kind)
        .unwrap_or_else(|| panic!("{kind} is served"))
}

fn types(kind: &str) -> TypeSource {
    TypeSource::of(&info(kind))
}

const MAIN: Scope = Scope {
    part: Part::Main,
    has_status: true,
};

fn opts(manager: &str) -> Options {
    Options {
        manager: Some(manager.into()),
        ..Default::default()
    }
}

fn forced(manager: &str) -> Options {
    Options {
        force: true,
        ..opts(manager)
    }
}

fn deploy(replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}
            }
        }
    })
}

fn apply_as(live: Option<&Value>, config: &Value, o: &Options) -> Result<Value, ApplyError> {
    apply(live, config, o, MAIN, "apps/v1", &types("Deployment"))
}

fn applied(live: Option<&Value>, config: &Value, o: &Options) -> Value {
    apply_as(live, config, o).unwrap_or_else(|e| panic!("apply failed: {e:?}"))
}

/// The fields of `manager`'s entry doing `op`, as FieldsV1.
fn owned(obj: &Value, manager: &str, op: Operation) -> Value {
    managed::decode(obj)
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.manager == manager && e.operation == op)
        .map(|e| e.fields.to_fields_v1())
        .unwrap_or(Value::Null)
}

fn managers(obj: &Value) -> Vec<(String, Operation)> {
    managed::decode(obj)
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect()
}

fn update_as(old: Option<&Value>, mut new: Value, manager: &str) -> Value {
    track(
        old,
        &mut new,
        &opts(manager),
        MAIN,
        "apps/v1",
        &types("Deployment"),
    );
    new
}

#[test]
fn fields_v1_round_trips_with_self_markers() {
    let v = json!({"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}});
    let set = FieldSet::from_fields_v1(&v).unwrap_or_default();
    assert_eq!(set.to_fields_v1(), v);
    let image: Vec<String> = [
        "f:spec",
        "f:template",
        "f:spec",
        "f:containers",
        "k:{\"name\":\"nginx\"}",
        "f:image",
    ]
    .map(String::from)
    .to_vec();
    assert!(set.has(&image));
    assert!(set.has(&image[..5]));
    assert!(!set.has(&image[..4]));
    assert_eq!(
        fieldset::path_string(&image),
        ".spec.template.spec.containers[name=\"nginx\"].image"
    );
    assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_err());
}

#[test]
fn applied_config_owns_leaves_and_list_items() {
    let set = apply::owned_by(&deploy(3), MAIN, &types("Deployment")).unwrap_or_default();
    assert_eq!(
        set.to_fields_v1(),
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}
                }
            }
        })
    );
}

#[test]
fn container_ports_are_keyed_by_port_and_defaulted_protocol() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["a/b"]},
        "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}], "args": ["x"]}]}});
    let set = apply::owned_by(&pod, MAIN, &types("Pod")).unwrap_or_default();
    let c = &set.to_fields_v1()["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"];
    assert_eq!(
        c["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
    // Untagged lists are atomic: owned whole.
    assert_eq!(c["f:args"], json!({}));
    // finalizers is a set.
    assert_eq!(
        set.to_fields_v1()["f:metadata"]["f:finalizers"],
        json!({"v:\"a/b\"": {}})
    );
}

#[test]
fn apply_creates_with_an_apply_entry() {
    let obj = applied(None, &deploy(3), &opts("kubectl"));
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(managers(&obj), vec![("kubectl".into(), Operation::Apply)]);
    let entry = &obj["metadata"]["managedFields"][0];
    assert_eq!(entry["operation"], "Apply");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].is_string());
    assert!(entry.get("subresource").is_none());
}

#[test]
fn two_appliers_with_the_same_value_share_the_field() {
    let first = applied(None, &deploy(3), &opts("a"));
    let second = applied(Some(&first), &deploy(3), &opts("b"));
    assert_eq!(
        owned(&second, "a", Operation::Apply)["f:spec"]["f:replicas"],
        json!({})
    );
    assert_eq!(
        owned(&second, "b", Operation::Apply)["f:spec"]["f:replicas"],
        json!({})
    );
}

#[test]
fn a_different_value_conflicts_and_force_takes_the_field() {
    let first = applied(None, &deploy(3), &opts("a"));
    let err = apply_as(Some(&first), &deploy(5), &opts("b"));
    let Err(ApplyError::Conflicts(c)) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(c.len(), 1);
    assert_eq!(fieldset::path_string(&c[0].path), ".spec.replicas");
    let e = conflict_error(&c);
    assert_eq!(e.code, http::StatusCode::CONFLICT);
    assert_eq!(
        e.message,
        "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
    );
    assert_eq!(e.causes[0].reason, "FieldManagerConflict");
    assert_eq!(e.causes[0].field, ".spec.replicas");

    let taken = applied(Some(&first), &deploy(5), &forced("b"));
    assert_eq!(taken["spec"]["replicas"], 5);
    assert_eq!(
        owned(&taken, "b", Operation::Apply)["f:spec"]["f:replicas"],
        json!({})
    );
    assert!(
        owned(&taken, "a", Operation::Apply)["f:spec"]
            .get("f:replicas")
            .is_none()
    );
}

#[test]
fn conflicts_with_an_updater_name_its_version() {
    let created = update_as(None, deploy(3), "kubectl-client-side-apply");
    let err = apply_as(Some(&created), &deploy(5), &opts("kubectl"));
    let Err(ApplyError::Conflicts(c)) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(
        conflict_error(&c).message,
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
    );
}

#[test]
fn several_conflicts_are_listed_per_manager() {
    let first = applied(None, &deploy(3), &opts("a"));
    let mut changed = deploy(5);
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let Err(ApplyError::Conflicts(c)) = apply_as(Some(&first), &changed, &opts("b")) else {
        panic!("expected conflicts");
    };
    assert_eq!(
        conflict_error(&c).message,
        "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn a_field_dropped_from_the_config_is_removed_unless_someone_else_owns_it() {
    let mut with_label = deploy(3);
    with_label["metadata"]["labels"]["tier"] = json!("web");
    let first = applied(None, &with_label, &opts("a"));
    // Nobody else owns `tier`: dropping it removes it.
    let dropped = applied(Some(&first), &deploy(3), &opts("a"));
    assert!(dropped["metadata"]["labels"].get("tier").is_none());
    assert_eq!(dropped["metadata"]["labels"]["app"], "web");

    // Shared with another applier: it stays, owned by the other.
    let shared = applied(Some(&first), &with_label, &opts("b"));
    let kept = applied(Some(&shared), &deploy(3), &opts("a"));
    assert_eq!(kept["metadata"]["labels"]["tier"], "web");
    assert!(
        owned(&kept, "a", Operation::Apply)["f:metadata"]["f:labels"]
            .get("f:tier")
            .is_none()
    );
}

#[test]
fn associative_list_items_merge_by_key() {
    let first = applied(None, &deploy(3), &opts("a"));
    let sidecar = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy"}]}}}
    });
    let both = applied(Some(&first), &sidecar, &opts("b"));
    let names: Vec<&str> = both["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["nginx", "sidecar"]);
    // Removing its only item takes b's container out, and only that.
    let mut bare = sidecar.clone();
    bare["spec"] = json!({});
    let after = applied(Some(&both), &bare, &opts("b"));
    let names: Vec<&str> = after["spec"]["template"]["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["nginx"]);
}

#[test]
fn set_items_are_unioned_and_atomic_lists_replaced() {
    let t = types("Pod");
    let pod = |fins: Value, args: Value| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": fins},
            "spec": {"containers": [{"name": "c", "image": "i", "args": args}]}})
    };
    let first = apply(
        None,
        &pod(json!(["x/a"]), json!(["1", "2"])),
        &opts("a"),
        MAIN,
        "v1",
        &t,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let second = apply(
        Some(&first),
        &pod(json!(["x/b"]), json!(["1", "2"])),
        &opts("b"),
        MAIN,
        "v1",
        &t,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(second["metadata"]["finalizers"], json!(["x/a", "x/b"]));
    // An atomic list with another value is a conflict on the whole list.
    let err = apply(
        Some(&second),
        &pod(json!(["x/b"]), json!(["3"])),
        &opts("b"),
        MAIN,
        "v1",
        &t,
    );
    let Err(ApplyError::Conflicts(c)) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(
        fieldset::path_string(&c[0].path),
        ".spec.containers[name=\"c\"].args"
    );
}

#[test]
fn an_update_takes_the_fields_it_changes() {
    let first = applied(None, &deploy(3), &opts("kubectl"));
    let mut scaled = first.clone();
    scaled["spec"]["replicas"] = json!(7);
    let after = update_as(Some(&first), scaled, "hpa");
    assert_eq!(
        owned(&after, "hpa", Operation::Update),
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert!(
        owned(&after, "kubectl", Operation::Apply)["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    // The applier gets it back only by force.
    assert!(matches!(
        apply_as(Some(&after), &deploy(3), &opts("kubectl")),
        Err(ApplyError::Conflicts(_))
    ));
}

#[test]
fn create_records_an_update_entry_for_what_was_set() {
    let created = update_as(None, deploy(3), "kubectl-create");
    let entries = &created["metadata"]["managedFields"];
    assert_eq!(entries[0]["manager"], "kubectl-create");
    assert_eq!(entries[0]["operation"], "Update");
    let f = &entries[0]["fieldsV1"];
    assert_eq!(f["f:metadata"]["f:labels"], json!({".": {}, "f:app": {}}));
    assert_eq!(f["f:spec"]["f:replicas"], json!({}));
    assert!(f["f:metadata"].get("f:name").is_none());
    assert!(f.get("f:kind").is_none());
    // Structs and required lists are in the kind's zero value: only their
    // fields are owned. New list items are owned themselves.
    assert!(f["f:spec"].get(".").is_none());
    let containers = &f["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert!(containers.get(".").is_none(), "{containers}");
    assert_eq!(
        containers["k:{\"name\":\"nginx\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
}

#[test]
fn a_custom_resource_owns_what_it_creates_from_an_empty_object() {
    let t = TypeSource::openapi(json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}));
    let mut cr = json!({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"size": 1}});
    track(None, &mut cr, &opts("creator"), MAIN, "x/v1", &t);
    assert_eq!(
        cr["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:spec": {".": {}, "f:size": {}}})
    );
}

#[test]
fn removed_fields_leave_every_entry_and_empty_entries_go() {
    let mut labelled = deploy(3);
    labelled["metadata"]["labels"]["tier"] = json!("x");
    let created = update_as(None, labelled.clone(), "creator");
    let mut only_label = created.clone();
    only_label["metadata"]["labels"]["extra"] = json!("y");
    let relabelled = update_as(Some(&created), only_label, "labeller");
    assert_eq!(
        owned(&relabelled, "labeller", Operation::Update),
        json!({"f:metadata": {"f:labels": {"f:extra": {}}}})
    );
    let mut unlabelled = relabelled.clone();
    if let Some(l) = unlabelled["metadata"]["labels"].as_object_mut() {
        l.remove("extra");
    }
    let after = update_as(Some(&relabelled), unlabelled, "creator");
    assert_eq!(
        managers(&after),
        vec![("creator".into(), Operation::Update)]
    );
}

#[test]
fn an_unchanged_write_keeps_managed_fields_as_they_were() {
    let created = update_as(None, deploy(3), "creator");
    let again = update_as(Some(&created), created.clone(), "someone");
    assert_eq!(again, created);
}

#[test]
fn managed_fields_sent_empty_are_cleared() {
    let created = update_as(None, deploy(3), "creator");
    let mut reset = created.clone();
    reset["metadata"]["managedFields"] = json!([]);
    let after = update_as(Some(&created), reset, "someone");
    assert!(after["metadata"].get("managedFields").is_none());
    // Sent without managedFields: the stored ones stay.
    let mut absent = created.clone();
    if let Some(m) = absent["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    assert_eq!(update_as(Some(&created), absent, "someone"), created);
}

#[test]
fn status_applies_are_recorded_with_their_subresource() {
    let first = applied(None, &deploy(3), &opts("a"));
    let status = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 9}, "status": {"replicas": 3}});
    let o = Options {
        subresource: "status".into(),
        ..opts("ctrl")
    };
    let scope = Scope {
        part: Part::Status,
        has_status: true,
    };
    let out = apply(
        Some(&first),
        &status,
        &o,
        scope,
        "apps/v1",
        &types("Deployment"),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let entry = managed::decode(&out)
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.manager == "ctrl");
    let entry = entry.unwrap_or_else(|| panic!("no ctrl entry"));
    assert_eq!(entry.subresource, "status");
    assert_eq!(
        entry.fields.to_fields_v1(),
        json!({"f:status": {"f:replicas": {}}})
    );
}

#[test]
fn manager_names_default_from_the_user_agent() {
    assert_eq!(
        manager_name(None, Some("kubectl/v1.33.0 (linux/amd64) kubernetes/abc")),
        "kubectl"
    );
    assert_eq!(manager_name(Some("mine"), Some("kubectl/v1")), "mine");
    assert_eq!(manager_name(None, None), "");
    assert_eq!(manager_name(None, Some(&"x".repeat(200))).len(), 128);
    assert!(
        manager_errors(&"x".repeat(129))[0]
            .message
            .contains("Too long")
    );
    assert!(!manager_errors("a\u{7}b").is_empty());
    assert!(manager_errors("kubectl edit").is_empty());
}

#[test]
fn openapi_extensions_give_list_and_map_semantics() {
    let schema = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port", "protocol"],
                        "items": {"type": "object", "properties": {
                            "port": {"type": "integer"},
                            "protocol": {"type": "string", "default": "TCP"}}}},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                        "additionalProperties": {"type": "string"}},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }
        }
    });
    let t = TypeSource::openapi(schema);
    let config = json!({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "t"},
        "spec": {"ports": [{"port": 80}], "tags": ["a"], "args": ["x"],
                 "selector": {"a": "b"}, "labels": {"c": "d"}}});
    let set = apply::owned_by(&config, MAIN, &t).unwrap_or_default();
    assert_eq!(
        set.to_fields_v1(),
        json!({"f:spec": {
            "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}}},
            "f:tags": {"v:\"a\"": {}},
            "f:args": {},
            "f:selector": {},
            "f:labels": {"f:c": {}}
        }})
    );
    let deduced = apply::owned_by(&config, MAIN, &TypeSource::deduced()).unwrap_or_default();
    assert_eq!(deduced.to_fields_v1()["f:spec"]["f:ports"], json!({}));
}

#[test]
fn duplicate_keys_in_a_config_are_refused() {
    let mut twice = deploy(1);
    twice["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]);
    assert!(matches!(
        apply_as(None, &twice, &opts("a")),
        Err(ApplyError::Invalid(m)) if m.contains("duplicate entries")
    ));
}

#[test]
fn managed_fields_survive_the_kind_codec_unchanged() {
    let created = update_as(None, deploy(3), "creator");
    let decoded = (info("Deployment").codec)(created.clone()).unwrap_or_default();
    assert_eq!(
        decoded["metadata"]["managedFields"],
        created["metadata"]["managedFields"]
    );
}

#[test]
fn update_entries_beyond_ten_merge_into_ancient_changes() {
    let mut obj = update_as(None, deploy(0), "creator");
    for i in 1..=12 {
        let mut next = obj.clone();
        next["metadata"]["labels"][format!("l{i}")] = json!("x");
        obj = update_as(Some(&obj), next, &format!("writer-{i:02}"));
    }
    let entries = managed::decode(&obj).ok().flatten().unwrap_or_default();
    assert_eq!(entries.len(), update::MAX_UPDATE_MANAGERS);
    let ancient = entries
        .iter()
        .find(|e| e.manager == update::ANCIENT_CHANGES)
        .map(|e| e.fields.to_fields_v1());
    // The oldest writers' fields live on in the bucket.
    let ancient = ancient.unwrap_or_else(|| panic!("no bucket in {entries:?}"));
    assert!(ancient["f:spec"].get("f:replicas").is_some(), "{ancient}");
    assert!(entries.iter().any(|e| e.manager == "writer-12"));
}

#[test]
fn an_unmanaged_object_is_owned_by_before_first_apply() {
    let mut bare = deploy(3);
    if let Some(m) = bare["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    let err = apply_as(Some(&bare), &deploy(4), &opts("kubectl"));
    let Err(ApplyError::Conflicts(c)) = err else {
        panic!("expected a conflict, got {err:?}");
    };
    assert_eq!(c[0].manager, "\"before-first-apply\" using apps/v1");
    // The same values are simply shared.
    let shared = applied(Some(&bare), &deploy(3), &opts("kubectl"));
    assert_eq!(
        managers(&shared),
        vec![
            ("kubectl".into(), Operation::Apply),
            ("before-first-apply".into(), Operation::Update)
        ]
    );
}

#[test]
fn kubectl_applies_keep_the_last_applied_annotation_in_step() {
    let annotation = lastapplied::ANNOTATION;
    let mut live = applied(None, &deploy(3), &opts("kubectl"));
    live["metadata"]["annotations"] = json!({annotation: "{\"old\":true}"});
    let after = applied(Some(&live), &deploy(3), &opts("kubectl"));
    let text = after["metadata"]["annotations"][annotation]
        .as_str()
        .unwrap_or_default();
    let recorded: Value = serde_json::from_str(text).unwrap_or_default();
    assert_eq!(recorded["spec"]["replicas"], 3);
    // Other managers, and objects without the annotation, are left alone.
    let other = applied(Some(&live), &deploy(3), &opts("other"));
    assert_eq!(
        other["metadata"]["annotations"][annotation],
        "{\"old\":true}"
    );
    let plain = applied(None, &deploy(3), &opts("kubectl"));
    assert!(plain["metadata"].get("annotations").is_none());
}

#[test]
fn applied_fields_the_object_does_not_hold_are_not_owned() {
    let mut config = deploy(3);
    config["spec"]["bogus"] = json!(1);
    let mut obj = applied(None, &config, &opts("a"));
    assert!(
        owned(&obj, "a", Operation::Apply)["f:spec"]
            .get("f:bogus")
            .is_some()
    );
    // Decoding drops the unknown field before the write.
    if let Some(spec) = obj["spec"].as_object_mut() {
        spec.remove("bogus");
    }
    let o = Options {
        applied: true,
        ..opts("a")
    };
    track(None, &mut obj, &o, MAIN, "apps/v1", &types("Deployment"));
    let fields = owned(&obj, "a", Operation::Apply);
    assert!(fields["f:spec"].get("f:bogus").is_none(), "{fields}");
    assert_eq!(fields["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"nginx\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
}

#[test]
fn merged_lists_follow_the_configuration_order() {
    let t = types("Pod");
    let pod = |fins: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": fins}});
    let merge = |live: Value, config: Value| {
        merge::merge(&pod(live), &pod(config), &t.root())["metadata"]["finalizers"].clone()
    };
    // New items go where the configuration puts them.
    assert_eq!(
        merge(json!(["a", "b"]), json!(["a", "x", "b"])),
        json!(["a", "x", "b"])
    );
    // Shared items take the configuration's order; others keep their place.
    assert_eq!(
        merge(json!(["a", "o", "b"]), json!(["b", "a"])),
        json!(["o", "b", "a"])
    );
    assert_eq!(
        merge(json!(["o", "a"]), json!(["z"])),
        json!(["o", "a", "z"])
    );
}

#[test]
fn unnamed_clients_are_recorded_and_server_writes_are_not() {
    let created = applied(None, &deploy(3), &opts("a"));
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(4);
    let mut by_server = scaled.clone();
    let internal = Options::default();
    track(
        Some(&created),
        &mut by_server,
        &internal,
        MAIN,
        "apps/v1",
        &types("Deployment"),
    );
    assert_eq!(managers(&by_server), vec![("a".into(), Operation::Apply)]);
    let by_unnamed = update_as(Some(&created), scaled, "");
    assert_eq!(
        owned(&by_unnamed, "", Operation::Update),
        json!({"f:spec": {"f:replicas": {}}})
    );
}
