//! Adding a cluster's entries to a user's kubeconfig and taking them out
//! again, as `kind` does with `kind-<name>`.
//!
//! The user's file is edited as a generic document, not through
//! [`Kubeconfig`], so everything it holds that Capstan does not model
//! (exec credentials, extensions, preferences) survives. Edits hold
//! client-go's lock file (`<file>.lock`) and replace the file atomically.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde_json::{Map, Value};

use super::Kubeconfig;

/// The lists a kubeconfig keeps named entries in.
const SECTIONS: [(&str, &str); 3] = [
    ("clusters", "cluster"),
    ("users", "user"),
    ("contexts", "context"),
];
/// How long to wait for another writer's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The kubeconfig file to write: `explicit` (`--kubeconfig`), else the
/// first entry of `$KUBECONFIG`, else `~/.kube/config`, as kind chooses.
/// Always absolute, since `delete` may run from another directory.
pub fn target_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = if let Some(path) = explicit {
        path.to_path_buf()
    } else if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        first
    } else {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .context("HOME is not set; pass --kubeconfig")?;
        PathBuf::from(home).join(".kube").join("config")
    };
    std::path::absolute(&path).with_context(|| format!("resolving {}", path.display()))
}

/// Upserts every cluster, user and context of `entries` into `doc` by name
/// and makes `entries`' current context current.
pub fn merge_entries(doc: &mut Value, entries: &Kubeconfig) -> anyhow::Result<()> {
    let incoming = serde_json::to_value(entries).context("encoding kubeconfig entries")?;
    let root = as_config(doc)?;
    for (section, _) in SECTIONS {
        let Some(new) = incoming.get(section).and_then(Value::as_array) else {
            continue;
        };
        let list = section_list(root, section)?;
        for entry in new {
            let name = entry.get("name").cloned().unwrap_or(Value::Null);
            match list.iter_mut().find(|e| e.get("name") == Some(&name)) {
                Some(existing) => *existing = entry.clone(),
                None => list.push(entry.clone()),
            }
        }
    }
    root.insert(
        "current-context".into(),
        Value::String(entries.current_context.clone()),
    );
    Ok(())
}

/// Removes the cluster, user and context entries named `name`; a
/// `current-context` naming it is cleared, as kubectl and kind leave it.
/// Returns whether anything was removed.
pub fn remove_entries(doc: &mut Value, name: &str) -> anyhow::Result<bool> {
    let root = as_config(doc)?;
    let mut removed = false;
    for (section, _) in SECTIONS {
        if let Some(Value::Array(list)) = root.get_mut(section) {
            let before = list.len();
            list.retain(|e| e.get("name").and_then(Value::as_str) != Some(name));
            removed |= list.len() != before;
        }
    }
    if root.get("current-context").and_then(Value::as_str) == Some(name) {
        root.insert("current-context".into(), Value::String(String::new()));
        removed = true;
    }
    Ok(removed)
}

/// Merges `entries` into the kubeconfig file at `path` (created, with its
/// directory, when missing).
pub fn merge_into_file(path: &Path, entries: &Kubeconfig) -> anyhow::Result<()> {
    edit_file(path, true, |doc| merge_entries(doc, entries).map(|()| true))?;
    Ok(())
}

/// Removes the entries named `name` from the kubeconfig file at `path`;
/// nothing happens when the file does not exist. Returns whether anything
/// was removed.
pub fn remove_from_file(path: &Path, name: &str) -> anyhow::Result<bool> {
    edit_file(path, false, |doc| remove_entries(doc, name))
}

/// Reads `path` (an empty document when it is missing and `create`),
/// applies `edit` under the lock, and writes it back when `edit` changed
/// something.
fn edit_file(
    path: &Path,
    create: bool,
    edit: impl FnOnce(&mut Value) -> anyhow::Result<bool>,
) -> anyhow::Result<bool> {
    if !create && !path.exists() {
        return Ok(false);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let _lock = Lock::acquire(path)?;
    let mut doc = match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).with_context(|| format!("reading {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => empty(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if !edit(&mut doc)? {
        return Ok(false);
    }
    crate::pki::write_file(path, to_yaml(&doc)?.as_bytes(), 0o600)?;
    Ok(true)
}

/// Parses a kubeconfig as a generic document; blank text is an empty one.
pub fn parse(text: &str) -> anyhow::Result<Value> {
    if text.trim().is_empty() {
        return Ok(empty());
    }
    let doc: Value = serde_saphyr::from_str(text).context("parsing kubeconfig")?;
    if doc.is_null() {
        return Ok(empty());
    }
    Ok(doc)
}

/// Serializes a generic kubeconfig document as kubectl writes it.
pub fn to_yaml(doc: &Value) -> anyhow::Result<String> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(doc, options).context("serializing kubeconfig")
}

fn empty() -> Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
        "preferences": {},
    })
}

fn as_config(doc: &mut Value) -> anyhow::Result<&mut Map<String, Value>> {
    doc.as_object_mut()
        .ok_or_else(|| anyhow!("the kubeconfig is not a mapping"))
}

fn section_list<'a>(
    root: &'a mut Map<String, Value>,
    section: &str,
) -> anyhow::Result<&'a mut Vec<Value>> {
    let slot = root
        .entry(section)
        .or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    slot.as_array_mut()
        .ok_or_else(|| anyhow!("`{section}` in the kubeconfig is not a list"))
}

/// client-go's advisory lock: `<file>.lock`, created exclusively, removed
/// on drop.
struct Lock {
    path: PathBuf,
}

impl Lock {
    fn acquire(file: &Path) -> anyhow::Result<Self> {
        let mut name = file.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(Lock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Instant::now() >= deadline {
                        bail!(
                            "{} is locked by another writer; remove {} if no kubectl or capstan is running",
                            file.display(),
                            path.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e).with_context(|| format!("locking {}", file.display())),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(name: &str, server: &str) -> Kubeconfig {
        Kubeconfig::with_client_certificate(name, server, "CA", name, "CERT", "KEY")
    }

    const USER_FILE: &str = r#"
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: gke
  cluster:
    server: https://10.0.0.1
    extensions:
    - name: x
      extension: {a: 1}
users:
- name: gke
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
contexts:
- name: gke
  context: {cluster: gke, user: gke, namespace: prod}
current-context: gke
"#;

    fn names(doc: &Value, section: &str) -> Vec<String> {
        doc[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn merge_keeps_foreign_entries_and_fields() {
        let mut doc = parse(USER_FILE).unwrap();
        merge_entries(&mut doc, &entries("capstan-a", "https://127.0.0.1:1")).unwrap();
        for section in ["clusters", "users", "contexts"] {
            assert_eq!(names(&doc, section), vec!["gke", "capstan-a"]);
        }
        assert_eq!(doc["current-context"], "capstan-a");
        assert_eq!(doc["preferences"]["colors"], true);
        assert_eq!(
            doc["users"][0]["user"]["exec"]["command"],
            "gke-gcloud-auth-plugin"
        );
        assert_eq!(doc["clusters"][0]["cluster"]["extensions"][0]["name"], "x");
        // The merged file still reads as a kubeconfig and resolves to us.
        let text = to_yaml(&doc).unwrap();
        let kc = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current().unwrap().0.server, "https://127.0.0.1:1");
    }

    #[test]
    fn merge_replaces_entries_of_the_same_name() {
        let mut doc = parse("").unwrap();
        merge_entries(&mut doc, &entries("capstan-a", "https://127.0.0.1:1")).unwrap();
        merge_entries(&mut doc, &entries("capstan-b", "https://127.0.0.1:2")).unwrap();
        merge_entries(&mut doc, &entries("capstan-a", "https://127.0.0.1:3")).unwrap();
        assert_eq!(names(&doc, "clusters"), vec!["capstan-a", "capstan-b"]);
        assert_eq!(
            doc["clusters"][0]["cluster"]["server"],
            "https://127.0.0.1:3"
        );
        assert_eq!(doc["current-context"], "capstan-a");
    }

    #[test]
    fn remove_takes_out_only_ours_and_clears_current() {
        let mut doc = parse(USER_FILE).unwrap();
        merge_entries(&mut doc, &entries("capstan-a", "https://127.0.0.1:1")).unwrap();
        merge_entries(&mut doc, &entries("capstan-b", "https://127.0.0.1:2")).unwrap();
        assert!(remove_entries(&mut doc, "capstan-a").unwrap());
        assert_eq!(names(&doc, "contexts"), vec!["gke", "capstan-b"]);
        assert_eq!(doc["current-context"], "capstan-b");
        assert!(remove_entries(&mut doc, "capstan-b").unwrap());
        assert_eq!(names(&doc, "users"), vec!["gke"]);
        assert_eq!(doc["current-context"], "");
        assert!(!remove_entries(&mut doc, "capstan-b").unwrap());
        assert_eq!(doc["contexts"][0]["context"]["namespace"], "prod");
    }

    #[test]
    fn files_are_created_edited_and_left_alone_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config");
        assert!(!remove_from_file(&path, "capstan-a").unwrap());
        assert!(!path.exists());
        merge_into_file(&path, &entries("capstan-a", "https://127.0.0.1:1")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let kc = Kubeconfig::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(kc.current_context, "capstan-a");
        assert!(remove_from_file(&path, "capstan-a").unwrap());
        let doc = parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(names(&doc, "clusters").is_empty());
        assert!(!dir.path().join("sub/config.lock").exists());
    }

    #[test]
    fn target_path_prefers_the_flag() {
        assert_eq!(
            target_path(Some(Path::new("/x/config"))).unwrap(),
            PathBuf::from("/x/config")
        );
        let relative = target_path(Some(Path::new("k/config"))).unwrap();
        assert!(relative.is_absolute() && relative.ends_with("k/config"));
    }
}
