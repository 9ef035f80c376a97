//! End-to-end tests of `capstan pki init`: generate into a tempdir, then check
//! the results with an independent X.509 parser.

use std::collections::HashSet;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use capstan::kubeconfig::Kubeconfig;
use capstan::pki::{self, InitReport, PkiOptions};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

const SERVER: &str = "https://203.0.113.7:6443";
const HOST_IP: &str = "192.0.2.10";
const HOST_NAME: &str = "node1.example";

fn init(dir: &Path, hosts: &[&str]) -> anyhow::Result<InitReport> {
    pki::init(&PkiOptions {
        dir: dir.to_path_buf(),
        server: SERVER.to_string(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
    })
}

fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    // A not-yet-existing subdirectory: init must create it.
    let dir = tmp.path().join("pki");
    init(&dir, &[HOST_IP, HOST_NAME]).unwrap();
    (tmp, dir)
}

fn pem(path: &Path) -> Pem {
    let bytes = fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
    pem
}

fn cn(cert: &X509Certificate<'_>) -> String {
    let mut it = cert.subject().iter_common_name();
    let cn = it.next().unwrap().as_str().unwrap().to_string();
    assert!(it.next().is_none());
    cn
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let ext = cert.subject_alternative_name().unwrap().unwrap();
    ext.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(b) => match b.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string(),
                16 => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string(),
                _ => panic!("bad IP SAN {b:?}"),
            },
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_is_a_self_signed_ca() {
    let (_tmp, dir) = fresh();
    let ca_pem = pem(&dir.join("ca.crt"));
    let ca = ca_pem.parse_x509().unwrap();
    assert!(ca.is_ca());
    assert_eq!(cn(&ca), "capstan-ca");
    assert_eq!(ca.subject(), ca.issuer());
    ca.verify_signature(None).unwrap();
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    let left = ca.validity().time_to_expiration().unwrap();
    assert!(left.whole_days() > 9 * 365, "CA valid for only {left}");
    assert!(left.whole_days() <= 10 * 365 + 3, "CA valid for {left}");
}

#[test]
fn apiserver_cert_is_signed_by_ca_and_has_expected_sans() {
    let (_tmp, dir) = fresh();
    let ca_pem = pem(&dir.join("ca.crt"));
    let ca = ca_pem.parse_x509().unwrap();
    let leaf_pem = pem(&dir.join("apiserver.crt"));
    let leaf = leaf_pem.parse_x509().unwrap();

    leaf.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(leaf.issuer(), ca.subject());
    assert!(!leaf.is_ca());
    assert!(leaf.validity().is_valid());
    assert!(leaf.validity().not_after <= ca.validity().not_after);
    assert_eq!(cn(&leaf), "kube-apiserver");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    assert!(!eku.client_auth);

    let names = sans(&leaf);
    for want in [
        HOST_IP,
        HOST_NAME,
        "203.0.113.7",
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let unique: HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "duplicate SANs: {names:?}");
    // IPs must be IP SANs, not DNS SANs (sans() renders both as strings).
    let ext = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(
        ext.value
            .general_names
            .iter()
            .all(|n| !matches!(n, GeneralName::DNSName(d) if d.parse::<IpAddr>().is_ok()))
    );
}

#[test]
fn admin_cert_identifies_kubernetes_admin_in_system_masters() {
    let (_tmp, dir) = fresh();
    let ca_pem = pem(&dir.join("ca.crt"));
    let ca = ca_pem.parse_x509().unwrap();
    let admin_pem = pem(&dir.join("admin.crt"));
    let admin = admin_pem.parse_x509().unwrap();

    admin.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(cn(&admin), "kubernetes-admin");
    let orgs: Vec<_> = admin
        .subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["system:masters"]);
    assert!(!admin.is_ca());
    let eku = admin.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth);
    assert!(!eku.server_auth);
}

#[test]
fn keys_and_kubeconfig_are_0600_and_certs_0644() {
    let (_tmp, dir) = fresh();
    for key in [
        "ca.key",
        "apiserver.key",
        "admin.key",
        "admin.kubeconfig",
        "apiserver-kubelet-client.key",
    ] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    for cert in [
        "ca.crt",
        "apiserver.crt",
        "admin.crt",
        "apiserver-kubelet-client.crt",
    ] {
        assert_eq!(mode(&dir.join(cert)), 0o644, "{cert}");
    }
    // No temporary files left behind.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "admin.crt",
            "admin.key",
            "admin.kubeconfig",
            "apiserver-kubelet-client.crt",
            "apiserver-kubelet-client.key",
            "apiserver.crt",
            "apiserver.key",
            "ca.crt",
            "ca.key"
        ]
    );
}

#[test]
fn world_readable_existing_key_is_replaced_by_a_0600_one() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("admin.key");
    fs::write(&key, "old").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    init(tmp.path(), &[]).unwrap();
    assert_eq!(mode(&key), 0o600);
    assert_ne!(fs::read(&key).unwrap(), b"old");
}

#[test]
fn second_init_reuses_ca_and_reissues_leaves() {
    let (_tmp, dir) = fresh();
    let ca_crt = fs::read(dir.join("ca.crt")).unwrap();
    let ca_key = fs::read(dir.join("ca.key")).unwrap();
    let old_apiserver = fs::read(dir.join("apiserver.crt")).unwrap();
    let old_admin = fs::read(dir.join("admin.crt")).unwrap();

    let report = init(&dir, &[HOST_IP, "extra.example"]).unwrap();
    assert!(report.ca_reused);
    assert!(!report.written.iter().any(|p| p.ends_with("ca.crt")));
    assert!(!report.written.iter().any(|p| p.ends_with("ca.key")));
    assert_eq!(fs::read(dir.join("ca.crt")).unwrap(), ca_crt);
    assert_eq!(fs::read(dir.join("ca.key")).unwrap(), ca_key);
    assert_ne!(fs::read(dir.join("apiserver.crt")).unwrap(), old_apiserver);
    assert_ne!(fs::read(dir.join("admin.crt")).unwrap(), old_admin);

    let ca_pem = pem(&dir.join("ca.crt"));
    let ca = ca_pem.parse_x509().unwrap();
    for leaf in ["apiserver.crt", "admin.crt"] {
        let leaf_pem = pem(&dir.join(leaf));
        let cert = leaf_pem.parse_x509().unwrap();
        cert.verify_signature(Some(ca.public_key()))
            .unwrap_or_else(|e| panic!("{leaf}: {e}"));
        assert_eq!(cert.issuer(), ca.subject());
        // Authority key identifier must match the (reused) CA's subject key id.
        let aki = cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.clone()
                }
                _ => None,
            })
            .unwrap();
        let ski = ca
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.clone())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(aki.0, ski.0, "{leaf}");
    }
    let apiserver_pem = pem(&dir.join("apiserver.crt"));
    let names = sans(&apiserver_pem.parse_x509().unwrap());
    assert!(names.iter().any(|n| n == "extra.example"), "{names:?}");
    assert!(!names.iter().any(|n| n == HOST_NAME), "{names:?}");
}

#[test]
fn half_present_or_mismatched_ca_is_refused_without_touching_it() {
    let (_tmp, dir) = fresh();
    let ca_crt = fs::read(dir.join("ca.crt")).unwrap();

    // ca.key replaced by an unrelated key.
    let other_key = fs::read(dir.join("admin.key")).unwrap();
    fs::write(dir.join("ca.key"), &other_key).unwrap();
    let err = init(&dir, &[]).unwrap_err();
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");

    // ca.key missing.
    fs::remove_file(dir.join("ca.key")).unwrap();
    let err = init(&dir, &[]).unwrap_err();
    assert!(format!("{err:#}").contains("ca.key does not"), "{err:#}");
    assert_eq!(fs::read(dir.join("ca.crt")).unwrap(), ca_crt);
    assert!(!dir.join("ca.key").exists());
}

#[test]
fn bad_server_is_refused() {
    for bad in ["http://x", "notaurl", "https://", "https://host:notaport"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let err = pki::init(&PkiOptions {
            dir: dir.clone(),
            server: bad.to_string(),
            hosts: vec![],
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("--server") && msg.contains(bad), "{msg}");
        assert!(!dir.exists(), "{bad}: nothing should be written");
    }
}

#[test]
fn bad_host_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = init(tmp.path(), &["not a host"]).unwrap_err();
    assert!(format!("{err:#}").contains("--host"), "{err:#}");
}

#[test]
fn cli_refuses_bad_server_with_nonzero_exit() {
    for bad in ["http://x", "notaurl"] {
        let tmp = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(["pki", "init", "--server", bad, "--dir"])
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("invalid --server"), "{stderr}");
        assert!(fs::read_dir(tmp.path()).unwrap().next().is_none());
    }
}

#[test]
fn cli_prints_one_line_per_file_written() {
    let tmp = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args([
                "pki", "init", "--server", SERVER, "--host", HOST_IP, HOST_NAME,
            ])
            .arg("--dir")
            .arg(tmp.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first.lines().filter(|l| l.starts_with("wrote ")).count(), 9);
    assert_eq!(first.lines().count(), 9, "{first}");
    let apiserver_pem = pem(&tmp.path().join("apiserver.crt"));
    let names = sans(&apiserver_pem.parse_x509().unwrap());
    assert!(names.iter().any(|n| n == HOST_IP) && names.iter().any(|n| n == HOST_NAME));

    let second = run();
    assert_eq!(
        second.lines().filter(|l| l.starts_with("wrote ")).count(),
        7
    );
    assert!(second.contains("reusing existing CA"), "{second}");
}

#[test]
fn kubeconfig_embeds_the_written_pems() {
    let (_tmp, dir) = fresh();
    let text = fs::read_to_string(dir.join("admin.kubeconfig")).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();

    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Config");
    assert_eq!(v["current-context"], "capstan");
    assert_eq!(v["contexts"][0]["name"], "capstan");
    assert_eq!(v["contexts"][0]["context"]["cluster"], "capstan");
    assert_eq!(v["contexts"][0]["context"]["user"], "kubernetes-admin");
    assert_eq!(v["clusters"][0]["name"], "capstan");
    assert_eq!(v["clusters"][0]["cluster"]["server"], SERVER);
    assert_eq!(v["users"][0]["name"], "kubernetes-admin");

    let decode = |v: &serde_json::Value| BASE64.decode(v.as_str().unwrap()).unwrap();
    let file = |name: &str| fs::read(dir.join(name)).unwrap();
    assert_eq!(
        decode(&v["clusters"][0]["cluster"]["certificate-authority-data"]),
        file("ca.crt")
    );
    assert_eq!(
        decode(&v["users"][0]["user"]["client-certificate-data"]),
        file("admin.crt")
    );
    assert_eq!(
        decode(&v["users"][0]["user"]["client-key-data"]),
        file("admin.key")
    );

    // The typed model reads it back the same way.
    let kc = Kubeconfig::from_yaml(&text).unwrap();
    let (cluster, user) = kc.current().unwrap();
    assert_eq!(cluster.server, SERVER);
    assert_eq!(
        cluster.certificate_authority_pem().unwrap().unwrap(),
        file("ca.crt")
    );
    assert_eq!(
        user.client_certificate_pem().unwrap().unwrap(),
        file("admin.crt")
    );
    assert_eq!(user.client_key_pem().unwrap().unwrap(), file("admin.key"));
}

#[test]
fn node_kubeconfig_identifies_the_node_in_system_nodes() {
    let (_tmp, dir) = fresh();
    let path = dir.join("kubelet.kubeconfig");
    pki::node_kubeconfig(&dir, SERVER, "n1-control-plane", &path).unwrap();
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(v["clusters"][0]["cluster"]["server"], SERVER);
    assert_eq!(v["users"][0]["name"], "system:node:n1-control-plane");
    let cert_pem = BASE64
        .decode(
            v["users"][0]["user"]["client-certificate-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let (_, leaf_pem) = x509_parser::pem::parse_x509_pem(&cert_pem).unwrap();
    let leaf = leaf_pem.parse_x509().unwrap();
    let ca_pem = pem(&dir.join("ca.crt"));
    let ca = ca_pem.parse_x509().unwrap();
    leaf.verify_signature(Some(ca.public_key())).unwrap();
    assert_eq!(cn(&leaf), "system:node:n1-control-plane");
    let orgs: Vec<_> = leaf
        .subject()
        .iter_organization()
        .map(|o| o.as_str().unwrap())
        .collect();
    assert_eq!(orgs, ["system:nodes"]);
    assert!(
        leaf.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
}
