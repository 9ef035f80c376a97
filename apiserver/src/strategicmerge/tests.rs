use serde_json::{Value, json};

use super::*;
use crate::registry::kinds;

fn info(kind: &str) -> ResourceInfo {
    kinds::all()
        .into_iter()
        .find(|i| i.kind == kind)
        .unwrap_or_else(|| panic!("{kind} is served"))
}

fn patch(kind: &str, original: Value, p: Value) -> Value {
    apply(&info(kind), &original, &p).unwrap_or_else(|e| panic!("patch failed: {e}"))
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "x:1",
                            "args": ["--a", "--b"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}]
                        },
                        {"name": "sidecar", "image": "s:1"}
                    ]
                }
            }
        }
    })
}

fn containers(obj: &Value) -> &Vec<Value> {
    obj["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
}

fn names(list: &[Value]) -> Vec<&str> {
    list.iter()
        .map(|c| c["name"].as_str().unwrap_or("?"))
        .collect()
}

#[test]
fn schema_walk_finds_patch_metadata_through_refs() {
    let schema = kind_schema(&info("Deployment"));
    let root = Node::new(&schema.defs, Some(&schema.root));
    assert_eq!(root.name, Some("io.k8s.api.apps.v1.Deployment"));
    let (spec, _) = root.field("spec");
    let (strategy, meta) = spec.field("strategy");
    assert_eq!(meta.strategy, "retainKeys");
    assert_eq!(strategy.name, Some("io.k8s.api.apps.v1.DeploymentStrategy"));
    let (template, _) = spec.field("template");
    let (pod_spec, _) = template.field("spec");
    let (list, meta) = pod_spec.field("containers");
    assert_eq!(
        meta,
        FieldMeta {
            strategy: "merge",
            merge_key: "name"
        }
    );
    let (_, env) = list.items().field("env");
    assert_eq!(env.merge_key, "name");
    let (_, vols) = pod_spec.field("volumes");
    assert!(vols.has("merge") && vols.has("retainKeys"));
    let (meta_node, _) = root.field("metadata");
    let (_, fin) = meta_node.field("finalizers");
    assert_eq!((fin.strategy, fin.merge_key), ("merge", ""));
    // Map values (labels) resolve through additionalProperties.
    let (labels, _) = meta_node.field("labels");
    assert!(labels.field("anything").0.schema.is_some());
}

#[test]
fn every_metadata_row_names_a_real_property() {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    for i in kinds::all() {
        (i.schema)(&mut generator);
    }
    let defs = generator.take_definitions(true);
    let mut missing_defs = Vec::new();
    for (def, prop, strategy, _) in metadata::PATCH_METADATA {
        assert!(
            strategy
                .split(',')
                .all(|s| ["merge", "retainKeys", "replace"].contains(&s)),
            "{def}.{prop}: {strategy}"
        );
        match defs.get(*def) {
            Some(d) => assert!(
                d["properties"].get(*prop).is_some(),
                "{def} has no property {prop}"
            ),
            None => missing_defs.push(*def),
        }
    }
    // Only kinds the server does not serve may be absent.
    for d in &missing_defs {
        assert!(
            [
                "io.k8s.api.core.v1.ComponentStatus",
                "io.k8s.api.storage.v1.CSINodeSpec"
            ]
            .contains(d),
            "definition {d} not generated"
        );
    }
}

#[test]
fn set_image_patch_changes_only_the_named_container() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"x:2"}]}}}}),
    );
    let c = containers(&out);
    assert_eq!(names(c), ["app", "sidecar"]);
    assert_eq!(c[0]["image"], "x:2");
    assert_eq!(
        c[0]["env"],
        deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(c[1], json!({"name": "sidecar", "image": "s:1"}));
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn rollout_restart_annotation_keeps_containers() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-01-01T00:00:00Z"}}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["metadata"],
        json!({"labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}})
    );
    assert_eq!(containers(&out), containers(&deployment()));
}

#[test]
fn env_merges_by_name_and_patch_delete_removes_one_var() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","env":[
            {"name":"B","value":"two"},
            {"name":"A","$patch":"delete"},
            {"name":"C","value":"3"}
        ]}]}}}}),
    );
    let env = &containers(&out)[0]["env"];
    // Patch items keep the patch's order (upstream's normalizeElementOrder).
    assert_eq!(
        env,
        &json!([{"name":"B","value":"two"},{"name":"C","value":"3"}])
    );
    assert_eq!(containers(&out)[0]["image"], "x:1");
}

#[test]
fn ports_merge_by_numeric_container_port() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","ports":[{"containerPort":80,"name":"http"}]}]}}}}),
    );
    assert_eq!(
        containers(&out)[0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
    );
}

#[test]
fn set_element_order_orders_the_merged_containers() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"sidecar"},{"name":"new"},{"name":"app"}],
            "containers":[{"name":"new","image":"n:1"}]
        }}}}),
    );
    let c = containers(&out);
    assert_eq!(names(c), ["sidecar", "new", "app"]);
    assert_eq!(c[1], json!({"name": "new", "image": "n:1"}));
    assert!(
        out["spec"]["template"]["spec"]
            .get("$setElementOrder/containers")
            .is_none()
    );
}

#[test]
fn set_element_order_without_list_in_patch_only_reorders() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"sidecar"},{"name":"app"}]
        }}}}),
    );
    assert_eq!(names(containers(&out)), ["sidecar", "app"]);
    assert_eq!(containers(&out)[1]["image"], "x:1");
}

#[test]
fn set_element_order_disagreeing_with_patch_list_is_an_error() {
    let err = apply(
        &info("Deployment"),
        &deployment(),
        &json!({"spec":{"template":{"spec":{
            "$setElementOrder/containers":[{"name":"app"},{"name":"sidecar"}],
            "containers":[{"name":"sidecar","image":"s:2"},{"name":"app","image":"x:2"}]
        }}}}),
    );
    assert!(err.is_err());
}

#[test]
fn new_items_without_order_directive_go_first_as_upstream() {
    // Upstream's mergeSortedSlice puts patch items not in the live list
    // before the server-only items.
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"new","image":"n:1"}]}}}}),
    );
    assert_eq!(names(containers(&out)), ["new", "app", "sidecar"]);
}

#[test]
fn kubectl_apply_reapply_patch_gives_expected_object() {
    let last = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"annotations":{},"name":"web","namespace":"default"},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"x:2","name":"app"},{"image":"s:1","name":"sidecar"}]}}}}"#;
    let mut live = deployment();
    live["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}", "other": "keep"});
    live["spec"]["template"]["spec"]["containers"][1]["command"] = json!(["run"]);
    // What kubectl apply computes after the user bumped replicas and the
    // image and dropped the sidecar's command from the manifest.
    let p = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last}},
        "spec": {
            "replicas": 3,
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                "containers": [
                    {"image": "x:2", "name": "app"},
                    {"command": null, "name": "sidecar"}
                ]
            }}
        }
    });
    let out = patch("Deployment", live, p);
    let mut expected = deployment();
    expected["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": last, "other": "keep"});
    expected["spec"]["replicas"] = json!(3);
    expected["spec"]["template"]["spec"]["containers"][0]["image"] = json!("x:2");
    assert_eq!(out, expected);
}

#[test]
fn finalizers_union_and_delete_from_primitive_list() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"metadata":{"finalizers":["b","c"]}}),
    );
    // "b" (live and patch) keeps its place relative to "a"; "c" is new.
    let fin = out["metadata"]["finalizers"].as_array().unwrap().clone();
    assert_eq!(fin.len(), 3);
    for f in ["a", "b", "c"] {
        assert!(fin.contains(&json!(f)));
    }
    let out = patch(
        "Deployment",
        out,
        json!({"metadata":{"$deleteFromPrimitiveList/finalizers":["a","zzz"]}}),
    );
    let fin = out["metadata"]["finalizers"].as_array().unwrap();
    assert_eq!(fin.len(), 2);
    assert!(!fin.contains(&json!("a")));
    assert!(
        out["metadata"]
            .get("$deleteFromPrimitiveList/finalizers")
            .is_none()
    );
}

#[test]
fn finalizers_ordered_by_set_element_order() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"metadata":{
            "$setElementOrder/finalizers":["b","c"],
            "finalizers":["c"],
            "$deleteFromPrimitiveList/finalizers":["a"]
        }}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c"]));
}

#[test]
fn retain_keys_switching_to_recreate_drops_rolling_update() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn retain_keys_on_volume_source_switches_source() {
    let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{
        "containers":[{"name":"c","image":"i"}],
        "volumes":[{"name":"v","emptyDir":{}},{"name":"w","secret":{"secretName":"s"}}]
    }});
    let out = patch(
        "Pod",
        pod,
        json!({"spec":{"volumes":[{"$retainKeys":["configMap","name"],"name":"v","configMap":{"name":"cm"}}]}}),
    );
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name":"v","configMap":{"name":"cm"}},{"name":"w","secret":{"secretName":"s"}}])
    );
}

#[test]
fn list_without_strategy_is_replaced() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","args":["--c"]}]}}}}),
    );
    assert_eq!(containers(&out)[0]["args"], json!(["--c"]));
}

#[test]
fn patch_replace_in_list_replaces_whole_list() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"template":{"spec":{"containers":[{"$patch":"replace"},{"name":"only","image":"o:1"}]}}}}),
    );
    assert_eq!(
        containers(&out),
        &vec![json!({"name":"only","image":"o:1"})]
    );
}

#[test]
fn patch_replace_and_delete_on_maps() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"selector":{"$patch":"replace","matchLabels":{"tier":"x"}}}}),
    );
    assert_eq!(
        out["spec"]["selector"],
        json!({"matchLabels": {"tier": "x"}})
    );
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"strategy":{"$patch":"delete"}}}),
    );
    assert!(out["spec"].get("strategy").is_none());
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn null_deletes_keys_and_maps_merge() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"metadata":{"labels":{"x":"y"}},"spec":{"replicas":null,"new":{"a":null,"b":1}}}),
    );
    assert!(out["spec"].get("replicas").is_none());
    assert_eq!(out["metadata"]["labels"], json!({"x": "y"}));
    assert_eq!(out["spec"]["new"], json!({"b": 1}));
}

#[test]
fn cordon_sets_unschedulable_on_node() {
    let node = json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},
        "spec":{"podCIDR":"10.0.0.0/24","podCIDRs":["10.0.0.0/24"],"taints":[{"key":"k","effect":"NoSchedule"}]}});
    let out = patch("Node", node.clone(), json!({"spec":{"unschedulable":true}}));
    let mut expected = node;
    expected["spec"]["unschedulable"] = json!(true);
    assert_eq!(out, expected);
}

#[test]
fn node_taints_have_no_strategy_and_are_replaced() {
    let node = json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"n1"},
        "spec":{"taints":[{"key":"k","effect":"NoSchedule"}]}});
    let out = patch(
        "Node",
        node,
        json!({"spec":{"taints":[{"key":"j","effect":"NoExecute"}]}}),
    );
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key":"j","effect":"NoExecute"}])
    );
}

#[test]
fn status_conditions_merge_by_type() {
    let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
        "status":{"conditions":[{"type":"Ready","status":"False"},{"type":"Initialized","status":"True"}]}});
    let out = patch(
        "Pod",
        pod,
        json!({"status":{"conditions":[{"type":"Ready","status":"True"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type":"Ready","status":"True"},{"type":"Initialized","status":"True"}])
    );
}

#[test]
fn service_ports_merge_by_port() {
    let svc = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
        "spec":{"ports":[{"port":80,"targetPort":8080},{"port":443}]}});
    let out = patch(
        "Service",
        svc,
        json!({"spec":{"ports":[{"port":80,"targetPort":9090}]}}),
    );
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port":80,"targetPort":9090},{"port":443}])
    );
}

#[test]
fn malformed_patches_are_errors_not_panics() {
    let d = info("Deployment");
    let bad = [
        json!([1, 2]),
        json!("string"),
        json!(null),
        json!({"$patch": "explode"}),
        json!({"spec": {"$patch": 7}}),
        json!({"spec":{"template":{"spec":{"containers":[{"image":"no-name"}]}}}}),
        json!({"spec":{"template":{"spec":{"containers":[{"$patch":"delete"}]}}}}),
        json!({"spec":{"template":{"spec":{"containers":[{"name":"app","$patch":"merge"}]}}}}),
        json!({"spec":{"template":{"spec":{"containers":["app"]}}}}),
        json!({"spec":{"strategy":{"$retainKeys":"type"}}}),
        json!({"spec":{"strategy":{"$retainKeys":[1]}}}),
        json!({"spec":{"template":{"spec":{"$setElementOrder/containers":{"name":"app"}}}}}),
        json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"nom":"app"}],"containers":[{"name":"app"}]}}}}),
        json!({"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}}),
        json!({"metadata":{"finalizers":[{"a":1}]}}),
    ];
    for p in bad {
        assert!(apply(&d, &deployment(), &p).is_err(), "accepted {p}");
    }
    // Odd but well-formed inputs are accepted without panicking.
    let odd = [
        json!({}),
        json!({"spec": 5}),
        json!({"spec":{"template":{"spec":{"containers":{"name":"x"}}}}}),
        json!({"spec":{"template":{"spec":{"$setElementOrder/nothing":[]}}}}),
        json!({"unknown":{"deep":[{"$patch":"delete"},{"a":[[1],[2]]}]}}),
    ];
    for p in odd {
        assert!(apply(&d, &deployment(), &p).is_ok(), "refused {p}");
    }
    // Deep nesting is refused, not a stack overflow.
    let mut deep = json!(1);
    for _ in 0..1000 {
        deep = json!({ "a": deep });
    }
    assert!(apply(&d, &deployment(), &deep).is_err());
    assert!(apply(&d, &json!(3), &json!({})).is_err());
}

#[test]
fn directives_never_reach_the_result() {
    let out = patch(
        "Deployment",
        deployment(),
        json!({"spec":{"brandNew":{"$patch":"replace","x":{"$retainKeys":["y"],"y":1}},
            "template":{"spec":{"volumes":[{"name":"v","$retainKeys":["name","emptyDir"],"emptyDir":{}}]}}}}),
    );
    let text = out.to_string();
    assert!(!text.contains('$'), "{text}");
    assert_eq!(out["spec"]["brandNew"], json!({"x": {"y": 1}}));
}

#[test]
fn reapply_removing_an_env_var_deletes_it() {
    let info = info("Deployment");
    let original = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "app:1", "env": [{"name": "MODE", "value": "fast"}, {"name": "DEBUG", "value": "1"}]},
        {"name": "sidecar", "image": "proxy:1"}]}}}});
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"$setElementOrder/env": [{"name": "MODE"}], "env": [{"$patch": "delete", "name": "DEBUG"}], "image": "app:2", "name": "app"}]}}}});
    let out = apply(&info, &original, &patch).unwrap_or_default();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "MODE", "value": "fast"}])
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["image"],
        "app:2"
    );
}
