//! Finding the programs a cluster runs: Capstan's own binaries next to the
//! running `capstan` (they are built and installed together), else on
//! `PATH`; etcd on `PATH`, with the Debian package to install when missing.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The etcd server binary's name.
pub const ETCD: &str = "etcd";

/// A Capstan component binary (`capstan-apiserver`, ...): next to the
/// running executable first, so a build tree or an install prefix is used
/// as a whole, then on `PATH`.
pub fn component(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the capstan executable")?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let beside = dir.join(name);
    if is_executable(&beside) {
        return Ok(beside);
    }
    if let Some(found) = on_path(name, std::env::var_os("PATH").as_deref()) {
        return Ok(found);
    }
    bail!(
        "{name} not found next to {} nor on PATH; build it (`cargo build --release --bins`) or put it on PATH",
        exe.display()
    )
}

/// The etcd binary on `PATH`.
pub fn etcd() -> anyhow::Result<PathBuf> {
    system(ETCD, "etcd-server")
}

/// A program of the system on `PATH`, with the Debian package that
/// installs it named when it is missing.
pub fn system(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    match on_path(name, std::env::var_os("PATH").as_deref()) {
        Some(path) => Ok(path),
        None => bail!("{name} not found on PATH; install it with `apt-get install {package}`"),
    }
}

/// The first executable file called `name` in the `PATH`-style list `path`.
pub fn on_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn finds_executables_on_a_path_list() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("tool"), "").unwrap(); // not executable
        let exe = b.path().join("tool");
        std::fs::write(&exe, "").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert_eq!(on_path("tool", Some(&path)), Some(exe));
        assert_eq!(on_path("missing", Some(&path)), None);
        assert_eq!(on_path("tool", None), None);
    }

    #[test]
    fn a_missing_component_is_named() {
        let err = component("capstan-no-such-binary").unwrap_err().to_string();
        assert!(err.contains("capstan-no-such-binary"), "{err}");
    }
}
