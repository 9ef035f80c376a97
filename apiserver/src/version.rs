//! The version the server reports on `/version`: the Kubernetes API level
//! it implements (matching the k8s-openapi feature, v1_33), so kubectl's
//! version-skew checks behave as against upstream.

/// Major version.
pub const MAJOR: &str = "1";
/// Minor version.
pub const MINOR: &str = "33";
/// Full version string, with the Capstan build as metadata.
pub const GIT_VERSION: &str = concat!("v1.33.0+capstan-", env!("CARGO_PKG_VERSION"));

/// The `/version` body.
pub fn info() -> serde_json::Value {
    serde_json::json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}
