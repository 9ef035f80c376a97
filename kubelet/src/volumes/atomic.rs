//! Upstream's atomic writer for configMap, secret, downwardAPI and
//! projected volumes: the files live in a timestamped directory that the
//! `..data` symlink points to, and each visible name is a symlink through
//! `..data`, so a container never sees half an update — a new version is
//! written beside the old one and `..data` is swapped in one rename.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

/// The link every visible name points through.
const DATA_LINK: &str = "..data";

/// One file of a volume: its bytes and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits (`defaultMode` or the item's `mode`).
    pub mode: u32,
}

/// Whether `path` is a relative path without `..` (upstream refuses the
/// others in `items[].path`).
pub fn valid_path(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.starts_with("..")
}

fn current(dir: &Path) -> Option<PathBuf> {
    std::fs::read_link(dir.join(DATA_LINK)).ok()
}

fn same_contents(version: &Path, files: &BTreeMap<String, File>) -> bool {
    let mut seen = 0;
    for (name, file) in files {
        let path = version.join(name);
        match (std::fs::read(&path), std::fs::metadata(&path)) {
            (Ok(data), Ok(meta))
                if data == file.data && meta.permissions().mode() & 0o7777 == file.mode =>
            {
                seen += 1
            }
            _ => return false,
        }
    }
    // No file left over from an earlier version either.
    count_files(version) == seen
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}

/// Makes `dir` hold exactly `files`; returns whether anything changed.
pub fn write(dir: &Path, files: &BTreeMap<String, File>) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let old = current(dir);
    if let Some(old) = &old
        && same_contents(&dir.join(old), files)
    {
        return Ok(false);
    }
    let now = jiff::Timestamp::now();
    let version = format!("..{}", now.strftime("%Y_%m_%d_%H_%M_%S.%f"));
    let version_dir = dir.join(&version);
    std::fs::create_dir_all(&version_dir)?;
    for (name, file) in files {
        if !valid_path(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid volume file path {name:?}"),
            ));
        }
        let path = version_dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.data)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&version, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_LINK))?;
    // Visible names: the first element of each path, through ..data.
    let visible: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|n| n.split('/').next().map(str::to_string))
        .collect();
    for name in &visible {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != DATA_LINK && name != version {
                std::fs::remove_dir_all(entry.path())
                    .or_else(|_| std::fs::remove_file(entry.path()))?;
            }
        } else if !visible.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, File> {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    File {
                        data: v.as_bytes().to_vec(),
                        mode: 0o644,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn updates_swap_in_whole_and_drop_removed_keys() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        assert!(write(d, &files(&[("a", "1"), ("sub/b", "2")]))?);
        assert_eq!(std::fs::read_to_string(d.join("a"))?, "1");
        assert_eq!(std::fs::read_to_string(d.join("sub/b"))?, "2");
        assert!(!write(d, &files(&[("a", "1"), ("sub/b", "2")]))?);
        assert!(write(d, &files(&[("a", "changed")]))?);
        assert_eq!(std::fs::read_to_string(d.join("a"))?, "changed");
        assert!(std::fs::symlink_metadata(d.join("sub")).is_err());
        let versions = std::fs::read_dir(d)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..2"))
            .count();
        assert_eq!(versions, 1);
        Ok(())
    }

    #[test]
    fn paths_may_not_escape() {
        assert!(valid_path("a/b"));
        assert!(
            !valid_path("../x")
                && !valid_path("/etc/x")
                && !valid_path("a/../../x")
                && !valid_path("")
        );
    }
}
