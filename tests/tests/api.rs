//! The API's semantics through an independent client (the `kube` crate) and
//! raw HTTP: conflicts, selectors, paging, watch resumption and expiry,
//! subresources, authentication, error bodies and admission (pod priority).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use capstan_tests::fixture::ControlPlane;
use capstan_tests::wait;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::{Value, json};

fn configmap(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap_or_default()
}

/// A one-container pod with `labels` and extra `spec` fields.
fn pod(name: &str, labels: Value, spec: Value) -> Result<Pod> {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "x"}]);
    Ok(serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "spec": spec}),
    )?)
}

fn api_error(e: &kube::Error) -> Option<(u16, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.reason.clone())),
        _ => None,
    }
}

/// The status code and message of an API error.
fn api_message(e: &kube::Error) -> Option<(u16, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.message.clone())),
        _ => None,
    }
}

fn priority_class(name: &str, value: i32, extra: Value) -> Result<PriorityClass> {
    let mut pc = extra;
    pc["metadata"] = json!({"name": name});
    pc["value"] = json!(value);
    Ok(serde_json::from_value(pc)?)
}

/// A created pod's `spec.priorityClassName`, `spec.priority` and
/// `spec.preemptionPolicy`.
fn priority_of(pod: &Pod) -> (Option<String>, Option<i32>, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    (
        spec.priority_class_name,
        spec.priority,
        spec.preemption_policy,
    )
}

async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, Value)> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(kube::client::Body::from(body))?;
    let resp = client.send(req).await?;
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await?;
    Ok((code, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

#[tokio::test]
async fn stale_update_is_a_409_conflict() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let cms: Api<ConfigMap> = Api::namespaced(cp.client().await?, "default");
    let created = cms
        .create(&PostParams::default(), &configmap("c", &[]))
        .await?;
    let mut first = created.clone();
    first.data = Some(BTreeMap::from([("k".into(), "first".into())]));
    cms.replace("c", &PostParams::default(), &first).await?;
    let mut stale = created;
    stale.data = Some(BTreeMap::from([("k".into(), "stale".into())]));
    let err = cms
        .replace("c", &PostParams::default(), &stale)
        .await
        .err()
        .context("stale write must fail")?;
    assert_eq!(api_error(&err), Some((409, "Conflict".into())));
    assert_eq!(
        cms.get("c").await?.data.and_then(|d| d.get("k").cloned()),
        Some("first".into())
    );
    Ok(())
}

#[tokio::test]
async fn label_and_field_selectors_and_consistent_paging() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let cms: Api<ConfigMap> = Api::namespaced(cp.client().await?, "default");
    for i in 0..25 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        cms.create(
            &PostParams::default(),
            &configmap(
                &format!("cm-{i:02}"),
                &[("tier", tier), ("n", &i.to_string())],
            ),
        )
        .await?;
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("tier=front"))
                .await?
        )
        .len(),
        13
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("tier!=front,n in (1,3,4)"))
                .await?
        ),
        ["cm-01", "cm-03"]
    );
    assert_eq!(
        names(cms.list(&ListParams::default().labels("!tier")).await?).len(),
        0
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=cm-07"))
                .await?
        ),
        ["cm-07"]
    );
    let err = cms
        .list(&ListParams::default().fields("spec.nodeName=x"))
        .await
        .err()
        .context("unsupported field")?;
    assert_eq!(api_error(&err).map(|e| e.0), Some(400));

    // Pages of 10 from one snapshot: an object created mid-way is not seen.
    let first = cms.list(&ListParams::default().limit(10)).await?;
    let token = first
        .metadata
        .continue_
        .clone()
        .context("a continue token")?;
    cms.create(&PostParams::default(), &configmap("cm-00a", &[]))
        .await?;
    let second = cms
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await?;
    let third = cms
        .list(
            &ListParams::default().limit(10).continue_token(
                second
                    .metadata
                    .continue_
                    .as_deref()
                    .context("second token")?,
            ),
        )
        .await?;
    assert!(third.metadata.continue_.as_deref().unwrap_or("").is_empty());
    let mut all = names(first);
    all.extend(names(second));
    all.extend(names(third));
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(all, expected);
    Ok(())
}

#[tokio::test]
async fn watch_resumes_from_its_last_version_after_an_apiserver_restart() -> Result<()> {
    let mut cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let start = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("list rv")?;
    let mut stream = cms.watch(&WatchParams::default(), &start).await?.boxed();
    cms.create(&PostParams::default(), &configmap("a", &[]))
        .await?;
    let last = match tokio::time::timeout(Duration::from_secs(20), stream.try_next()).await?? {
        Some(WatchEvent::Added(cm)) => cm.metadata.resource_version.context("rv")?,
        other => anyhow::bail!("expected ADDED, got {other:?}"),
    };
    drop(stream);
    // Changes the watcher has not seen, and a newer revision elsewhere.
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "s"}}))?,
        )
        .await?;
    cp.restart_apiserver().await?;

    let cms: Api<ConfigMap> = Api::namespaced(cp.client().await?, "default");
    let mut stream = cms.watch(&WatchParams::default(), &last).await?.boxed();
    cms.create(&PostParams::default(), &configmap("b", &[]))
        .await?;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(20), stream.try_next()).await?? {
            Some(WatchEvent::Added(cm)) => {
                seen.push(format!("ADDED {}", cm.metadata.name.unwrap_or_default()))
            }
            Some(WatchEvent::Modified(cm)) => seen.push(format!(
                "MODIFIED {} {}",
                cm.metadata.name.unwrap_or_default(),
                cm.data
                    .and_then(|d| d.get("k").cloned())
                    .unwrap_or_default()
            )),
            Some(WatchEvent::Bookmark(_)) => {}
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["MODIFIED a changed", "ADDED b"]);
    Ok(())
}

#[tokio::test]
async fn compacted_versions_answer_410_gone() -> Result<()> {
    let cp = ControlPlane::start(&["--etcd-compaction-interval=1s"]).await?;
    let client = cp.client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &configmap("c", &[]))
        .await?;
    let old = created.metadata.resource_version.context("rv")?;
    for i in 0..3 {
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": i.to_string()}})),
        )
        .await?;
    }
    // Once compaction has passed `old`, a watch from it ends with 410.
    let status = wait::until(
        "a watch from a compacted version to expire",
        Duration::from_secs(60),
        || {
            let cms = cms.clone();
            let old = old.clone();
            async move {
                let mut stream = cms.watch(&WatchParams::default(), &old).await.ok()?.boxed();
                match tokio::time::timeout(Duration::from_secs(5), stream.next())
                    .await
                    .ok()??
                {
                    Ok(WatchEvent::Error(s)) => Some(s),
                    _ => None,
                }
            }
        },
    )
    .await?;
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    let (code, body) = raw(
        &client,
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?resourceVersion={old}&resourceVersionMatch=Exact"
        ),
        "application/json",
        vec![],
    )
    .await?;
    assert_eq!((code, body["reason"].as_str()), (410, Some("Expired")));
    Ok(())
}

#[tokio::test]
async fn status_and_spec_are_written_through_separate_doors() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let deploys: Api<Deployment> = Api::namespaced(cp.client().await?, "default");
    let d: Deployment = serde_json::from_value(
        json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}, "status": {"replicas": 9}}),
    )?;
    let created = deploys.create(&PostParams::default(), &d).await?;
    assert_eq!(
        created.status.and_then(|s| s.replicas),
        None,
        "create drops status"
    );
    let pp = PatchParams::default();
    let main = deploys
        .patch("d", &pp, &Patch::Merge(json!({"status": {"replicas": 4}})))
        .await?;
    assert_eq!(
        main.status.and_then(|s| s.replicas),
        None,
        "the main resource ignores status"
    );
    let status = deploys
        .patch_status(
            "d",
            &pp,
            &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"replicas": 4}})),
        )
        .await?;
    assert_eq!(status.status.and_then(|s| s.replicas), Some(4));
    assert_eq!(
        status.spec.and_then(|s| s.replicas),
        Some(1),
        "the status subresource ignores spec"
    );
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    Ok(())
}

#[tokio::test]
async fn a_pod_is_bound_to_a_node_once() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("p", json!({}), json!({}))?)
        .await?;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}});
    let path = "/api/v1/namespaces/default/pods/p/binding";
    let (code, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        serde_json::to_vec(&binding)?,
    )
    .await?;
    assert_eq!(code, 201);
    let pod = pods.get("p").await?;
    assert_eq!(pod.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
    let scheduled = pod
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled");
    assert_eq!(scheduled.map(|c| c.status).as_deref(), Some("True"));
    let (code, body) = raw(
        &client,
        "POST",
        path,
        "application/json",
        serde_json::to_vec(&binding)?,
    )
    .await?;
    assert_eq!((code, body["reason"].as_str()), (409, Some("Conflict")));
    Ok(())
}

#[tokio::test]
async fn requests_without_a_client_certificate_are_unauthorized() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let anonymous = cp.anonymous_client().await?;
    let (code, body) = raw(
        &anonymous,
        "GET",
        "/api/v1/namespaces",
        "application/json",
        vec![],
    )
    .await?;
    assert_eq!(
        (code, body["kind"].as_str(), body["reason"].as_str()),
        (401, Some("Status"), Some("Unauthorized"))
    );
    let req = http::Request::get("/healthz").body(kube::client::Body::from(Vec::new()))?;
    let resp = anonymous.send(req).await?;
    assert_eq!(resp.status().as_u16(), 200);
    let version: Value = anonymous
        .request(http::Request::get("/version").body(Vec::new())?)
        .await?;
    assert_eq!(version["major"], "1");
    Ok(())
}

/// method, path, content type, body, expected code, expected reason.
type ErrorCase<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);

#[tokio::test]
async fn every_error_is_a_status_body_with_the_right_code() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let cms = "/api/v1/namespaces/default/configmaps";
    let cases: Vec<ErrorCase> = vec![
        (
            "GET",
            "/api/v1/nothing-here",
            "application/json",
            vec![],
            404,
            "NotFound",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps/absent",
            "application/json",
            vec![],
            404,
            "NotFound",
        ),
        (
            "POST",
            cms,
            "application/json",
            b"{not json".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            cms,
            "text/plain",
            b"x".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            cms,
            "application/json",
            vec![b' '; 4 * 1024 * 1024],
            413,
            "RequestEntityTooLarge",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps/named",
            "application/json",
            b"{}".to_vec(),
            405,
            "MethodNotAllowed",
        ),
        (
            "POST",
            cms,
            "application/json",
            br#"{"metadata":{"name":"x"},"data":{"bad key":"v"}}"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "POST",
            cms,
            "application/json",
            br#"{"metadata":{"name":"x"},"data":"not a map"}"#.to_vec(),
            400,
            "BadRequest",
        ),
    ];
    for (method, path, ct, body, code, reason) in cases {
        let (got, status) = raw(&client, method, path, ct, body).await?;
        assert_eq!(
            (got, status["kind"].as_str(), status["reason"].as_str()),
            (code, Some("Status"), Some(reason)),
            "{method} {path}"
        );
    }
    let c: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    c.create(&PostParams::default(), &configmap("dup", &[]))
        .await?;
    let err = c
        .create(&PostParams::default(), &configmap("dup", &[]))
        .await
        .err()
        .context("duplicate")?;
    assert_eq!(api_error(&err), Some((409, "AlreadyExists".into())));
    // The metrics count what was asked, by verb, resource and code.
    let metrics = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("apiserver_request_total")
                && l.contains("resource=\"configmaps\"")
                && l.contains("code=\"409\"")),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test]
async fn lists_larger_than_a_grpc_message_are_served() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let cms: Api<ConfigMap> = Api::namespaced(cp.client().await?, "default");
    let big = "x".repeat(900 * 1024);
    for i in 0..6 {
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("big-{i}")}, "data": {"blob": big}}),
        )?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    // More than etcd-client's default 4 MiB response limit, from storage
    // and from the watch cache.
    assert_eq!(cms.list(&ListParams::default()).await?.items.len(), 6);
    assert_eq!(
        cms.list(&ListParams::default().match_any())
            .await?
            .items
            .len(),
        6
    );
    Ok(())
}

#[tokio::test]
async fn protobuf_is_answered_when_a_client_prefers_it() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("proto", &[("a", "b")]))
        .await?;
    for path in [
        "/api/v1/namespaces/default/configmaps/proto",
        "/api/v1/namespaces/default/configmaps",
    ] {
        let req = http::Request::get(path)
            .header(
                "Accept",
                "application/vnd.kubernetes.protobuf, application/json",
            )
            .body(kube::client::Body::from(Vec::new()))?;
        let resp = client.send(req).await?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp.into_body().collect_bytes().await?;
        assert_eq!(
            content_type, "application/vnd.kubernetes.protobuf",
            "{path}"
        );
        assert!(body.starts_with(b"k8s\0"), "{path}: the protobuf envelope");
        assert!(
            body.windows(5).any(|w| w == b"proto"),
            "{path}: carries the object"
        );
    }
    Ok(())
}

#[tokio::test]
async fn many_watchers_share_one_etcd_watch_per_resource() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let before = cp.etcd.metric("etcd_debugging_mvcc_watcher_total").await?;
    let cms: Api<ConfigMap> = Api::namespaced(cp.client().await?, "default");
    let mut streams = Vec::new();
    for _ in 0..200 {
        streams.push(cms.watch(&WatchParams::default(), "0").await?.boxed());
    }
    cms.create(&PostParams::default(), &configmap("seen-by-all", &[]))
        .await?;
    for s in &mut streams {
        match tokio::time::timeout(Duration::from_secs(20), s.try_next()).await?? {
            Some(WatchEvent::Added(cm)) => {
                assert_eq!(cm.metadata.name.as_deref(), Some("seen-by-all"))
            }
            other => anyhow::bail!("expected ADDED, got {other:?}"),
        }
    }
    let after = cp.etcd.metric("etcd_debugging_mvcc_watcher_total").await?;
    assert_eq!(before, after, "200 API watchers add no etcd watcher");
    Ok(())
}

#[tokio::test]
async fn readyz_follows_etcd() -> Result<()> {
    let mut cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let readyz = |client: kube::Client| async move {
        let req = http::Request::get("/readyz")
            .body(kube::client::Body::from(Vec::new()))
            .ok()?;
        Some(client.send(req).await.ok()?.status().as_u16())
    };
    assert_eq!(readyz(client.clone()).await, Some(200));
    cp.etcd.stop();
    wait::until(
        "readyz to fail without etcd",
        Duration::from_secs(60),
        || {
            let client = client.clone();
            async move { (readyz(client).await? >= 500).then_some(()) }
        },
    )
    .await?;
    let req = http::Request::get("/livez").body(kube::client::Body::from(Vec::new()))?;
    assert_eq!(
        client.send(req).await?.status().as_u16(),
        200,
        "the process itself is live"
    );
    Ok(())
}

#[tokio::test]
async fn refusals_that_protect_the_cluster() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    // A UID precondition that can never hold fails at once (no retry loop).
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("c", &[]))
        .await?;
    let patched = tokio::time::timeout(
        Duration::from_secs(10),
        cms.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"uid": "bogus"}})),
        ),
    )
    .await?;
    assert_eq!(
        patched.err().as_ref().and_then(api_error),
        Some((409, "Conflict".into()))
    );
    // System namespaces cannot be deleted.
    let err = cp.kubectl_err(&["delete", "namespace", "kube-system"])?;
    assert!(err.contains("this namespace may not be deleted"), "{err}");
    // Writes across all namespaces are not routes.
    let (code, _) = raw(
        &client,
        "DELETE",
        "/api/v1/configmaps",
        "application/json",
        vec![],
    )
    .await?;
    assert_eq!(code, 405);
    assert_eq!(
        cms.list(&ListParams::default()).await?.items.len(),
        1,
        "nothing deleted"
    );
    // The namespace identity label is always the name.
    cp.kubectl(&["apply", "-f", &cp.write("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: evil, labels: {kubernetes.io/metadata.name: kube-system}}\n")?])?;
    assert_eq!(
        cp.kubectl(&[
            "get",
            "ns",
            "evil",
            "-o",
            "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}"
        ])?,
        "evil"
    );
    // An absurd grace period is clamped, not a crash of the connection.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &pod("p", json!({}), json!({"nodeName": "n1"}))?,
    )
    .await?;
    let (code, body) = raw(
        &client,
        "DELETE",
        &format!(
            "/api/v1/namespaces/default/pods/p?gracePeriodSeconds={}",
            i64::MAX
        ),
        "application/json",
        vec![],
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["metadata"]["deletionTimestamp"].as_str().is_some(),
        "{body}"
    );
    assert_eq!(
        cms.get("c").await?.metadata.name.as_deref(),
        Some("c"),
        "the connection still serves"
    );
    Ok(())
}

#[tokio::test]
async fn events_from_either_api_are_one_and_show_in_describe() -> Result<()> {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .create(&PostParams::default(), &pod("p", json!({}), json!({}))?)
        .await?;
    let uid = pod.metadata.uid.context("uid")?;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let mut watch = events.watch(&WatchParams::default(), "0").await?.boxed();
    let recorded: Event = serde_json::from_value(json!({
        "metadata": {"name": "p.1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Pod", "name": "p", "namespace": "default", "uid": uid, "apiVersion": "v1"},
        "reason": "FailedScheduling", "note": "0/3 nodes are available: 3 Insufficient cpu.",
        "type": "Warning", "action": "Scheduling", "reportingController": "capstan-scheduler", "reportingInstance": "s1"
    }))?;
    events.create(&PostParams::default(), &recorded).await?;
    // The core API sees the same event in its own shape...
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let seen = core.get("p.1").await?;
    assert_eq!(
        seen.message.as_deref(),
        Some("0/3 nodes are available: 3 Insufficient cpu.")
    );
    assert_eq!(seen.involved_object.name.as_deref(), Some("p"));
    let described = cp.kubectl(&["describe", "pod", "p"])?;
    assert!(
        described.contains("FailedScheduling") && described.contains("Insufficient cpu"),
        "{described}"
    );
    // ...and the events.k8s.io watcher sees it in the events.k8s.io shape.
    match tokio::time::timeout(Duration::from_secs(20), watch.try_next()).await?? {
        Some(WatchEvent::Added(e)) => assert_eq!(
            e.note.as_deref(),
            Some("0/3 nodes are available: 3 Insufficient cpu.")
        ),
        other => anyhow::bail!("expected ADDED, got {other:?}"),
    }
    assert_eq!(events.list(&ListParams::default()).await?.items.len(), 1);
    let table = cp.kubectl(&["get", "events"])?;
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{table}"
    );
    assert!(
        table.contains("Warning")
            && table.contains("FailedScheduling")
            && table.contains("pod/p")
            && table.contains("Insufficient cpu"),
        "{table}"
    );
    Ok(())
}

#[tokio::test]
async fn evictions_respect_pod_disruption_budgets() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, app) in [("guarded", "db"), ("free", "web")] {
        pods.create(
            &PostParams::default(),
            &pod(name, json!({"app": app}), json!({}))?,
        )
        .await?;
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await?;
    }
    cp.kubectl(&["create", "-f", &cp.write("pdb.yaml", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: db}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: db}}\n")?])?;
    let evict = |name: &str| {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}});
        let path = format!("/api/v1/namespaces/default/pods/{name}/eviction");
        let client = client.clone();
        async move {
            raw(
                &client,
                "POST",
                &path,
                "application/json",
                serde_json::to_vec(&body)?,
            )
            .await
        }
    };
    let (code, body) = evict("guarded").await?;
    assert_eq!(
        (code, body["reason"].as_str()),
        (429, Some("TooManyRequests")),
        "{body}"
    );
    assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert!(pods.get("guarded").await.is_ok(), "the guarded pod stays");
    let (code, _) = evict("free").await?;
    assert_eq!(code, 201);
    assert!(
        pods.get("free").await.is_err(),
        "a pod no budget covers is evicted"
    );
    // Once the budget allows one disruption, exactly one eviction passes.
    let budgets: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(client.clone(), "default");
    budgets.patch_status("db", &PatchParams::default(), &Patch::Merge(json!({"status": {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}}))).await?;
    let (code, _) = evict("guarded").await?;
    assert_eq!(code, 201);
    let pdb = budgets.get("db").await?;
    assert_eq!(pdb.status.map(|s| s.disruptions_allowed), Some(0));
    Ok(())
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &configmap(name, &[("keep", "yes")]))
            .await?;
    }
    cms.create(&PostParams::default(), &configmap("other", &[]))
        .await?;
    let req = http::Request::get("/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&labelSelector=keep%3Dyes")
        .body(Vec::new())?;
    let mut events = client.request_events::<ConfigMap>(req).await?.boxed();
    let mut added = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), events.try_next()).await?? {
            Some(WatchEvent::Added(cm)) => added.push(cm.metadata.name.unwrap_or_default()),
            Some(WatchEvent::Bookmark(b)) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                assert!(!b.metadata.resource_version.is_empty());
                break;
            }
            other => anyhow::bail!("unexpected {other:?}"),
        }
    }
    added.sort();
    assert_eq!(added, ["a", "b"], "the selected objects, then the bookmark");
    Ok(())
}

#[tokio::test]
async fn a_client_that_never_completes_tls_is_disconnected() -> Result<()> {
    use tokio::io::AsyncReadExt;
    let cp = ControlPlane::start(&[]).await?;
    let addr = cp.apiserver.url.trim_start_matches("https://").to_string();
    let mut idle = tokio::net::TcpStream::connect(&addr).await?;
    // The server gives up on the handshake (after 10 s) and closes the
    // connection: the read ends with EOF or a reset, well before 60 s.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(60), idle.read(&mut buf)).await?;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    Ok(())
}

#[tokio::test]
async fn pods_take_priority_and_preemption_policy_from_their_class() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pp = PostParams::default();
    classes
        .create(
            &pp,
            &priority_class("high", 1000, json!({"preemptionPolicy": "Never"}))?,
        )
        .await?;
    classes
        .create(&pp, &priority_class("low", 10, json!({}))?)
        .await?;
    let high = pods
        .create(
            &pp,
            &pod("high", json!({}), json!({"priorityClassName": "high"}))?,
        )
        .await?;
    assert_eq!(
        priority_of(&high),
        (Some("high".into()), Some(1000), Some("Never".into()))
    );
    let low = pods
        .create(
            &pp,
            &pod("low", json!({}), json!({"priorityClassName": "low"}))?,
        )
        .await?;
    assert_eq!(
        priority_of(&low),
        (
            Some("low".into()),
            Some(10),
            Some("PreemptLowerPriority".into())
        ),
        "a class without a policy preempts lower priorities"
    );
    let plain = pods
        .create(&pp, &pod("plain", json!({}), json!({}))?)
        .await?;
    assert_eq!(
        priority_of(&plain),
        (None, Some(0), Some("PreemptLowerPriority".into())),
        "no class and no default: priority 0"
    );
    // An unknown class, or a priority the class does not give, is refused.
    let unknown = pods
        .create(
            &pp,
            &pod("u", json!({}), json!({"priorityClassName": "nope"}))?,
        )
        .await
        .err()
        .context("an unknown class must be refused")?;
    assert_eq!(
        api_message(&unknown),
        Some((
            403,
            "pods \"u\" is forbidden: no PriorityClass with name nope was found".into()
        ))
    );
    let forged = pods
        .create(
            &pp,
            &pod(
                "f",
                json!({}),
                json!({"priorityClassName": "low", "priority": 5000}),
            )?,
        )
        .await
        .err()
        .context("a forged priority must be refused")?;
    assert_eq!(
        api_message(&forged),
        Some((403, "pods \"f\" is forbidden: the integer value of priority (5000) must not be provided in pod spec; priority admission controller computed 10 from the given PriorityClass name".into()))
    );
    assert!(pods.get_opt("u").await?.is_none() && pods.get_opt("f").await?.is_none());
    // A replace that leaves the priority out keeps it; changing it is refused.
    let mut replaced = high.clone();
    if let Some(spec) = replaced.spec.as_mut() {
        spec.priority = None;
        spec.preemption_policy = None;
        spec.containers[0].image = Some("y".into());
    }
    let replaced = pods.replace("high", &pp, &replaced).await?;
    assert_eq!(
        priority_of(&replaced),
        (Some("high".into()), Some(1000), Some("Never".into()))
    );
    let changed = pods
        .patch(
            "high",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"priority": 1}})),
        )
        .await
        .err()
        .context("priority is immutable")?;
    assert_eq!(api_error(&changed), Some((422, "Invalid".into())));
    // A class's value and policy are immutable; users may not outrank the system.
    let err = classes
        .patch(
            "high",
            &PatchParams::default(),
            &Patch::Merge(json!({"value": 1})),
        )
        .await
        .err()
        .context("value is immutable")?;
    assert_eq!(api_error(&err), Some((422, "Invalid".into())));
    let err = classes
        .create(&pp, &priority_class("top", 1_000_000_001, json!({}))?)
        .await
        .err()
        .context("too high for a user class")?;
    assert_eq!(api_error(&err), Some((422, "Invalid".into())));
    Ok(())
}

#[tokio::test]
async fn the_global_default_priority_class_applies_and_is_the_only_one() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pp = PostParams::default();
    classes
        .create(
            &pp,
            &priority_class("everyone", 100, json!({"globalDefault": true}))?,
        )
        .await?;
    // Admission reads classes from the watch cache, as upstream reads its
    // informer: wait until a cached list (resourceVersion=0) shows it.
    wait::until(
        "the default class in the cache",
        Duration::from_secs(10),
        || {
            let classes = classes.clone();
            async move {
                let cached = classes
                    .list(&ListParams::default().match_any())
                    .await
                    .ok()?;
                cached
                    .items
                    .iter()
                    .any(|c| c.metadata.name.as_deref() == Some("everyone"))
                    .then_some(())
            }
        },
    )
    .await?;
    let p = pods.create(&pp, &pod("p", json!({}), json!({}))?).await?;
    assert_eq!(
        priority_of(&p),
        (
            Some("everyone".into()),
            Some(100),
            Some("PreemptLowerPriority".into())
        )
    );
    let second = classes
        .create(
            &pp,
            &priority_class("also", 5, json!({"globalDefault": true}))?,
        )
        .await
        .err()
        .context("a second default must be refused")?;
    assert_eq!(
        api_message(&second),
        Some((403, "priorityclasses.scheduling.k8s.io \"also\" is forbidden: PriorityClass everyone is already marked as default. Only one default can exist".into()))
    );
    Ok(())
}

#[tokio::test]
async fn system_priority_classes_exist_from_the_start_and_are_protected() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let classes: Api<PriorityClass> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pp = PostParams::default();
    assert_eq!(
        classes.get("system-node-critical").await?.value,
        2_000_001_000
    );
    assert_eq!(
        classes.get("system-cluster-critical").await?.value,
        2_000_000_000
    );
    let p = pods
        .create(
            &pp,
            &pod(
                "p",
                json!({}),
                json!({"priorityClassName": "system-cluster-critical"}),
            )?,
        )
        .await?;
    assert_eq!(
        priority_of(&p),
        (
            Some("system-cluster-critical".into()),
            Some(2_000_000_000),
            Some("PreemptLowerPriority".into())
        )
    );
    let err = cp.kubectl_err(&["delete", "priorityclass", "system-cluster-critical"])?;
    assert!(
        err.contains("this is a system priority class and cannot be deleted"),
        "{err}"
    );
    let err = classes
        .create(&pp, &priority_class("system-mine", 1, json!({}))?)
        .await
        .err()
        .context("system- names are reserved")?;
    assert_eq!(api_error(&err), Some((422, "Invalid".into())));
    Ok(())
}

#[tokio::test]
async fn volumes_and_autoscalers_get_upstreams_defaults() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let client = cp.client().await?;
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(client.clone());
    let pv = serde_json::from_value(json!({"metadata": {"name": "disk"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/tmp/disk"}}}))?;
    let pv = pvs.create(&PostParams::default(), &pv).await?;
    let spec = pv.spec.context("pv spec")?;
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    assert_eq!(pv.status.and_then(|s| s.phase).as_deref(), Some("Pending"));

    let pvcs: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), "default");
    let pvc = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))?;
    let pvc = pvcs.create(&PostParams::default(), &pvc).await?;
    assert_eq!(
        pvc.spec.and_then(|s| s.volume_mode).as_deref(),
        Some("Filesystem")
    );

    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(client, "default");
    let hpa = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"maxReplicas": 5, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}}))?;
    let hpa = hpas.create(&PostParams::default(), &hpa).await?;
    let spec = hpa.spec.context("hpa spec")?;
    assert_eq!(spec.min_replicas, Some(1));
    let metric = spec.metrics.unwrap_or_default();
    let target = metric
        .first()
        .and_then(|m| m.resource.as_ref())
        .map(|r| (r.name.clone(), r.target.average_utilization));
    assert_eq!(target, Some(("cpu".to_string(), Some(80))));
    let table = cp.kubectl(&["get", "hpa", "web"])?;
    assert!(table.contains("cpu: <unknown>/80%"), "{table}");
    Ok(())
}
