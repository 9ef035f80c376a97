//! Cluster PKI: a self-signed cluster CA, the API server's serving
//! certificate, and an admin client certificate plus kubeconfig.
//!
//! Everything is generated in memory first and only then written, each file
//! via a temporary file and a rename, so a failure never leaves a half-written
//! certificate behind. Private keys are created with mode 0600 and are never
//! world-readable, not even briefly.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::kubeconfig::Kubeconfig;

/// File name of the cluster CA certificate inside the PKI directory.
pub const CA_CERT: &str = "ca.crt";
/// File name of the cluster CA private key inside the PKI directory.
pub const CA_KEY: &str = "ca.key";
/// File name of the API server serving certificate.
pub const APISERVER_CERT: &str = "apiserver.crt";
/// File name of the API server serving key.
pub const APISERVER_KEY: &str = "apiserver.key";
/// File name of the admin client certificate.
pub const ADMIN_CERT: &str = "admin.crt";
/// File name of the admin client key.
pub const ADMIN_KEY: &str = "admin.key";
/// File name of the certificate the API server presents to kubelets
/// (logs, exec, attach, port-forward), as kubeadm names it.
pub const APISERVER_KUBELET_CLIENT_CERT: &str = "apiserver-kubelet-client.crt";
/// File name of the key of [`APISERVER_KUBELET_CLIENT_CERT`].
pub const APISERVER_KUBELET_CLIENT_KEY: &str = "apiserver-kubelet-client.key";
/// File name of the admin kubeconfig (embeds the admin key, hence 0600).
pub const ADMIN_KUBECONFIG: &str = "admin.kubeconfig";

/// Subject CN of the cluster CA.
pub const CA_COMMON_NAME: &str = "capstan-ca";
/// Subject CN of the API server certificate (matches kubeadm).
pub const APISERVER_COMMON_NAME: &str = "kube-apiserver";
/// Subject CN of the API server's kubelet client certificate (kubeadm's).
pub const APISERVER_KUBELET_CLIENT_COMMON_NAME: &str = "kube-apiserver-kubelet-client";
/// Admin user name: the client certificate CN and kubeconfig user name.
pub const ADMIN_USER: &str = "kubernetes-admin";
/// Admin group (certificate O); RBAC binds it to cluster-admin.
pub const ADMIN_GROUP: &str = "system:masters";
/// Name of the cluster and context in generated kubeconfigs.
pub const CLUSTER_NAME: &str = "capstan";

/// SANs every API server certificate carries: loopback plus the in-cluster
/// names of the `kubernetes` Service.
pub const DEFAULT_APISERVER_SANS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// Lifetime of a newly created CA.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// Lifetime of leaf certificates (capped at the CA's expiry).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// How far `notBefore` is backdated to tolerate clock skew between nodes.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// Inputs to [`init`], mirroring the `capstan pki init` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiOptions {
    /// Directory to write into (created if missing; an existing CA in it is reused).
    pub dir: PathBuf,
    /// API server URL clients use, `https://HOST[:PORT]`; its host becomes a SAN.
    pub server: String,
    /// Extra API server SANs: IP addresses become IP SANs, anything else DNS SANs.
    pub hosts: Vec<String>,
}

/// What [`init`] did, so callers can report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// True if an existing `ca.crt`/`ca.key` was loaded rather than generated.
    pub ca_reused: bool,
    /// Every file written, in write order.
    pub written: Vec<PathBuf>,
}

/// The parts of a validated `--server` URL that matter for certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Host as it will appear in a SAN: an IP address (IPv6 without brackets)
    /// or a lower-cased DNS name.
    pub host: String,
    /// Explicit port, if one was given.
    pub port: Option<u16>,
}

/// Validates an API server URL: it must be `https://` and have a host that is
/// an IP address or a valid DNS name, with an optional numeric port.
pub fn parse_server(server: &str) -> anyhow::Result<ServerUrl> {
    let bad = |why: &str| {
        anyhow!(
            "invalid --server {server:?}: {why} (expected https://HOST[:PORT], e.g. https://127.0.0.1:6443)"
        )
    };
    if server.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    let Some((scheme, rest)) = server.split_once("://") else {
        return Err(bad("not a URL"));
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(bad(&format!("scheme must be https, not {scheme:?}")));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(bad("user info is not allowed"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (ip, tail) = bracketed
            .split_once(']')
            .ok_or_else(|| bad("unterminated IPv6 address"))?;
        let ip: Ipv6Addr = ip.parse().map_err(|_| bad("invalid IPv6 address"))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| bad("unexpected text after IPv6 address"))?,
            ),
        };
        (ip.to_string(), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err(bad(&format!("invalid port {p:?}"))),
        },
    };
    let host = match parse_host(&host).map_err(|e| bad(&format!("{e:#}")))? {
        SanType::IpAddress(ip) => ip.to_string(),
        SanType::DnsName(name) => name.as_str().to_string(),
        _ => return Err(bad("unsupported host")),
    };
    Ok(ServerUrl { host, port })
}

/// Creates (or refreshes) the cluster PKI in `opts.dir`.
///
/// A CA already present in the directory is reused, never replaced, so that
/// re-running after adding a `--host` does not invalidate every credential
/// issued so far; the API server and admin certificates and the admin
/// kubeconfig are always re-issued.
pub fn init(opts: &PkiOptions) -> anyhow::Result<InitReport> {
    let server = parse_server(&opts.server)?;
    let sans = apiserver_sans(&server, &opts.hosts)?;
    let dir = &opts.dir;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let now = SystemTime::now();
    let ca_cert_path = dir.join(CA_CERT);
    let ca_key_path = dir.join(CA_KEY);
    let cert_exists = exists(&ca_cert_path)?;
    let key_exists = exists(&ca_key_path)?;
    let ca = match (cert_exists, key_exists) {
        (true, true) => load_ca(&ca_cert_path, &ca_key_path, now)?,
        (false, false) => generate_ca(now)?,
        (present, _) => {
            let (have, missing) = if present {
                (&ca_cert_path, &ca_key_path)
            } else {
                (&ca_key_path, &ca_cert_path)
            };
            bail!(
                "{} exists but {} does not; restore the missing file, or remove both to create a new CA",
                have.display(),
                missing.display()
            );
        }
    };

    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    let not_after = (now + LEAF_VALIDITY).min(ca.not_after);

    let mut apiserver_dn = DistinguishedName::new();
    apiserver_dn.push(DnType::CommonName, APISERVER_COMMON_NAME);
    let apiserver = issue_leaf(
        &ca.issuer,
        apiserver_dn,
        sans,
        ExtendedKeyUsagePurpose::ServerAuth,
        not_before,
        not_after,
    )
    .context("issuing the API server certificate")?;

    let mut admin_dn = DistinguishedName::new();
    admin_dn.push(DnType::OrganizationName, ADMIN_GROUP);
    admin_dn.push(DnType::CommonName, ADMIN_USER);
    let admin = issue_leaf(
        &ca.issuer,
        admin_dn,
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        not_before,
        not_after,
    )
    .context("issuing the admin client certificate")?;

    let mut kubelet_client_dn = DistinguishedName::new();
    kubelet_client_dn.push(DnType::OrganizationName, ADMIN_GROUP);
    kubelet_client_dn.push(DnType::CommonName, APISERVER_KUBELET_CLIENT_COMMON_NAME);
    let kubelet_client = issue_leaf(
        &ca.issuer,
        kubelet_client_dn,
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        not_before,
        not_after,
    )
    .context("issuing the API server's kubelet client certificate")?;

    let kubeconfig = Kubeconfig::with_client_certificate(
        CLUSTER_NAME,
        &opts.server,
        &ca.cert_pem,
        ADMIN_USER,
        &admin.cert_pem,
        &admin.key_pem,
    )
    .to_yaml()?;

    let mut written = Vec::new();
    let mut write = |name: &str, contents: &str, mode: u32| -> anyhow::Result<()> {
        let path = dir.join(name);
        write_file(&path, contents.as_bytes(), mode)?;
        written.push(path);
        Ok(())
    };
    let ca_reused = ca.new_key_pem.is_none();
    if let Some(key_pem) = &ca.new_key_pem {
        write(CA_KEY, key_pem, KEY_MODE)?;
        write(CA_CERT, &ca.cert_pem, CERT_MODE)?;
    }
    write(APISERVER_KEY, &apiserver.key_pem, KEY_MODE)?;
    write(APISERVER_CERT, &apiserver.cert_pem, CERT_MODE)?;
    write(ADMIN_KEY, &admin.key_pem, KEY_MODE)?;
    write(
        APISERVER_KUBELET_CLIENT_KEY,
        &kubelet_client.key_pem,
        KEY_MODE,
    )?;
    write(
        APISERVER_KUBELET_CLIENT_CERT,
        &kubelet_client.cert_pem,
        CERT_MODE,
    )?;
    write(ADMIN_CERT, &admin.cert_pem, CERT_MODE)?;
    write(ADMIN_KUBECONFIG, &kubeconfig, KEY_MODE)?;
    // Make the renames durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;

    Ok(InitReport { ca_reused, written })
}

/// Group of node identities (upstream's Node authorizer keys on it).
pub const NODES_GROUP: &str = "system:nodes";
/// The proxy's user, as kubeadm's kube-proxy (bound to
/// `system:node-proxier` upstream).
pub const PROXY_USER: &str = "system:kube-proxy";

/// Writes `out`: a kubeconfig for the kubelet of node `node` with a
/// client certificate `system:node:<node>` in [`NODES_GROUP`], as kubeadm
/// gives kubelets, signed by the CA [`init`] left in `dir`.
pub fn node_kubeconfig(dir: &Path, server: &str, node: &str, out: &Path) -> anyhow::Result<()> {
    let user = format!("system:node:{node}");
    client_kubeconfig(dir, server, &user, Some(NODES_GROUP), out)
        .with_context(|| format!("issuing the client certificate of node {node}"))
}

/// Writes `out`: a kubeconfig with a client certificate for `user` (and
/// `group`, as the certificate's O), signed by the CA [`init`] left in
/// `dir`, for a component that is not the admin (a proxy, an add-on).
pub fn client_kubeconfig(
    dir: &Path,
    server: &str,
    user: &str,
    group: Option<&str>,
    out: &Path,
) -> anyhow::Result<()> {
    parse_server(server)?;
    let now = SystemTime::now();
    let ca = load_ca(&dir.join(CA_CERT), &dir.join(CA_KEY), now)?;
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    let not_after = (now + LEAF_VALIDITY).min(ca.not_after);
    let mut dn = DistinguishedName::new();
    if let Some(group) = group {
        dn.push(DnType::OrganizationName, group);
    }
    dn.push(DnType::CommonName, user);
    let leaf = issue_leaf(
        &ca.issuer,
        dn,
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        not_before,
        not_after,
    )
    .with_context(|| format!("issuing a client certificate for {user}"))?;
    let yaml = Kubeconfig::with_client_certificate(
        CLUSTER_NAME,
        server,
        &ca.cert_pem,
        user,
        &leaf.cert_pem,
        &leaf.key_pem,
    )
    .to_yaml()?;
    write_file(out, yaml.as_bytes(), KEY_MODE)
}

/// A CA ready to sign, plus what callers need to know about it.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    not_after: SystemTime,
    /// Set only for a freshly generated CA, whose key must be written.
    new_key_pem: Option<String>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
}

fn generate_ca(now: SystemTime) -> anyhow::Result<Ca> {
    let key = KeyPair::generate().context("generating CA key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let not_after = now + CA_VALIDITY;
    params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    params.not_after = not_after.into();
    let cert_pem = params
        .self_signed(&key)
        .context("self-signing CA certificate")?
        .pem();
    let new_key_pem = key.serialize_pem();
    // Build the issuer from the PEM, exactly as for a reused CA, so both
    // paths sign identically (issuer DN, authority key identifier).
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).context("loading generated CA")?;
    Ok(Ca {
        issuer,
        cert_pem,
        not_after,
        new_key_pem: Some(new_key_pem),
    })
}

fn load_ca(cert_path: &Path, key_path: &Path, now: SystemTime) -> anyhow::Result<Ca> {
    let cert_pem = fs::read_to_string(cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let key_pem =
        fs::read_to_string(key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let key = KeyPair::from_pem(&key_pem)
        .with_context(|| format!("{} is not a usable PEM private key", key_path.display()))?;

    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow!("{} is not a PEM certificate: {e}", cert_path.display()))?;
    let x509 = pem.parse_x509().map_err(|e| {
        anyhow!(
            "{} is not a valid X.509 certificate: {e}",
            cert_path.display()
        )
    })?;
    if !x509.is_ca() {
        bail!("{} is not a CA certificate", cert_path.display());
    }
    if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        bail!(
            "{} does not match the public key in {}",
            key_path.display(),
            cert_path.display()
        );
    }
    let validity = x509.validity();
    let not_after_ts = validity.not_after.timestamp();
    let not_after = u64::try_from(not_after_ts)
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .unwrap_or(UNIX_EPOCH);
    let now_ts = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if validity.not_before.timestamp() > i64::try_from(now_ts).unwrap_or(i64::MAX)
        || not_after <= now
    {
        bail!(
            "the CA in {} is not valid now (valid from {} to {}); remove {} and {} to create a new CA (this invalidates all issued credentials)",
            cert_path.display(),
            validity.not_before,
            validity.not_after,
            cert_path.display(),
            key_path.display()
        );
    }

    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
        .with_context(|| format!("loading CA from {}", cert_path.display()))?;
    Ok(Ca {
        issuer,
        cert_pem,
        not_after,
        new_key_pem: None,
    })
}

fn issue_leaf(
    ca: &Issuer<'_, KeyPair>,
    subject: DistinguishedName,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    not_before: SystemTime,
    not_after: SystemTime,
) -> anyhow::Result<Leaf> {
    let key = KeyPair::generate().context("generating key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let cert = params.signed_by(&key, ca).context("signing certificate")?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The API server SANs, in order: `--host` values, the `--server` host, then
/// [`DEFAULT_APISERVER_SANS`], without duplicates.
fn apiserver_sans(server: &ServerUrl, hosts: &[String]) -> anyhow::Result<Vec<SanType>> {
    let mut sans = Vec::new();
    let mut push = |san: SanType| {
        if !sans.contains(&san) {
            sans.push(san);
        }
    };
    for host in hosts {
        push(parse_host(host).with_context(|| format!("invalid --host {host:?}"))?);
    }
    push(parse_host(&server.host)?);
    for host in DEFAULT_APISERVER_SANS {
        push(parse_host(host)?);
    }
    Ok(sans)
}

/// An IP address (IPv6 optionally in brackets) becomes an IP SAN; anything
/// else must be a valid DNS name and becomes a lower-cased DNS SAN.
fn parse_host(input: &str) -> anyhow::Result<SanType> {
    if let Some(inner) = input.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let ip: Ipv6Addr = inner
            .parse()
            .map_err(|_| anyhow!("{input:?} is not a valid bracketed IPv6 address"))?;
        return Ok(SanType::IpAddress(IpAddr::V6(ip)));
    }
    if let Ok(ip) = input.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let name = input.to_ascii_lowercase();
    if name.is_empty() {
        bail!("empty host name");
    }
    if name.len() > 253 {
        bail!("{input:?} is longer than 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        let valid = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            bail!("{input:?} is neither an IP address nor a valid DNS name");
        }
    }
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        bail!("{input:?} looks like an IP address but is not a valid one");
    }
    let name = Ia5String::try_from(name).map_err(|e| anyhow!("{input:?}: {e}"))?;
    Ok(SanType::DnsName(name))
}

fn exists(path: &Path) -> anyhow::Result<bool> {
    path.try_exists()
        .with_context(|| format!("checking {}", path.display()))
}

/// Atomically replaces `path` with `contents` and exactly `mode` (umask does
/// not apply). The temporary file is created with `mode` already set, so
/// secrets are never exposed with wider permissions.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", tmp.display())),
    }
    let result = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(s: &str) -> SanType {
        SanType::DnsName(Ia5String::try_from(s).unwrap())
    }

    fn ip(s: &str) -> SanType {
        SanType::IpAddress(s.parse().unwrap())
    }

    #[test]
    fn parse_server_accepts_https_urls() {
        let u = parse_server("https://127.0.0.1:6443").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(6443));
        let u = parse_server("HTTPS://API.Example.com/some/path").unwrap();
        assert_eq!(u.host, "api.example.com");
        assert_eq!(u.port, None);
        let u = parse_server("https://[::1]:443").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.port, Some(443));
    }

    #[test]
    fn parse_server_rejects_bad_urls() {
        for bad in [
            "",
            "notaurl",
            "http://x",
            "ftp://x",
            "https://",
            "https://:6443",
            "https:///path",
            "https://x:",
            "https://x:0",
            "https://x:99999",
            "https://x:+1",
            "https://x:port",
            "https://user@x",
            "https://::1",
            "https://[::1",
            "https://[nope]",
            "https://[::1]x",
            "https://bad_host",
            "https://-x",
            "https://999.1.1.1",
            "https://x y",
            " https://x",
        ] {
            let err = parse_server(bad).expect_err(bad);
            assert!(err.to_string().contains("--server"), "{bad}: {err}");
        }
    }

    #[test]
    fn parse_host_classifies_ips_and_names() {
        assert_eq!(parse_host("10.0.0.1").unwrap(), ip("10.0.0.1"));
        assert_eq!(parse_host("fd00::1").unwrap(), ip("fd00::1"));
        assert_eq!(parse_host("[fd00::1]").unwrap(), ip("fd00::1"));
        assert_eq!(parse_host("Node-1.Example").unwrap(), dns("node-1.example"));
        for bad in ["", "a..b", "a_b", "x:6443", "1.2.3", "[x]", "-a", "a-"] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn apiserver_sans_are_ordered_and_deduplicated() {
        let server = parse_server("https://LOCALHOST:6443").unwrap();
        let sans = apiserver_sans(
            &server,
            &[
                "10.0.0.1".into(),
                "node1".into(),
                "127.0.0.1".into(),
                "NODE1".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            sans,
            vec![
                ip("10.0.0.1"),
                dns("node1"),
                ip("127.0.0.1"),
                dns("localhost"),
                dns("kubernetes"),
                dns("kubernetes.default"),
                dns("kubernetes.default.svc"),
                dns("kubernetes.default.svc.cluster.local"),
            ]
        );
        assert!(apiserver_sans(&server, &["bad host".into()]).is_err());
    }
}
