//! The kubelet's side of cluster DNS and Services on a real containerd:
//! each `dnsPolicy` gives the pod the `/etc/resolv.conf` upstream's
//! kubelet would, `hostname`/`subdomain` and `hostAliases` reach the
//! kubelet-managed `/etc/hosts`, and Services become the docker-link
//! environment variables unless `enableServiceLinks: false`.
//! Needs root, containerd, runc, the CNI plugins and busybox-static.

use std::time::Duration;

use anyhow::Result;
use capstan_tests::fixture::ControlPlane;
use capstan_tests::node::{BUSYBOX, Node};
use capstan_tests::wait;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, PostParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

async fn create<K>(client: &kube::Client, ns: &str, obj: serde_json::Value) -> Result<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let obj: K = serde_json::from_value(obj)?;
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await?)
}

/// A pod on `node` whose only container prints `script`'s output and
/// exits; its stdout once it has succeeded.
async fn output_of(
    client: &kube::Client,
    node: &Node,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
    script: &str,
) -> Result<String> {
    let mut spec = spec;
    // `x-env`: the container's `env`.
    let env = spec
        .as_object_mut()
        .and_then(|o| o.remove("x-env"))
        .unwrap_or_else(|| json!([]));
    spec["nodeName"] = json!(node.name);
    spec["restartPolicy"] = json!("Never");
    spec["containers"] =
        json!([{"name": "main", "image": BUSYBOX, "command": ["sh", "-c", script], "env": env}]);
    let pod: Pod = create(
        client,
        ns,
        json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let phase = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default()
    };
    let done = wait::until(&format!("pod {name} to finish"), TIMEOUT, || {
        let pods = pods.clone();
        async move {
            let p = pods.get_opt(name).await.ok()??;
            matches!(phase(&p).as_str(), "Succeeded" | "Failed").then_some(p)
        }
    })
    .await;
    let done = match done {
        Ok(p) => p,
        Err(e) => {
            let status = pods
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|p| serde_json::to_string_pretty(&p.status).ok());
            anyhow::bail!("{e}\nstatus: {status:?}\n{}", node.logs());
        }
    };
    anyhow::ensure!(phase(&done) == "Succeeded", "pod {name}: {:?}", done.status);
    // CRI log lines: `<time> stdout F <text>`.
    Ok(node
        .container_log(&pod, "main", 0)
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_, stream, tag) = (parts.next(), parts.next()?, parts.next()?);
            (stream == "stdout" && tag == "F").then(|| parts.next().unwrap_or("").to_string())
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_get_resolv_conf_and_hosts_from_their_dns_policy() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    // The node's resolver config is a file of the test's, so what pods
    // inherit from it is known.
    let dir = tempfile::tempdir()?;
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "# the node's\nnameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n",
    )?;
    let node = Node::start(
        &cp,
        "node-dns",
        &[
            "--cluster-dns=10.96.0.10",
            "--cluster-domain=cluster.local",
            &format!("--resolv-conf={}", resolv.display()),
        ],
    )
    .await?;
    let client = cp.client().await?;
    node.wait_ready(&client).await?;
    let cat = "cat /etc/resolv.conf";

    let out = output_of(&client, &node, "default", "cluster-first", json!({}), cat).await?;
    assert_eq!(
        lines(&out),
        vec![
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example",
            "nameserver 10.96.0.10",
            "options ndots:5",
        ],
        "{out}"
    );

    let out = output_of(
        &client,
        &node,
        "default",
        "default-dns",
        json!({"dnsPolicy": "Default"}),
        cat,
    )
    .await?;
    assert_eq!(
        lines(&out),
        vec![
            "search corp.example",
            "nameserver 192.0.2.53",
            "options timeout:2"
        ],
        "{out}"
    );

    let out = output_of(
        &client,
        &node,
        "default",
        "none-dns",
        json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["198.51.100.1", "198.51.100.2"],
            "searches": ["one.example", "two.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
        cat,
    )
    .await?;
    assert_eq!(
        lines(&out),
        vec![
            "search one.example two.example",
            "nameserver 198.51.100.1",
            "nameserver 198.51.100.2",
            "options ndots:2 edns0",
        ],
        "{out}"
    );

    // ClusterFirst on the host network is the node's config;
    // ClusterFirstWithHostNet, with a dnsConfig, the cluster's.
    let out = output_of(
        &client,
        &node,
        "default",
        "hostnet-dns",
        json!({"hostNetwork": true}),
        cat,
    )
    .await?;
    assert_eq!(lines(&out)[1], "nameserver 192.0.2.53", "{out}");
    let out = output_of(
        &client,
        &node,
        "default",
        "hostnet-cluster-dns",
        json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet",
            "dnsConfig": {"searches": ["extra.example"], "options": [{"name": "ndots", "value": "3"}]}}),
        cat,
    )
    .await?;
    assert_eq!(
        lines(&out),
        vec![
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example extra.example",
            "nameserver 10.96.0.10",
            "options ndots:3",
        ],
        "{out}"
    );

    // Past upstream's limit of three nameservers the rest are dropped,
    // with a Warning Event on the pod.
    let out = output_of(
        &client,
        &node,
        "default",
        "many-servers",
        json!({"dnsConfig": {"nameservers": ["198.51.100.1", "198.51.100.2", "198.51.100.3"]}}),
        cat,
    )
    .await?;
    assert_eq!(
        lines(&out)[1..4],
        [
            "nameserver 10.96.0.10",
            "nameserver 198.51.100.1",
            "nameserver 198.51.100.2"
        ],
        "{out}"
    );
    let described = wait::until("the DNSConfigForming event", TIMEOUT, || async {
        let text = cp.kubectl(&["describe", "pod", "many-servers"]).ok()?;
        text.contains("DNSConfigForming").then_some(text)
    })
    .await?;
    assert!(
        described.contains(
            "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 198.51.100.1 198.51.100.2"
        ),
        "{described}"
    );

    // The host name, the FQDN from the subdomain, and hostAliases.
    let out = output_of(
        &client,
        &node,
        "default",
        "named",
        json!({"hostname": "db-0", "subdomain": "db", "hostAliases": [
            {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]}),
        "hostname; cat /etc/hosts",
    )
    .await?;
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let ip = pods
        .get("named")
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .unwrap_or_default();
    let l = lines(&out);
    assert_eq!(l[0], "db-0", "{out}");
    assert_eq!(l[1], "# Kubernetes-managed hosts file.", "{out}");
    assert!(l.contains(&"127.0.0.1\tlocalhost"), "{out}");
    assert!(
        l.contains(&format!("{ip}\tdb-0.db.default.svc.cluster.local\tdb-0").as_str()),
        "{out}"
    );
    assert_eq!(
        &l[l.len() - 2..],
        &[
            "# Entries added by HostAliases.",
            "10.1.2.3\tfoo.local\tbar.local"
        ],
        "{out}"
    );

    // A host-network pod keeps the node's entries, plus its aliases.
    let out = output_of(
        &client,
        &node,
        "default",
        "hostnet-hosts",
        json!({"hostNetwork": true, "hostAliases": [{"ip": "10.9.9.9", "hostnames": ["nine.local"]}]}),
        "cat /etc/hosts",
    )
    .await?;
    let node_hosts = std::fs::read_to_string("/etc/hosts")?;
    assert_eq!(
        out,
        format!(
            "# Kubernetes-managed hosts file (host network).\n{}\n\n# Entries added by HostAliases.\n10.9.9.9\tnine.local",
            node_hosts.trim_end_matches('\n')
        )
        .trim_end(),
        "{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn services_become_environment_variables_unless_links_are_off() -> Result<()> {
    let cp = ControlPlane::start(&[]).await?;
    let node = Node::start(&cp, "node-svc-env", &["--cluster-dns=10.96.0.10"]).await?;
    let client = cp.client().await?;
    node.wait_ready(&client).await?;
    let ns = "default";
    let web: Service = create(
        &client,
        ns,
        json!({"metadata": {"name": "web-front"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    )
    .await?;
    let ip = web.spec.and_then(|s| s.cluster_ip).unwrap_or_default();
    create::<Service>(
        &client,
        ns,
        json!({"metadata": {"name": "headless"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}),
    )
    .await?;
    // The master service: every pod gets its variables, links or not.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let master = match services.get_opt("kubernetes").await? {
        Some(s) => s,
        None => {
            create::<Service>(
                &client,
                ns,
                json!({"metadata": {"name": "kubernetes"}, "spec": {"ports": [{"name": "https", "port": 443}]}}),
            )
            .await?
        }
    };
    let master_ip = master.spec.and_then(|s| s.cluster_ip).unwrap_or_default();

    // Explicit entries override Service variables, and `$(VAR)` may
    // name them.
    let env = json!([
        {"name": "URL", "value": "http://$(WEB_FRONT_SERVICE_HOST):$(WEB_FRONT_SERVICE_PORT_HTTP)/"},
        {"name": "WEB_FRONT_SERVICE_PORT_DNS", "value": "5353"},
    ]);
    let out = output_of(
        &client,
        &node,
        ns,
        "linked",
        json!({"x-env": env}),
        "env | sort",
    )
    .await?;
    let env = lines(&out);
    for line in [
        format!("WEB_FRONT_SERVICE_HOST={ip}"),
        "WEB_FRONT_SERVICE_PORT=80".into(),
        "WEB_FRONT_SERVICE_PORT_HTTP=80".into(),
        "WEB_FRONT_SERVICE_PORT_DNS=5353".into(),
        format!("URL=http://{ip}:80/"),
        format!("WEB_FRONT_PORT=tcp://{ip}:80"),
        format!("WEB_FRONT_PORT_80_TCP=tcp://{ip}:80"),
        "WEB_FRONT_PORT_80_TCP_PROTO=tcp".into(),
        "WEB_FRONT_PORT_80_TCP_PORT=80".into(),
        format!("WEB_FRONT_PORT_80_TCP_ADDR={ip}"),
        format!("WEB_FRONT_PORT_53_UDP=udp://{ip}:53"),
        format!("KUBERNETES_SERVICE_HOST={master_ip}"),
        "KUBERNETES_SERVICE_PORT=443".into(),
    ] {
        assert!(env.contains(&line.as_str()), "{line} missing from\n{out}");
    }
    assert!(!out.contains("HEADLESS_"), "{out}");

    // Links off: only the master service's variables.
    let out = output_of(
        &client,
        &node,
        ns,
        "unlinked",
        json!({"enableServiceLinks": false}),
        "env | sort",
    )
    .await?;
    assert!(!out.contains("WEB_FRONT_"), "{out}");
    assert!(
        lines(&out).contains(&format!("KUBERNETES_SERVICE_HOST={master_ip}").as_str()),
        "{out}"
    );

    // Another namespace sees its own Services, not default's.
    cp.kubectl(&["create", "namespace", "other"])?;
    create::<Service>(
        &client,
        "other",
        json!({"metadata": {"name": "cache", "namespace": "other"}, "spec": {"ports": [{"port": 6379}]}}),
    )
    .await?;
    let out = output_of(
        &client,
        &node,
        "other",
        "elsewhere",
        json!({}),
        "env | sort",
    )
    .await?;
    assert!(!out.contains("WEB_FRONT_"), "{out}");
    assert!(out.contains("CACHE_SERVICE_PORT=6379"), "{out}");
    assert!(out.contains("KUBERNETES_SERVICE_PORT=443"), "{out}");
    Ok(())
}
